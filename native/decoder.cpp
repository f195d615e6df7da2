#include "decoder.h"

#include "fused.h"

namespace hscr {

RmsNormImpl::RmsNormImpl(int64_t d, double eps_) : eps(eps_) { weight = register_parameter("weight", torch::ones({d})); }

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  if (fused::applies(x) && fused::applies(weight)) return fused::rmsNorm(x, weight, eps);
  // In fp32 whatever the weights' dtype, as transformers does.
  auto xf = x.to(torch::kFloat);
  xf = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps);
  return weight * xf.to(x.dtype());
}

DecoderAttentionImpl::DecoderAttentionImpl(const TextConfig& c) : heads(c.numHeads), kvHeads(c.numKvHeads), headDim(c.headDim) {
  q_proj = register_module("q_proj", Linear(c.hiddenSize, heads * headDim, false));
  k_proj = register_module("k_proj", Linear(c.hiddenSize, kvHeads * headDim, false));
  v_proj = register_module("v_proj", Linear(c.hiddenSize, kvHeads * headDim, false));
  o_proj = register_module("o_proj", Linear(heads * headDim, c.hiddenSize, false));
}

static torch::Tensor rotateHalf(const torch::Tensor& x) {
  auto half = x.size(-1) / 2;
  return torch::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

torch::Tensor DecoderAttentionImpl::forward(const torch::Tensor& x, const Rope& rope, const torch::Tensor& maskAll, KvCache* cache,
                                            size_t layer, const torch::Tensor& keep) {
  auto B = x.size(0), T = x.size(1);
  auto mask = maskAll;
  // fp32 on the CPU: one q/k/v product, RoPE + head layout + the 1/√d of the scores in one fused pass.
  bool fast = fused::applies(x) && headDim % 2 == 0 && canMerge({q_proj.get(), k_proj.get(), v_proj.get()});
  double scale = 1.0 / std::sqrt(static_cast<double>(headDim));
  torch::Tensor q, k, v;
  if (fast) {
    auto qkv = mergedForward(x, {q_proj.get(), k_proj.get(), v_proj.get()}, qkvWeight);
    auto parts = fused::splitRotate(qkv, rope.cosHalf, rope.sinHalf, heads, kvHeads, headDim, scale);
    q = parts[0], k = parts[1], v = parts[2];
  } else {
    q = q_proj(x).view({B, T, heads, headDim}).transpose(1, 2);
    k = k_proj(x).view({B, T, kvHeads, headDim}).transpose(1, 2);
    v = v_proj(x).view({B, T, kvHeads, headDim}).transpose(1, 2);
    q = (q * rope.cos + rotateHalf(q) * rope.sin).to(x.dtype());
    k = (k * rope.cos + rotateHalf(k) * rope.sin).to(x.dtype());
  }
  if (cache) {
    if (cache->keys.size() <= layer) {
      cache->keys.push_back(k);
      cache->values.push_back(v);
    } else {
      cache->keys[layer] = k = torch::cat({cache->keys[layer], k}, 2);
      cache->values[layer] = v = torch::cat({cache->values[layer], v}, 2);
    }
  }
  if (keep.defined()) {
    using torch::indexing::Slice;
    auto rows = torch::arange(B, keep.options());
    q = q.index({rows, Slice(), keep}).unsqueeze(2);          // [B, heads, 1, d]
    mask = maskAll.index({rows, Slice(), keep}).unsqueeze(2);  // [B, 1, 1, Tk]
    T = 1;
  }
  // Grouped-query attention: query head h reads kv head h / g (g = heads / kvHeads). The g query heads of a kv
  // head are stacked along the query axis, so each kv head is multiplied once, without copying K and V g
  // times (and without summing g gradient copies back in the backward pass).
  auto g = heads / kvHeads, Tk = k.size(2);
  auto qg = q.reshape({B, kvHeads, g * T, headDim});
  torch::Tensor probs;
  if (fast) {
    // q is already scaled; the mask is added in place (the product's backward does not need its output).
    auto scores = torch::matmul(qg, k.transpose(-1, -2));
    scores.view({B, kvHeads, g, T, Tk}).add_(mask.unsqueeze(2));
    probs = torch::softmax(scores, -1);
  } else {
    auto scores = torch::matmul(qg, k.transpose(-1, -2)).to(torch::kFloat) * scale;
    probs = torch::softmax(scores.view({B, kvHeads, g, T, Tk}) + mask.unsqueeze(2), -1).to(v.dtype());
  }
  auto out = torch::matmul(probs.view({B, kvHeads, g * T, Tk}), v).view({B, heads, T, headDim}).transpose(1, 2).reshape({B, T, heads * headDim});
  return o_proj(out);
}

SwiGluImpl::SwiGluImpl(const TextConfig& c) {
  gate_proj = register_module("gate_proj", Linear(c.hiddenSize, c.intermediateSize, false));
  up_proj = register_module("up_proj", Linear(c.hiddenSize, c.intermediateSize, false));
  down_proj = register_module("down_proj", Linear(c.intermediateSize, c.hiddenSize, false));
}

torch::Tensor SwiGluImpl::forward(const torch::Tensor& x) {
  if (fused::applies(x) && canMerge({gate_proj.get(), up_proj.get()}))
    return down_proj(fused::swiglu(mergedForward(x, {gate_proj.get(), up_proj.get()}, gateUpWeight)));
  return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
}

DecoderLayerImpl::DecoderLayerImpl(const TextConfig& c) {
  self_attn = register_module("self_attn", DecoderAttention(c));
  mlp = register_module("mlp", SwiGlu(c));
  input_layernorm = register_module("input_layernorm", RmsNorm(c.hiddenSize, c.rmsNormEps));
  post_attention_layernorm = register_module("post_attention_layernorm", RmsNorm(c.hiddenSize, c.rmsNormEps));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const Rope& rope, const torch::Tensor& mask, KvCache* cache, size_t layer,
                                        const torch::Tensor& keep) {
  auto residual = keep.defined() ? x.index({torch::arange(x.size(0), keep.options()), keep}).unsqueeze(1) : x;
  auto h = residual + self_attn(input_layernorm(x), rope, mask, cache, layer, keep);
  return h + mlp(post_attention_layernorm(h));
}

DecoderImpl::DecoderImpl(const TextConfig& c) : config(c) {
  model = register_module("model", std::make_shared<torch::nn::Module>());
  embed_tokens = model->register_module("embed_tokens", torch::nn::Embedding(c.vocabSize, c.hiddenSize));
  auto list = model->register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.numLayers; ++i) {
    layers.push_back(DecoderLayer(c));
    list->push_back(layers.back());
  }
  norm = model->register_module("norm", RmsNorm(c.hiddenSize, c.rmsNormEps));
  if (!c.tieWordEmbeddings) lm_head = register_module("lm_head", Linear(c.hiddenSize, c.vocabSize, false));
}

void DecoderImpl::fuseProjections() {
  for (auto& l : layers) {
    auto& a = *l->self_attn;
    a.qkvWeight = fuseRows({a.q_proj.get(), a.k_proj.get(), a.v_proj.get()});
    auto& m = *l->mlp;
    m.gateUpWeight = fuseRows({m.gate_proj.get(), m.up_proj.get()});
  }
}

torch::Tensor DecoderImpl::embed(const torch::Tensor& ids) { return embed_tokens(ids); }

torch::Tensor DecoderImpl::logits(const torch::Tensor& hidden) {
  return lm_head ? lm_head(hidden) : torch::nn::functional::linear(hidden, embed_tokens->weight);
}

// Additive mask [B, 1, Tq, Tk]: key j is visible to query i when it is a real token, not in i's future
// (by position) and, with a sliding window, fewer than `window` positions back.
static torch::Tensor attentionMask(const torch::Tensor& qPos, const torch::Tensor& kPos, const torch::Tensor& kValid,
                                   const std::optional<int64_t>& window) {
  auto q = qPos.unsqueeze(2), k = kPos.unsqueeze(1);
  auto allowed = kValid.unsqueeze(1) & (k <= q);
  if (window) allowed = allowed & ((q - k) < *window);
  // A large negative rather than -inf: fully masked (padding) rows stay finite.
  return torch::zeros(allowed.sizes(), torch::TensorOptions().dtype(torch::kFloat).device(qPos.device()))
      .masked_fill(allowed.logical_not(), -1e30)
      .unsqueeze(1);
}

torch::Tensor DecoderImpl::forward(const torch::Tensor& embeds, const torch::Tensor& positions, const torch::Tensor& valid,
                                   KvCache* cache, const torch::Tensor& keepLast) {
  torch::Tensor kPos = positions, kValid = valid;
  if (cache && !cache->empty()) {
    kPos = torch::cat({cache->positions, positions}, 1);
    kValid = torch::cat({cache->valid, valid}, 1);
  }
  auto mask = attentionMask(positions, kPos, kValid, config.slidingWindow);
  if (cache) cache->positions = kPos, cache->valid = kValid;

  // RoPE tables for these positions, in fp32.
  auto inv = 1.0 / torch::pow(config.ropeTheta,
                              torch::arange(0, config.headDim, 2, torch::TensorOptions().dtype(torch::kFloat).device(embeds.device())) /
                                  static_cast<double>(config.headDim));
  auto freqs = positions.to(torch::kFloat).unsqueeze(-1) * inv;  // [B, T, d/2]
  Rope rope;
  rope.cosHalf = freqs.cos();
  rope.sinHalf = freqs.sin();
  rope.cos = torch::cat({rope.cosHalf, rope.cosHalf}, -1).unsqueeze(1);  // [B, 1, T, d]
  rope.sin = torch::cat({rope.sinHalf, rope.sinHalf}, -1).unsqueeze(1);

  auto h = embeds;
  for (size_t i = 0; i < layers.size(); ++i) h = layers[i]->forward(h, rope, mask, cache, i, i + 1 == layers.size() ? keepLast : torch::Tensor());
  return norm(h);
}

}  // namespace hscr
