#include "lora.h"

#include <cmath>

namespace hscr {

LinearImpl::LinearImpl(int64_t in, int64_t out, bool withBias) : inFeatures(in), outFeatures(out) {
  weight = register_parameter("weight", torch::empty({out, in}));
  if (withBias) bias = register_parameter("bias", torch::zeros({out}));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  auto y = torch::nn::functional::linear(x, weight, bias.defined() ? bias : torch::Tensor());
  if (loraA && loraEnabled && !merged) {
    auto h = (loraDropout > 0 && is_training()) ? torch::dropout(x, loraDropout, true) : x;
    y = y + loraScale * torch::nn::functional::linear(torch::nn::functional::linear(h, loraA->weight), loraB->weight);
  }
  return y;
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
