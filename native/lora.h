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
  bool loraActive() const { return loraA && loraEnabled && !merged; }
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

// Linears that read the same input (q/k/v, gate/up) as one product: y = x·[W_1; W_2; …]ᵀ, outputs side by side.
// `merged` is the concatenated frozen weight when the parts' weights are its row blocks (fuseRows) and frozen;
// otherwise the weights are concatenated in the graph (gradients reach each part). Active LoRA adapters are
// merged alike: their A matrices stacked (own dropout mask each), one product with the block-diagonal of the Bs.
// Applies when canMerge(parts) holds; the result equals the parts' forwards concatenated.
bool canMerge(const std::vector<LinearImpl*>& parts);
torch::Tensor mergedForward(const torch::Tensor& x, const std::vector<LinearImpl*>& parts, const torch::Tensor& merged);
// Concatenates the parts' weights into one tensor and makes each weight a view of its rows (no copy kept).
torch::Tensor fuseRows(const std::vector<LinearImpl*>& parts);

}  // namespace hscr
