#include "model_config.h"

#include <cmath>

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
  c.text.maxPositionEmbeddings = optInt(t, "maxPositionEmbeddings", 0);
  if (c.text.maxPositionEmbeddings < 0)
    fail("E_CONFIG", "config.text.maxPositionEmbeddings must be > 0", std::to_string(c.text.maxPositionEmbeddings));
  if (c.text.headDim <= 0) fail("E_CONFIG", "config.text.headDim must be > 0", std::to_string(c.text.headDim));
  if (c.vision.numChannels <= 0) fail("E_CONFIG", "config.vision.numChannels must be > 0", std::to_string(c.vision.numChannels));
  if (c.text.slidingWindow && *c.text.slidingWindow <= 0)
    fail("E_CONFIG", "config.text.slidingWindow must be > 0", std::to_string(*c.text.slidingWindow));
  for (auto [value, name] : {std::make_pair(c.vision.layerNormEps, "vision.layerNormEps"), std::make_pair(c.text.rmsNormEps, "text.rmsNormEps"),
                             std::make_pair(c.text.ropeTheta, "text.ropeTheta")})
    if (!(std::isfinite(value) && value > 0)) fail("E_CONFIG", std::string("config.") + name + " must be a finite number > 0", std::to_string(value));
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
  parameterCount(c);  // sizes whose product overflows are refused here, before anything is built
  return c;
}

namespace {
// Checked arithmetic: a config with absurd sizes is an E_CONFIG, never a wrapped-around small number.
struct Count {
  int64_t v;
  Count operator*(Count o) const {
    int64_t r;
    if (__builtin_mul_overflow(v, o.v, &r)) tooLarge();
    return {r};
  }
  Count operator+(Count o) const {
    int64_t r;
    if (__builtin_add_overflow(v, o.v, &r)) tooLarge();
    return {r};
  }
  [[noreturn]] static void tooLarge() { fail("E_CONFIG", "config sizes multiply to more parameters than fit in 63 bits"); }
};
}  // namespace

int64_t parameterCount(const VlmConfig& c) {
  const auto& v = c.vision;
  Count d{v.hiddenSize}, inter{v.intermediateSize}, grid{v.imageSize / v.patchSize};
  Count embeddings = d * Count{v.numChannels} * Count{v.patchSize} * Count{v.patchSize} + d + (grid * grid + Count{1}) * d + Count{2} * d;
  Count visionLayer = Count{4} * (d * d + d) + Count{4} * d + inter * d + inter + d * inter + d;
  Count vision = embeddings + Count{v.numLayers} * visionLayer;

  const auto& t = c.text;
  Count h{t.hiddenSize}, ti{t.intermediateSize}, q = Count{t.numHeads} * Count{t.headDim}, kv = Count{t.numKvHeads} * Count{t.headDim};
  Count projector = h * d + h + (c.projectorType == "mlp2x_gelu" ? h * h + h : Count{0});
  Count textLayer = q * h + Count{2} * kv * h + h * q + Count{3} * ti * h + Count{2} * h;
  Count vocab = Count{t.vocabSize} * h;
  Count text = vocab + Count{t.numLayers} * textLayer + h + (t.tieWordEmbeddings ? Count{0} : vocab);
  return (vision + projector + text).v;
}

}  // namespace hscr
