// Visual perturbations, seedable per row: HSCR's own (`token`: drop visual tokens after the projector) and the
// paper's ablations (`pixel`: mask pixels, `patch`: drop patches before the ViT, `latent`: mask patches inside
// the ViT's attention). A row keeps round((1 − ratio)·N) of its N units (half away from zero).
#pragma once
#include <torch/torch.h>

#include <string>

namespace hscr {

enum class PerturbKind { None, Token, Pixel, Patch, Latent };
PerturbKind parsePerturbKind(const std::string& name);

struct Perturbation {
  PerturbKind kind = PerturbKind::None;
  double ratio = 0.7;
};

// How many of n units survive dropping `ratio` of them.
int64_t keptCount(int64_t n, double ratio);
// The sorted indices of the units kept, drawn from a generator seeded with `seed` (same seed, same units).
torch::Tensor keptIndices(int64_t n, double ratio, uint64_t seed);
// Pixel masking: a [H, W] bool mask with round(ratio·H·W) pixels set.
torch::Tensor pixelMask(int64_t h, int64_t w, double ratio, uint64_t seed);

}  // namespace hscr
