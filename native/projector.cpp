#include "projector.h"

namespace hscr {

ProjectorImpl::ProjectorImpl(const VlmConfig& c) {
  linear_1 = register_module("linear_1", Linear(c.vision.hiddenSize, c.text.hiddenSize, true));
  if (c.projectorType == "mlp2x_gelu") linear_2 = register_module("linear_2", Linear(c.text.hiddenSize, c.text.hiddenSize, true));
}

torch::Tensor ProjectorImpl::forward(const torch::Tensor& x) {
  auto h = linear_1(x);
  return linear_2 ? linear_2(torch::nn::functional::gelu(h)) : h;  // exact (erf) GELU, as LLaVA's nn.GELU()
}

}  // namespace hscr
