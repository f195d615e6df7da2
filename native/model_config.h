// The normalised model configuration (lib/model/config.ts's ModelConfig), as the C++ modules see it.
#pragma once
#include <napi.h>

#include <optional>
#include <string>

namespace hscr {

struct VisionConfig {
  int64_t hiddenSize, intermediateSize, numLayers, numHeads, imageSize, patchSize, numChannels;
  double layerNormEps;
  std::string hiddenAct;  // quick_gelu | gelu
  int64_t numPatches() const { return (imageSize / patchSize) * (imageSize / patchSize); }
};

struct TextConfig {
  int64_t vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim;
  double rmsNormEps, ropeTheta;
  std::optional<int64_t> slidingWindow;
  bool tieWordEmbeddings;
  int64_t bosTokenId, eosTokenId, padTokenId;
  int64_t maxPositionEmbeddings = 0;  // the context length; 0 = not given (no length check)
};

struct VlmConfig {
  VisionConfig vision;
  TextConfig text;
  std::string projectorType;  // mlp2x_gelu | linear
  int64_t selectLayer;        // index into the vision hidden states, negative from the end (-2 = penultimate)
  std::string selectFeature;  // patch (drop CLS) | cls_patch
  int64_t imageTokenIndex;
  // Number of visual tokens one image becomes (before any dropout).
  int64_t visualTokens() const { return vision.numPatches() + (selectFeature == "cls_patch" ? 1 : 0); }
};

VlmConfig parseVlmConfig(const Napi::Object& o);

// Every parameter the Vlm of `c` allocates (weights, biases, embeddings; a tied lm_head once), counted
// without building it, so a budget check can refuse a model before any allocation. Mirrors
// lib/model/keys.ts expectedParameters; E_CONFIG when the count does not fit 63 bits.
int64_t parameterCount(const VlmConfig& c);

}  // namespace hscr
