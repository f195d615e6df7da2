// Llama/Mistral decoder: RMSNorm, RoPE (rope_theta), grouped-query attention, SwiGLU MLP, optional sliding
// window, tied or untied lm_head, and a KV cache for generation. Names follow transformers'
// MistralForCausalLM ("model.layers.N…", "lm_head").
#pragma once
#include <torch/torch.h>

#include "lora.h"
#include "model_config.h"

namespace hscr {

// Keys/values of every layer for the tokens seen so far, with their positions and validity (padding = false).
struct KvCache {
  std::vector<torch::Tensor> keys, values;
  torch::Tensor positions, valid;  // [B, Tk]
  bool empty() const { return keys.empty(); }
};

// RoPE tables of a call's positions: [B, 1, T, d] (both halves) for the eager path, [B, T, d/2] for the fused one.
struct Rope {
  torch::Tensor cos, sin, cosHalf, sinHalf;
};

struct RmsNormImpl : torch::nn::Module {
  RmsNormImpl(int64_t d, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  double eps;
  torch::Tensor weight;
};
TORCH_MODULE(RmsNorm);

struct DecoderAttentionImpl : torch::nn::Module {
  explicit DecoderAttentionImpl(const TextConfig& c);
  // keep [B] (optional): compute the output only at these query positions, one per row ([B, 1, H]); keys and
  // values still cover every token (they go to the cache).
  torch::Tensor forward(const torch::Tensor& x, const Rope& rope, const torch::Tensor& mask, KvCache* cache, size_t layer,
                        const torch::Tensor& keep = {});
  int64_t heads, kvHeads, headDim;
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  torch::Tensor qkvWeight;  // q/k/v weights as one tensor (fuseProjections); the three weights are its row blocks
};
TORCH_MODULE(DecoderAttention);

struct SwiGluImpl : torch::nn::Module {
  explicit SwiGluImpl(const TextConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
  torch::Tensor gateUpWeight;  // gate/up weights as one tensor (fuseProjections)
};
TORCH_MODULE(SwiGlu);

struct DecoderLayerImpl : torch::nn::Module {
  explicit DecoderLayerImpl(const TextConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const Rope& rope, const torch::Tensor& mask, KvCache* cache, size_t layer,
                        const torch::Tensor& keep = {});
  RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  DecoderAttention self_attn{nullptr};
  SwiGlu mlp{nullptr};
};
TORCH_MODULE(DecoderLayer);

struct DecoderImpl : torch::nn::Module {
  explicit DecoderImpl(const TextConfig& c);
  torch::Tensor embed(const torch::Tensor& ids);
  // embeds [B, T, H], positions [B, T] (int64), valid [B, T] (bool). With a cache, the new keys/values are
  // appended to it and attention covers cached + new tokens. Returns the final-norm hidden states.
  // keepLast [B] (optional): the last layer computes only these positions (the cache still gets every
  // token's keys/values); the result is then [B, 1, H], the hidden state at keepLast[b] of each row.
  torch::Tensor forward(const torch::Tensor& embeds, const torch::Tensor& positions, const torch::Tensor& valid, KvCache* cache,
                        const torch::Tensor& keepLast = {});
  torch::Tensor logits(const torch::Tensor& hidden);
  // q/k/v and gate/up weights of every layer become row blocks of one tensor each, so that each group is one
  // matrix product (the parameters keep their names and shapes). Call after the weights reach their device and
  // dtype; a weight replaced later (set_data) just falls back to concatenating in the graph.
  void fuseProjections();
  TextConfig config;
  std::shared_ptr<torch::nn::Module> model;
  torch::nn::Embedding embed_tokens{nullptr};
  std::vector<DecoderLayer> layers;
  RmsNorm norm{nullptr};
  Linear lm_head{nullptr};
};
TORCH_MODULE(Decoder);

}  // namespace hscr
