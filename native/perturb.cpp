#include "perturb.h"

#include <cmath>

#include "common.h"

namespace hscr {

PerturbKind parsePerturbKind(const std::string& name) {
  if (name == "none") return PerturbKind::None;
  if (name == "token") return PerturbKind::Token;
  if (name == "pixel") return PerturbKind::Pixel;
  if (name == "patch") return PerturbKind::Patch;
  if (name == "latent") return PerturbKind::Latent;
  fail("E_ARG", "perturbation must be none, token, pixel, patch or latent", "\"" + name + "\"");
}

int64_t keptCount(int64_t n, double ratio) {
  if (!(ratio >= 0 && ratio <= 1)) fail("E_ARG", "perturbation ratio must be in [0, 1]", std::to_string(ratio));
  return std::llround((1.0 - ratio) * static_cast<double>(n));
}

torch::Tensor keptIndices(int64_t n, double ratio, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto order = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kLong));
  return std::get<0>(order.slice(0, 0, keptCount(n, ratio)).sort());
}

torch::Tensor pixelMask(int64_t h, int64_t w, double ratio, uint64_t seed) {
  auto masked = h * w - keptCount(h * w, ratio);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto order = torch::randperm(h * w, gen, torch::TensorOptions().dtype(torch::kLong));
  auto mask = torch::zeros({h * w}, torch::kBool);
  mask.index_fill_(0, order.slice(0, 0, masked), true);
  return mask.view({h, w});
}

}  // namespace hscr
