// Multi-level preference optimisation (paper §3.3). With r(y) = γ·(log πθ(y|x) − log πsft(y|x)):
//   explicit  E = Σ_j m_j · −log σ(r(y_w) − r(y_lj))
//   implicit  I = Σ_{j<m} m_j m_m · −log σ(r(y_lj) − r(y_lm))      (ranked list, most similar first)
//   per sample λE·E + λI·I; "mean" pair weighting divides each level by its number of valid pairs.
// Binary DPO is the explicit level with one rejected answer.
#pragma once
#include <napi.h>
#include <torch/torch.h>

namespace hscr {

struct MlpoOptions {
  double gamma = 0.1;
  double lambdaExplicit = 1;
  double lambdaImplicit = 1;
  bool meanPairs = false;  // pair weighting: sum (paper) | mean
};

struct MlpoTerms {
  torch::Tensor perSample;        // [B] λE·E + λI·I (autograd)
  torch::Tensor explicitLoss;     // [B] E
  torch::Tensor implicitLoss;     // [B] I
  torch::Tensor rewardChosen;     // [B]
  torch::Tensor rewardRejected;   // [B, J]
  torch::Tensor explicitMargins;  // [B, J] r_w − r_lj (masked entries 0)
  torch::Tensor implicitMargins;  // [B, J, J] r_lj − r_lm for j < m (others 0)
  torch::Tensor explicitPairs;    // [B, J] bool: valid explicit pairs
  torch::Tensor implicitPairs;    // [B, J, J] bool: valid implicit pairs
};

// policy*/reference*: sequence log-probs; chosen [B], rejected [B, J]; mask [B, J] (bool, valid entries first).
MlpoTerms mlpoTerms(const torch::Tensor& policyChosen, const torch::Tensor& policyRejected, const torch::Tensor& refChosen,
                    const torch::Tensor& refRejected, const torch::Tensor& mask, const MlpoOptions& o);

// Reads {gamma, lambdaExplicit, lambdaImplicit, pairWeighting: 'sum' | 'mean'} (paper defaults when absent).
MlpoOptions parseMlpoOptions(const Napi::Object& opts);

}  // namespace hscr
