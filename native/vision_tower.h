// CLIP ViT vision tower as LLaVA uses it: patch + class + position embeddings, pre-LN encoder layers,
// hidden state of a chosen layer (LLaVA: the penultimate), post_layernorm never applied.
// Parameter names follow transformers' CLIPVisionModel under "vision_model.".
#pragma once
#include <torch/torch.h>

#include "lora.h"
#include "model_config.h"

namespace hscr {

struct ClipAttentionImpl : torch::nn::Module {
  explicit ClipAttentionImpl(const VisionConfig& c);
  // keyMask: additive [B, 1, 1, S] (0 or a large negative), or undefined.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& keyMask);
  int64_t heads, headDim;
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(ClipAttention);

struct ClipMlpImpl : torch::nn::Module {
  explicit ClipMlpImpl(const VisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  bool quickGelu;
  Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(ClipMlp);

struct ClipEncoderLayerImpl : torch::nn::Module {
  explicit ClipEncoderLayerImpl(const VisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& keyMask);
  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  ClipAttention self_attn{nullptr};
  ClipMlp mlp{nullptr};
};
TORCH_MODULE(ClipEncoderLayer);

struct ClipEmbeddingsImpl : torch::nn::Module {
  explicit ClipEmbeddingsImpl(const VisionConfig& c);
  // patchKeep: [B, K] indices of the patches to keep (all rows the same K), or undefined for all.
  torch::Tensor forward(const torch::Tensor& pixels, const torch::Tensor& patchKeep);
  torch::nn::Conv2d patch_embedding{nullptr};
  torch::Tensor class_embedding;
  torch::nn::Embedding position_embedding{nullptr};
};
TORCH_MODULE(ClipEmbeddings);

struct VisionTowerImpl : torch::nn::Module {
  explicit VisionTowerImpl(const VisionConfig& c);
  // The hidden state of `selectLayer` (index into [embeddings, layer 1, …, layer L], negative from the end),
  // [B, 1 + patches, D]. Only the layers up to it run.
  torch::Tensor forward(const torch::Tensor& pixels, int64_t selectLayer, const torch::Tensor& patchKeep,
                        const torch::Tensor& latentMask);
  VisionConfig config;
  std::shared_ptr<torch::nn::Module> vision_model;
  ClipEmbeddings embeddings{nullptr};
  torch::nn::LayerNorm pre_layrnorm{nullptr};
  std::vector<ClipEncoderLayer> layers;
};
TORCH_MODULE(VisionTower);

}  // namespace hscr
