// HSCR's token-level self-contrastive scoring (paper §3.1), over the logits of the two views of a sample:
// per answer position the shift of the ground-truth token between the views, the top-n sensitive positions,
// and per sensitive position the replacement candidates by ascending contrastive score. The definitions are
// test/reference/contrastive_ref.py's, ties included; the kernel only hands back these small results.
#pragma once
#include "common.h"

namespace hscr {

// Which tokens may replace a ground-truth token: VCD's α cut on the dropped view (default), on the full
// view, or every token.
enum class Plausibility { AlphaDrop, AlphaFull, None };

struct ContrastiveOptions {
  double beta = 0;
  int64_t n = 0;           // sensitive positions per row
  double alpha = 0;        // plausibility cut, in [0, 1]
  int64_t candidates = 0;  // replacement candidates per sensitive position
  Plausibility plausibility = Plausibility::AlphaDrop;
};

struct ContrastiveRow {
  std::vector<int64_t> positions;  // most sensitive first, indices into the row's tokens
  std::vector<double> shifts;      // per sensitive position
  std::vector<std::vector<int64_t>> candidates;
  std::vector<std::vector<double>> scores;
  std::vector<double> tokenShifts;        // per token (0 where there is no target)
  std::vector<double> targetContrastive;  // per token (0 where there is no target)
};

// full, drop: [N, V] logits, rows of all segments concatenated; targets [N] int64 (< 0: none); eligible [N]
// bool; lengths: the segments (rows of the result), summing to N. Maths in float32 (float64 for float64 input).
std::vector<ContrastiveRow> contrastiveRows(const torch::Tensor& full, const torch::Tensor& drop, const torch::Tensor& targets,
                                            const torch::Tensor& eligible, const std::vector<int64_t>& lengths,
                                            const ContrastiveOptions& o);

}  // namespace hscr
