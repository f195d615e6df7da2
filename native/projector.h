// The multimodal projector: LLaVA's mlp2x_gelu (linear → GELU → linear) or a single linear map from the
// vision width to the text width. Names follow transformers' multi_modal_projector.linear_{1,2}.
#pragma once
#include "lora.h"
#include "model_config.h"

namespace hscr {

struct ProjectorImpl : torch::nn::Module {
  explicit ProjectorImpl(const VlmConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  Linear linear_1{nullptr}, linear_2{nullptr};
};
TORCH_MODULE(Projector);

}  // namespace hscr
