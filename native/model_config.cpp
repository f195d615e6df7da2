#include "model_config.h"

#include "common.h"

namespace hscr {

static Napi::Object sub(const Napi::Object& o, const char* key) { return toObject(o.Get(key), std::string("config.") + key); }

static int64_t reqInt(const Napi::Object& o, const char* key, const char* where) {
  auto v = o.Get(key);
  if (v.IsUndefined()) fail("E_CONFIG", std::string("config.") + where + "." + key + " is missing");
  int64_t x = toInt(v, std::string("config.") + where + "." + key);
  return x;
}

static int64_t reqPositive(const Napi::Object& o, const char* key, const char* where) {
  int64_t x = reqInt(o, key, where);
  if (x <= 0) fail("E_CONFIG", std::string("config.") + where + "." + key + " must be > 0", std::to_string(x));
  return x;
}

VlmConfig parseVlmConfig(const Napi::Object& o) {
  VlmConfig c;
  auto v = sub(o, "vision");
  c.vision.hiddenSize = reqPositive(v, "hiddenSize", "vision");
  c.vision.intermediateSize = reqPositive(v, "intermediateSize", "vision");
  c.vision.numLayers = reqPositive(v, "numLayers", "vision");
  c.vision.numHeads = reqPositive(v, "numHeads", "vision");
  c.vision.imageSize = reqPositive(v, "imageSize", "vision");
  c.vision.patchSize = reqPositive(v, "patchSize", "vision");
  c.vision.numChannels = optInt(v, "numChannels", 3);
  c.vision.layerNormEps = optNumber(v, "layerNormEps", 1e-5);
  c.vision.hiddenAct = optString(v, "hiddenAct", "quick_gelu");
  if (c.vision.hiddenSize % c.vision.numHeads)
    fail("E_CONFIG", "config.vision.hiddenSize must be divisible by numHeads", std::to_string(c.vision.hiddenSize));
  if (c.vision.imageSize % c.vision.patchSize)
    fail("E_CONFIG", "config.vision.imageSize must be divisible by patchSize", std::to_string(c.vision.imageSize));
  if (c.vision.hiddenAct != "quick_gelu" && c.vision.hiddenAct != "gelu")
    fail("E_CONFIG", "config.vision.hiddenAct must be quick_gelu or gelu", c.vision.hiddenAct);

  auto t = sub(o, "text");
  c.text.vocabSize = reqPositive(t, "vocabSize", "text");
  c.text.hiddenSize = reqPositive(t, "hiddenSize", "text");
  c.text.intermediateSize = reqPositive(t, "intermediateSize", "text");
  c.text.numLayers = reqPositive(t, "numLayers", "text");
  c.text.numHeads = reqPositive(t, "numHeads", "text");
  c.text.numKvHeads = optInt(t, "numKvHeads", c.text.numHeads);
  c.text.headDim = optInt(t, "headDim", c.text.hiddenSize / c.text.numHeads);
  c.text.rmsNormEps = optNumber(t, "rmsNormEps", 1e-5);
  c.text.ropeTheta = optNumber(t, "ropeTheta", 10000.0);
  auto sw = t.Get("slidingWindow");
  if (!sw.IsUndefined() && !sw.IsNull()) c.text.slidingWindow = toInt(sw, "config.text.slidingWindow");
  c.text.tieWordEmbeddings = optBool(t, "tieWordEmbeddings", false);
  c.text.bosTokenId = optInt(t, "bosTokenId", 1);
  c.text.eosTokenId = optInt(t, "eosTokenId", 2);
  c.text.padTokenId = optInt(t, "padTokenId", 0);
  if (c.text.numKvHeads <= 0 || c.text.numHeads % c.text.numKvHeads)
    fail("E_CONFIG", "config.text.numHeads must be a multiple of numKvHeads", std::to_string(c.text.numKvHeads));
  if (c.text.headDim % 2) fail("E_CONFIG", "config.text.headDim must be even (RoPE)", std::to_string(c.text.headDim));

  c.projectorType = optString(sub(o, "projector"), "type", "mlp2x_gelu");
  if (c.projectorType != "mlp2x_gelu" && c.projectorType != "linear")
    fail("E_CONFIG", "config.projector.type must be mlp2x_gelu or linear", c.projectorType);
  c.selectLayer = optInt(o, "selectLayer", -2);
  int64_t states = c.vision.numLayers + 1;
  if (c.selectLayer < -states || c.selectLayer >= states)
    fail("E_CONFIG", "config.selectLayer is outside the vision tower's hidden states", std::to_string(c.selectLayer));
  c.selectFeature = optString(o, "selectFeature", "patch");
  if (c.selectFeature != "patch" && c.selectFeature != "cls_patch")
    fail("E_CONFIG", "config.selectFeature must be patch or cls_patch", c.selectFeature);
  c.imageTokenIndex = reqInt(o, "imageTokenIndex", "");
  return c;
}

}  // namespace hscr
