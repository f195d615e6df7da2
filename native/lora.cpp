#include "lora.h"

#include <cmath>

#include "fused.h"

namespace hscr {

LinearImpl::LinearImpl(int64_t in, int64_t out, bool withBias) : inFeatures(in), outFeatures(out) {
  weight = register_parameter("weight", torch::empty({out, in}));
  if (withBias) bias = register_parameter("bias", torch::zeros({out}));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  auto y = torch::nn::functional::linear(x, weight, bias.defined() ? bias : torch::Tensor());
  if (loraActive()) {
    bool drop = loraDropout > 0 && is_training();
    torch::Tensor down;
    if (drop && fused::applies(x) && fused::applies(loraA->weight))
      down = fused::dropoutDown(x, loraA->weight, 1, loraDropout);
    else
      down = torch::nn::functional::linear(drop ? torch::dropout(x, loraDropout, true) : x, loraA->weight);
    y = y + loraScale * torch::nn::functional::linear(down, loraB->weight);
  }
  return y;
}

bool canMerge(const std::vector<LinearImpl*>& parts) {
  const auto* first = parts.front();
  for (const auto* p : parts) {
    if (p->bias.defined() || p->weight.scalar_type() != first->weight.scalar_type() || p->loraActive() != first->loraActive()) return false;
    if (p->loraActive() && (p->loraScale != first->loraScale || p->loraDropout != first->loraDropout ||
                            p->loraA->weight.size(0) != first->loraA->weight.size(0)))
      return false;
  }
  return true;
}

// Whether the parts' weights are still the row blocks of `merged`, in order, and frozen.
static bool isRowBlocks(const std::vector<LinearImpl*>& parts, const torch::Tensor& merged) {
  if (!merged.defined()) return false;
  const char* at = static_cast<const char*>(merged.data_ptr());
  int64_t rows = 0;
  for (const auto* p : parts) {
    const auto& w = p->weight;
    if (w.requires_grad() || !w.is_contiguous() || w.scalar_type() != merged.scalar_type() || w.device() != merged.device() ||
        !w.storage().is_alias_of(merged.storage()) || static_cast<const char*>(w.data_ptr()) != at)
      return false;
    at += w.nbytes();
    rows += w.size(0);
  }
  return rows == merged.size(0);
}

torch::Tensor mergedForward(const torch::Tensor& x, const std::vector<LinearImpl*>& parts, const torch::Tensor& merged) {
  std::vector<torch::Tensor> ws;
  for (auto* p : parts) ws.push_back(p->weight);
  auto y = torch::nn::functional::linear(x, isRowBlocks(parts, merged) ? merged : torch::cat(ws, 0));
  auto* first = parts.front();
  if (!first->loraActive()) return y;
  std::vector<torch::Tensor> as, bs;
  for (auto* p : parts) {
    as.push_back(p->loraA->weight);
    bs.push_back(p->loraB->weight);
  }
  auto a = parts.size() == 1 ? as[0] : torch::cat(as, 0);
  auto n = static_cast<int64_t>(parts.size());
  bool drop = first->loraDropout > 0 && first->is_training();
  torch::Tensor down;
  if (!drop) {
    down = torch::nn::functional::linear(x, a);
  } else if (fused::applies(x) && fused::applies(a)) {
    down = fused::dropoutDown(x, a, n, first->loraDropout);
  } else {
    std::vector<torch::Tensor> ds;
    for (auto* p : parts) ds.push_back(torch::nn::functional::linear(torch::dropout(x, first->loraDropout, true), p->loraA->weight));
    down = torch::cat(ds, -1);
  }
  auto b = parts.size() == 1 ? bs[0] : torch::block_diag(bs);
  return y.add(torch::nn::functional::linear(down, b), first->loraScale);
}

torch::Tensor fuseRows(const std::vector<LinearImpl*>& parts) {
  torch::NoGradGuard g;
  std::vector<torch::Tensor> ws;
  for (auto* p : parts) ws.push_back(p->weight);
  auto merged = torch::cat(ws, 0);
  int64_t row = 0;
  for (auto* p : parts) {
    auto n = p->weight.size(0);
    p->weight.set_data(merged.narrow(0, row, n));
    row += n;
  }
  return merged;
}

void LinearImpl::addLora(int64_t r, double alpha, double dropout, torch::Generator gen) {
  loraA = register_module("lora_A", std::make_shared<WeightOnly>());
  loraB = register_module("lora_B", std::make_shared<WeightOnly>());
  auto opts = weight.options();
  // PEFT: kaiming_uniform_(a=√5) on A, i.e. U(−1/√in, 1/√in).
  double bound = 1.0 / std::sqrt(static_cast<double>(inFeatures));
  loraA->weight = loraA->register_parameter("weight", torch::empty({r, inFeatures}, opts).uniform_(-bound, bound, gen));
  loraB->weight = loraB->register_parameter("weight", torch::zeros({outFeatures, r}, opts));
  loraScale = alpha / static_cast<double>(r);
  loraDropout = dropout;
}

void LinearImpl::merge() {
  if (!loraA || merged) return;
  torch::NoGradGuard g;
  weight.add_(torch::matmul(loraB->weight, loraA->weight).to(weight.dtype()), loraScale);
  merged = true;
}

void LinearImpl::unmerge() {
  if (!loraA || !merged) return;
  torch::NoGradGuard g;
  weight.sub_(torch::matmul(loraB->weight, loraA->weight).to(weight.dtype()), loraScale);
  merged = false;
}

}  // namespace hscr
