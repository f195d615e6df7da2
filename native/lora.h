// The linear layer every model part uses, with optional LoRA adapters (PEFT semantics):
//   y = x·Wᵀ + b + (α/r)·dropout(x)·Aᵀ·Bᵀ,  A: [r, in] (Kaiming-uniform), B: [out, r] (zeros).
// B starts at zero so a fresh adapter leaves the output exactly equal to the base model's.
#pragma once
#include <torch/torch.h>

namespace hscr {

struct WeightOnly : torch::nn::Module {
  torch::Tensor weight;
};

struct LinearImpl : torch::nn::Module {
  LinearImpl(int64_t in, int64_t out, bool withBias);
  torch::Tensor forward(const torch::Tensor& x);

  void addLora(int64_t r, double alpha, double dropout, torch::Generator gen);
  bool hasLora() const { return loraA != nullptr; }
  // W += scale·B·A (and back): used to export a merged model; the adapter then stays inactive while merged.
  void merge();
  void unmerge();

  int64_t inFeatures, outFeatures;
  torch::Tensor weight, bias;
  std::shared_ptr<WeightOnly> loraA, loraB;
  double loraScale = 0, loraDropout = 0;
  bool loraEnabled = true;  // false = the reference policy (adapters off), no second copy of the weights
  bool merged = false;
};
TORCH_MODULE(Linear);

}  // namespace hscr
