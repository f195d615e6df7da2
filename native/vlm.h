// The LLaVA-architecture VLM: vision tower → projector → visual tokens spliced into the prompt at the image
// placeholder → decoder. Batches are ragged; each row names the image it uses, so several rows (HSCR's two
// views, MLPO's chosen and rejected answers) share one image encoding.
#pragma once
#include "decoder.h"
#include "perturb.h"
#include "projector.h"
#include "vision_tower.h"

namespace hscr {

struct Row {
  int64_t image = 0;                 // index into Batch::pixels
  std::vector<int64_t> prompt;       // with exactly one config.imageTokenIndex
  std::vector<int64_t> answer;       // teacher-forced target tokens (or a forced prefix when generating)
  bool perturb = false;              // this row sees the perturbed view
  uint64_t seed = 0;                 // the perturbation's seed for this row
};

struct Batch {
  torch::Tensor pixels;  // [I, C, H, W]
  std::vector<Row> rows;
};

struct Sequences {
  torch::Tensor embeds, positions, valid;  // [B, T, H], [B, T], [B, T]
  std::vector<int64_t> answerStart;        // index of each row's first answer token
};

struct GenerateOptions {
  int64_t maxNewTokens = 64;
  double temperature = 0;  // 0 = greedy
  double topP = 1;
  uint64_t seed = 0;
  bool useCache = true;
};

struct Generation {
  std::vector<std::vector<int64_t>> tokens;
  std::vector<bool> finished;  // stopped on EOS (false: hit maxNewTokens)
};

struct VlmImpl : torch::nn::Module {
  explicit VlmImpl(const VlmConfig& c);

  // Every row's visual tokens, [N_row, H_text], perturbed where the row asks for it.
  std::vector<torch::Tensor> visualTokens(const Batch& batch, const Perturbation& p);
  Sequences assemble(const Batch& batch, const std::vector<torch::Tensor>& visual, bool padLeft,
                     const std::vector<std::vector<int64_t>>& extra = {});
  // Hidden states at the positions that predict each answer token, rows concatenated: [ΣA, H].
  torch::Tensor answerHidden(const Batch& batch, const Perturbation& p);
  // log p(answer token) for every answer token, rows concatenated: [ΣA] (autograd follows the grad mode).
  torch::Tensor answerLogprobs(const Batch& batch, const Perturbation& p);
  // The same log-probs, [ΣA] in row order, computed with each shared prefix (image + prompt) run once: rows
  // with the same image and prompt (MLPO's chosen and rejected answers) form a group; the prefixes of all
  // groups go through the decoder in one call, then every row's answer attends to its group's cached
  // keys/values in a second call. Autograd flows through the cache, so LoRA on the prefix is trained.
  // Needs unperturbed rows (sharedPrefixApplies); LoRA dropout then draws one mask per prefix, not per row.
  torch::Tensor answerLogprobsSharedPrefix(const Batch& batch);
  static bool sharedPrefixApplies(const Batch& batch, const Perturbation& p);
  Generation generate(const Batch& batch, const Perturbation& p, const GenerateOptions& o);

  // Adapters on/off everywhere (off = the frozen reference policy).
  void setLoraEnabled(bool on);
  std::vector<LinearImpl*> linears();

  VlmConfig config;
  VisionTower vision_tower{nullptr};
  Projector multi_modal_projector{nullptr};
  Decoder language_model{nullptr};
};
TORCH_MODULE(Vlm);

void validateBatch(const VlmConfig& c, const Batch& b);

}  // namespace hscr
