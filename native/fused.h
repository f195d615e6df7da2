// Fused CPU fp32 kernels of the decoder's training step, each an autograd function with a hand-written
// backward pass: what eager composition spends in small ops, temporaries and saved activations (issue 11).
// Every one computes the same function as the composition it replaces (decoder.cpp keeps that composition for
// other dtypes and devices); they apply to fp32 CPU tensors only (applies()).
#pragma once
#include <torch/torch.h>

namespace hscr::fused {

// fp32 tensors on the CPU: the kernels below take raw float pointers.
bool applies(const torch::Tensor& x);

// weight · x / sqrt(mean(x²) + eps) over the last dimension. Saves x and one scale per row (not the
// normalised copy and the squares eager mode keeps).
torch::Tensor rmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// qkv [B, T, (H + 2K)·d], a merged q/k/v projection → {q [B, H, T, d] rotated (RoPE) and multiplied by qScale,
// k [B, K, T, d] rotated, v [B, K, T, d]}, all contiguous in the layout attention multiplies in.
// cos, sin: [B, T, d/2] for the tokens' positions (rotate-half convention, as transformers' Llama/Mistral).
std::vector<torch::Tensor> splitRotate(const torch::Tensor& qkv, const torch::Tensor& cos, const torch::Tensor& sin, int64_t heads,
                                       int64_t kvHeads, int64_t headDim, double qScale);

// [.., 2I] = [gate | up] (a merged gate/up projection) → silu(gate) · up [.., I]; one gradient tensor back.
torch::Tensor swiglu(const torch::Tensor& gateUp);

// LoRA's down projection with PEFT's dropout on its input: a = [parts·r, in] stacks the A matrices of `parts`
// adapters that read the same x (q/k/v, gate/up); part i computes dropout_i(x) · A_iᵀ with its own mask
// (independent Bernoulli(1 − p) per element, kept values scaled by 1/(1 − p), as nn.Dropout). Returns
// [.., parts·r]. Masks are drawn from a counter-based generator seeded from libtorch's default CPU generator
// (so torch's manual seed governs them) and kept as bytes for the backward pass instead of a float copy of x
// per adapter.
torch::Tensor dropoutDown(const torch::Tensor& x, const torch::Tensor& a, int64_t parts, double p);

}  // namespace hscr::fused
