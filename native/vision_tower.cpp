#include "vision_tower.h"

#include "common.h"

namespace hscr {

namespace F = torch::nn::functional;

ClipAttentionImpl::ClipAttentionImpl(const VisionConfig& c) : heads(c.numHeads), headDim(c.hiddenSize / c.numHeads) {
  q_proj = register_module("q_proj", Linear(c.hiddenSize, c.hiddenSize, true));
  k_proj = register_module("k_proj", Linear(c.hiddenSize, c.hiddenSize, true));
  v_proj = register_module("v_proj", Linear(c.hiddenSize, c.hiddenSize, true));
  out_proj = register_module("out_proj", Linear(c.hiddenSize, c.hiddenSize, true));
}

torch::Tensor ClipAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& keyMask) {
  auto B = x.size(0), S = x.size(1);
  auto split = [&](const torch::Tensor& t) { return t.view({B, S, heads, headDim}).transpose(1, 2); };
  auto q = split(q_proj(x)), k = split(k_proj(x)), v = split(v_proj(x));
  auto scores = torch::matmul(q, k.transpose(-1, -2)) * (1.0 / std::sqrt(static_cast<double>(headDim)));
  if (keyMask.defined()) scores = scores + keyMask.to(scores.dtype());
  auto probs = torch::softmax(scores.to(torch::kFloat), -1).to(q.dtype());
  auto out = torch::matmul(probs, v).transpose(1, 2).reshape({B, S, heads * headDim});
  return out_proj(out);
}

ClipMlpImpl::ClipMlpImpl(const VisionConfig& c) : quickGelu(c.hiddenAct == "quick_gelu") {
  fc1 = register_module("fc1", Linear(c.hiddenSize, c.intermediateSize, true));
  fc2 = register_module("fc2", Linear(c.intermediateSize, c.hiddenSize, true));
}

torch::Tensor ClipMlpImpl::forward(const torch::Tensor& x) {
  auto h = fc1(x);
  h = quickGelu ? h * torch::sigmoid(1.702 * h) : F::gelu(h);
  return fc2(h);
}

static torch::nn::LayerNorm layerNorm(int64_t d, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(eps));
}

ClipEncoderLayerImpl::ClipEncoderLayerImpl(const VisionConfig& c) {
  self_attn = register_module("self_attn", ClipAttention(c));
  layer_norm1 = register_module("layer_norm1", layerNorm(c.hiddenSize, c.layerNormEps));
  mlp = register_module("mlp", ClipMlp(c));
  layer_norm2 = register_module("layer_norm2", layerNorm(c.hiddenSize, c.layerNormEps));
}

torch::Tensor ClipEncoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& keyMask) {
  auto h = x + self_attn(layer_norm1(x), keyMask);
  return h + mlp(layer_norm2(h));
}

ClipEmbeddingsImpl::ClipEmbeddingsImpl(const VisionConfig& c) {
  patch_embedding = register_module(
      "patch_embedding",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(c.numChannels, c.hiddenSize, c.patchSize).stride(c.patchSize).bias(false)));
  class_embedding = register_parameter("class_embedding", torch::zeros({c.hiddenSize}));
  position_embedding = register_module("position_embedding", torch::nn::Embedding(c.numPatches() + 1, c.hiddenSize));
}

torch::Tensor ClipEmbeddingsImpl::forward(const torch::Tensor& pixels, const torch::Tensor& patchKeep) {
  auto B = pixels.size(0);
  auto patches = patch_embedding(pixels.to(patch_embedding->weight.dtype())).flatten(2).transpose(1, 2);  // [B, P, D]
  auto pos = position_embedding->weight;                                                                    // [1 + P, D]
  auto cls = (class_embedding + pos[0]).expand({B, 1, -1});
  auto body = patches + pos.slice(0, 1).unsqueeze(0);
  if (patchKeep.defined()) {
    // Dropping patches before the ViT: the kept ones keep their own position embeddings.
    body = body.gather(1, patchKeep.unsqueeze(-1).expand({-1, -1, body.size(-1)}));
  }
  return torch::cat({cls, body}, 1);
}

VisionTowerImpl::VisionTowerImpl(const VisionConfig& c) : config(c) {
  vision_model = register_module("vision_model", std::make_shared<torch::nn::Module>());
  embeddings = vision_model->register_module("embeddings", ClipEmbeddings(c));
  pre_layrnorm = vision_model->register_module("pre_layrnorm", layerNorm(c.hiddenSize, c.layerNormEps));
  auto encoder = vision_model->register_module("encoder", std::make_shared<torch::nn::Module>());
  auto list = encoder->register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.numLayers; ++i) {
    layers.push_back(ClipEncoderLayer(c));
    list->push_back(layers.back());
  }
}

torch::Tensor VisionTowerImpl::forward(const torch::Tensor& pixels, int64_t selectLayer, const torch::Tensor& patchKeep,
                                       const torch::Tensor& latentMask) {
  if (pixels.dim() != 4 || pixels.size(1) != config.numChannels || pixels.size(2) != config.imageSize ||
      pixels.size(3) != config.imageSize)
    fail("E_SHAPE",
         "pixel values must be [B, " + std::to_string(config.numChannels) + ", " + std::to_string(config.imageSize) + ", " +
             std::to_string(config.imageSize) + "]",
         "[" + c10::Join(", ", pixels.sizes()) + "]");
  auto h = pre_layrnorm(embeddings(pixels, patchKeep));
  torch::Tensor keyMask;
  if (latentMask.defined()) {
    // Latent masking: masked patches stay in the sequence but no token may attend to them (CLS never masked).
    auto masked = torch::cat({torch::zeros({latentMask.size(0), 1}, latentMask.options()), latentMask}, 1).to(torch::kBool);
    keyMask = torch::zeros(masked.sizes(), h.options().dtype(torch::kFloat))
                  .masked_fill(masked, -1e9)
                  .view({masked.size(0), 1, 1, masked.size(1)});
  }
  int64_t target = selectLayer < 0 ? config.numLayers + 1 + selectLayer : selectLayer;
  for (int64_t i = 0; i < target; ++i) h = layers[i]->forward(h, keyMask);
  return h;
}

}  // namespace hscr
