// HSCR's contrastive kernel (see contrastive.h) and its two bindings: the standalone op over given logits,
// and the fused model path that runs both views of every sample in one forward pass and hands JS only the
// per-sample results (full-vocabulary logits stay native unless a test asks for them).
#include "contrastive.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "model.h"
#include "parts.h"
#include "tensor.h"

namespace hscr {

namespace {

using Scored = std::pair<double, int64_t>;  // (contrastive score, token id)

// The reference's candidate order: score ascending, ties to the lower id.
bool candidateBefore(const Scored& a, const Scored& b) { return a.first < b.first || (a.first == b.first && a.second < b.second); }

std::vector<double> toDoubles(const torch::Tensor& t) {
  auto c = t.to(torch::kDouble).cpu().contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

std::vector<int64_t> toLongs(const torch::Tensor& t) {
  auto c = t.to(torch::kLong).cpu().contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

void checkOptions(const ContrastiveOptions& o) {
  if (!std::isfinite(o.beta)) fail("E_ARG", "beta must be a finite number", std::to_string(o.beta));
  if (o.n < 1) fail("E_ARG", "n (sensitive positions) must be >= 1", std::to_string(o.n));
  if (!(o.alpha >= 0 && o.alpha <= 1)) fail("E_ARG", "alpha must be in [0, 1]", std::to_string(o.alpha));
  if (o.candidates < 1) fail("E_ARG", "candidates must be >= 1", std::to_string(o.candidates));
}

void checkInputs(const torch::Tensor& full, const torch::Tensor& drop, const std::vector<int64_t>& targets,
                 const std::vector<int64_t>& eligible, const std::vector<int64_t>& lengths) {
  auto shape = [](const torch::Tensor& t) { return "[" + c10::Join(", ", t.sizes()) + "]"; };
  if (full.dim() != 2 || full.size(1) == 0) fail("E_SHAPE", "logits must be [tokens, vocabulary] with a non-empty vocabulary", shape(full));
  if (drop.sizes() != full.sizes()) fail("E_SHAPE", "the two views' logits must have the same shape", shape(full) + " vs " + shape(drop));
  if (!at::isFloatingType(full.scalar_type()) || !at::isFloatingType(drop.scalar_type()))
    fail("E_DTYPE", "logits must be floating point", dtypeName(full.scalar_type()) + ", " + dtypeName(drop.scalar_type()));
  auto N = full.size(0), V = full.size(1);
  if (std::accumulate(lengths.begin(), lengths.end(), int64_t{0}) != N) fail("E_INTERNAL", "row lengths do not add up to the token count");
  for (int64_t i = 0; i < N; ++i) {
    if (targets[i] >= V) fail("E_ARG", "target " + std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(V) + ")", std::to_string(targets[i]));
    if (targets[i] < 0 && eligible[i]) fail("E_ARG", "position " + std::to_string(i) + " is eligible but has no target token", std::to_string(targets[i]));
  }
}

// Eligible positions of one row by shift descending, ties to the lower position; the first n.
// A NaN shift (a target at -inf in both views) sorts last rather than breaking the ordering.
std::vector<int64_t> sensitivePositions(const double* shift, const int64_t* eligible, int64_t length, int64_t n) {
  std::vector<int64_t> order;
  for (int64_t t = 0; t < length; ++t)
    if (eligible[t]) order.push_back(t);
  auto key = [&](int64_t t) { return std::isnan(shift[t]) ? -std::numeric_limits<double>::infinity() : shift[t]; };
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return key(a) > key(b); });
  if (static_cast<int64_t>(order.size()) > n) order.resize(n);
  return order;
}

// Score of every token at the selected rows, +inf where the token may not replace the target.
torch::Tensor maskedScores(const torch::Tensor& full, const torch::Tensor& drop, const torch::Tensor& targets, const ContrastiveOptions& o) {
  auto score = (1 + o.beta) * full - o.beta * drop;
  torch::Tensor plausible;
  if (o.plausibility == Plausibility::None) {
    plausible = torch::ones_like(score, torch::kBool);
  } else {
    // p(v) >= α·max p  ⇔  logit(v) − max logit >= log α (softmax's normaliser cancels); α = 0 keeps all.
    const auto& view = o.plausibility == Plausibility::AlphaDrop ? drop : full;
    plausible = (view - std::get<0>(view.max(-1, true))) >= std::log(o.alpha);
  }
  plausible.scatter_(1, targets.unsqueeze(1), false);
  plausible &= ~torch::isnan(score);
  return score.masked_fill(~plausible, std::numeric_limits<double>::infinity());
}

// The first m tokens of one row in candidate order, from all tokens scored <= thr: the slow path, for rows
// where topk had to choose among tokens tied at its boundary (topk does not promise the lower ids).
std::vector<Scored> tiedRow(const torch::Tensor& masked, double thr, int64_t m) {
  auto row = masked.to(torch::kDouble).cpu();
  auto ids = toLongs((row <= thr).nonzero().squeeze(1));
  auto values = toDoubles(row.index_select(0, torch::tensor(ids, torch::kLong)));
  std::vector<Scored> out;
  for (size_t i = 0; i < ids.size(); ++i) out.emplace_back(values[i], ids[i]);
  std::sort(out.begin(), out.end(), candidateBefore);
  if (static_cast<int64_t>(out.size()) > m) out.resize(m);
  return out;
}

// Candidates of the selected rows: topk on the device, exact tie order on the host.
std::vector<std::vector<Scored>> replacementCandidates(const torch::Tensor& masked, int64_t c) {
  int64_t R = masked.size(0), m = std::min(c, masked.size(1));
  auto top = masked.topk(m, -1, /*largest=*/false, /*sorted=*/true);
  auto values = std::get<0>(top), ids = std::get<1>(top);
  auto thr = values.select(1, m - 1).unsqueeze(1);
  auto covered = ((masked < thr).sum(1) + (masked == thr).sum(1)).to(torch::kLong);
  auto v = toDoubles(values), thrs = toDoubles(thr);
  auto id = toLongs(ids), cov = toLongs(covered);
  std::vector<std::vector<Scored>> out(R);
  for (int64_t r = 0; r < R; ++r) {
    std::vector<Scored> picked;
    if (std::isfinite(thrs[r]) && cov[r] > m) {
      picked = tiedRow(masked[r], thrs[r], m);
    } else {
      for (int64_t k = 0; k < m; ++k) picked.emplace_back(v[r * m + k], id[r * m + k]);
      std::sort(picked.begin(), picked.end(), candidateBefore);
    }
    for (const auto& p : picked)
      if (std::isfinite(p.first)) out[r].push_back(p);
  }
  return out;
}

}  // namespace

std::vector<ContrastiveRow> contrastiveRows(const torch::Tensor& fullIn, const torch::Tensor& dropIn, const torch::Tensor& targetsIn,
                                            const torch::Tensor& eligibleIn, const std::vector<int64_t>& lengths,
                                            const ContrastiveOptions& o) {
  checkOptions(o);
  auto targetList = toLongs(targetsIn);
  auto eligibleList = toLongs(eligibleIn);
  checkInputs(fullIn, dropIn, targetList, eligibleList, lengths);
  torch::NoGradGuard noGrad;
  auto dtype = fullIn.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto full = fullIn.to(dtype);
  auto drop = dropIn.to(full.device(), dtype);
  auto device = full.device();
  auto targets = targetsIn.to(torch::kLong).to(device);
  auto has = targets >= 0;
  auto safe = targets.clamp_min(0).unsqueeze(1);
  auto fullT = full.gather(1, safe).squeeze(1), dropT = drop.gather(1, safe).squeeze(1);
  auto shift = ((fullT - full.logsumexp(-1)) - (dropT - drop.logsumexp(-1))).masked_fill(~has, 0);
  auto targetContrastive = ((1 + o.beta) * fullT - o.beta * dropT).masked_fill(~has, 0);
  auto shifts = toDoubles(shift), contrast = toDoubles(targetContrastive);

  std::vector<ContrastiveRow> rows(lengths.size());
  std::vector<int64_t> selected;  // global token index of every sensitive position, rows in order
  int64_t offset = 0;
  for (size_t b = 0; b < lengths.size(); ++b) {
    auto& row = rows[b];
    row.tokenShifts.assign(shifts.begin() + offset, shifts.begin() + offset + lengths[b]);
    row.targetContrastive.assign(contrast.begin() + offset, contrast.begin() + offset + lengths[b]);
    row.positions = sensitivePositions(shifts.data() + offset, eligibleList.data() + offset, lengths[b], o.n);
    for (auto t : row.positions) {
      row.shifts.push_back(shifts[offset + t]);
      selected.push_back(offset + t);
    }
    offset += lengths[b];
  }
  if (selected.empty()) return rows;

  auto index = torch::tensor(selected, torch::kLong).to(device);
  auto masked = maskedScores(full.index_select(0, index), drop.index_select(0, index), targets.index_select(0, index), o);
  auto picked = replacementCandidates(masked, o.candidates);
  size_t r = 0;
  for (auto& row : rows) {
    for (size_t s = 0; s < row.positions.size(); ++s, ++r) {
      row.candidates.emplace_back();
      row.scores.emplace_back();
      for (const auto& [score, token] : picked[r]) {
        row.candidates.back().push_back(token);
        row.scores.back().push_back(score);
      }
    }
  }
  return rows;
}

namespace {

Plausibility parsePlausibility(const std::string& name) {
  if (name == "alpha-drop") return Plausibility::AlphaDrop;
  if (name == "alpha-full") return Plausibility::AlphaFull;
  if (name == "none") return Plausibility::None;
  fail("E_ARG", "plausibility must be alpha-drop, alpha-full or none", "\"" + name + "\"");
}

Napi::Value required(const Napi::Object& o, const char* key) {
  auto v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) fail("E_ARG", std::string("option ") + key + " is required");
  return v;
}

// No defaults here: the paper's values live in lib/config.ts and the TypeScript wrapper passes them.
ContrastiveOptions parseOptions(const Napi::Object& o) {
  ContrastiveOptions c;
  c.beta = toNumber(required(o, "beta"), "option beta");
  c.n = toInt(required(o, "n"), "option n");
  c.alpha = toNumber(required(o, "alpha"), "option alpha");
  c.candidates = toInt(required(o, "candidates"), "option candidates");
  c.plausibility = parsePlausibility(optString(o, "plausibility", "alpha-drop"));
  checkOptions(c);
  return c;
}

Napi::Array numberArray(Napi::Env env, const std::vector<double>& v) {
  auto a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), v[i]);
  return a;
}

Napi::Array idArray(Napi::Env env, const std::vector<int64_t>& v) {
  auto a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), static_cast<double>(v[i]));
  return a;
}

Napi::Object rowObject(Napi::Env env, const ContrastiveRow& r) {
  auto o = Napi::Object::New(env);
  o.Set("positions", idArray(env, r.positions));
  o.Set("shifts", numberArray(env, r.shifts));
  auto candidates = Napi::Array::New(env, r.candidates.size()), scores = Napi::Array::New(env, r.scores.size());
  for (size_t s = 0; s < r.candidates.size(); ++s) {
    candidates.Set(static_cast<uint32_t>(s), idArray(env, r.candidates[s]));
    scores.Set(static_cast<uint32_t>(s), numberArray(env, r.scores[s]));
  }
  o.Set("candidates", candidates);
  o.Set("scores", scores);
  o.Set("tokenShifts", numberArray(env, r.tokenShifts));
  o.Set("targetContrastive", numberArray(env, r.targetContrastive));
  return o;
}

std::string shapeOf(const torch::Tensor& t) { return "[" + c10::Join(", ", t.sizes()) + "]"; }

// contrastiveScores(logitsFull [B,T,V], logitsDrop [B,T,V], targets int64 [B,T], eligible bool [B,T], options)
// → Promise<row[]>, one per b.
Napi::Value contrastiveScores(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto full = Tensor::unwrap(arg(info, 0), "logitsFull");
    auto drop = Tensor::unwrap(arg(info, 1), "logitsDrop");
    auto targets = Tensor::unwrap(arg(info, 2), "targets");
    auto eligible = Tensor::unwrap(arg(info, 3), "eligible");
    auto opts = parseOptions(optionsArg(info, 4));
    if (full.dim() != 3) fail("E_SHAPE", "logitsFull must be [batch, tokens, vocabulary]", shapeOf(full));
    if (drop.sizes() != full.sizes()) fail("E_SHAPE", "logitsDrop must have logitsFull's shape " + shapeOf(full), shapeOf(drop));
    auto rowsShape = full.sizes().slice(0, 2);
    if (targets.sizes() != rowsShape) fail("E_SHAPE", "targets must be [batch, tokens] = [" + c10::Join(", ", rowsShape) + "]", shapeOf(targets));
    if (eligible.sizes() != rowsShape) fail("E_SHAPE", "eligible must be [batch, tokens] = [" + c10::Join(", ", rowsShape) + "]", shapeOf(eligible));
    if (targets.scalar_type() != at::kLong && targets.scalar_type() != at::kInt) fail("E_DTYPE", "targets must be int64 or int32", dtypeName(targets.scalar_type()));
    if (eligible.scalar_type() != at::kBool && eligible.scalar_type() != at::kByte) fail("E_DTYPE", "eligible must be bool or uint8", dtypeName(eligible.scalar_type()));
    return runAsync(info.Env(), [full, drop, targets, eligible, opts]() -> Reply {
      int64_t B = full.size(0), T = full.size(1), V = full.size(2);
      auto rows = contrastiveRows(full.reshape({B * T, V}), drop.reshape({B * T, V}), targets.reshape({B * T}),
                                  (eligible.reshape({B * T}) != 0), std::vector<int64_t>(B, T), opts);
      return [rows](Napi::Env env) -> Napi::Value {
        auto out = Napi::Array::New(env, rows.size());
        for (size_t b = 0; b < rows.size(); ++b) out.Set(static_cast<uint32_t>(b), rowObject(env, rows[b]));
        return out;
      };
    });
  });
}

// A row's eligible mask: given (0/1 or booleans, one per answer token), or every token but BOS/EOS/PAD
// (config padTokenId; 0 when the config has none, the unk id of LLaMA/Mistral tokenizers).
std::vector<int64_t> eligibleOf(const Napi::Value& v, const Row& row, const VlmConfig& config, const std::string& where) {
  std::vector<int64_t> out;
  if (v.IsUndefined() || v.IsNull()) {
    for (auto id : row.answer) {
      bool special = id == config.text.bosTokenId || id == config.text.eosTokenId || id == config.text.padTokenId;
      out.push_back(special ? 0 : 1);
    }
    return out;
  }
  if (!v.IsArray()) fail("E_ARG", where + " must be an array of 0/1, one per answer token", describe(v));
  auto a = v.As<Napi::Array>();
  if (a.Length() != row.answer.size())
    fail("E_ARG", where + " has " + std::to_string(a.Length()) + " entries for " + std::to_string(row.answer.size()) + " answer tokens", describe(v));
  for (uint32_t i = 0; i < a.Length(); ++i) {
    auto x = a.Get(i);
    if (x.IsBoolean()) {
      out.push_back(x.As<Napi::Boolean>().Value() ? 1 : 0);
    } else {
      auto flag = toInt(x, where + "[" + std::to_string(i) + "]");
      if (flag != 0 && flag != 1) fail("E_ARG", where + "[" + std::to_string(i) + "] must be 0 or 1", std::to_string(flag));
      out.push_back(flag);
    }
  }
  return out;
}

Perturbation parseViewPerturbation(const Napi::Object& opts) {
  Perturbation p;
  p.kind = parsePerturbKind(optString(opts, "perturb", "token"));
  if (p.kind == PerturbKind::None) fail("E_ARG", "perturb must be token, pixel, patch or latent (the dropped view must differ)", "\"none\"");
  p.ratio = toNumber(required(opts, "ratio"), "option ratio");
  keptCount(1, p.ratio);  // validates the ratio
  return p;
}

// How the two views go through the decoder. 'joint' (the design): one batch of 2B rows. 'split': the
// image encoding is still shared, but each view is its own batch, so the dropped view's shorter rows are not
// padded to the full view's length (at LLaVA-Med's 576 visual tokens that padding is most of the cost).
enum class ViewLayout { Joint, Split };

ViewLayout parseViewLayout(const std::string& name) {
  if (name == "joint") return ViewLayout::Joint;
  if (name == "split") return ViewLayout::Split;
  fail("E_ARG", "views must be joint or split", "\"" + name + "\"");
}

// Hidden states predicting each answer token of rows [first, first + count) of `batch`, from their visual tokens.
torch::Tensor viewHidden(VlmImpl& vlm, const Batch& batch, const std::vector<torch::Tensor>& visual, size_t first, size_t count) {
  Batch view;
  view.pixels = batch.pixels;
  view.rows.assign(batch.rows.begin() + first, batch.rows.begin() + first + count);
  auto seq = vlm.assemble(view, std::vector<torch::Tensor>(visual.begin() + first, visual.begin() + first + count), false);
  auto hidden = vlm.language_model->forward(seq.embeds, seq.positions, seq.valid, nullptr);
  auto T = hidden.size(1);
  std::vector<int64_t> idx;
  for (size_t b = 0; b < count; ++b)
    for (size_t k = 0; k < view.rows[b].answer.size(); ++k) idx.push_back(static_cast<int64_t>(b) * T + seq.answerStart[b] + static_cast<int64_t>(k) - 1);
  auto index = torch::tensor(idx, torch::kLong).to(hidden.device());
  return hidden.reshape({-1, hidden.size(-1)}).index_select(0, index);
}

// [2N, H]: the full view's answer positions, then the dropped view's.
torch::Tensor twoViewHidden(VlmImpl& vlm, const Batch& both, const Perturbation& p, ViewLayout layout) {
  if (layout == ViewLayout::Joint) return vlm.answerHidden(both, p);
  auto visual = vlm.visualTokens(both, p);
  size_t B = both.rows.size() / 2;
  return torch::cat({viewHidden(vlm, both, visual, 0, B), viewHidden(vlm, both, visual, B, B)}, 0);
}

struct FusedInput {
  Batch batch;                    // every sample twice: rows [0, B) full view, [B, 2B) dropped view
  std::vector<int64_t> lengths;   // answer tokens per sample
  std::vector<int64_t> targets;   // all answer tokens, samples in order
  std::vector<int64_t> eligible;  // one flag per answer token
};

FusedInput parseFusedInput(const Napi::Value& batchArg, const VlmConfig& config, uint64_t seed) {
  FusedInput in;
  auto samples = parseBatch(batchArg, config, seed, false);
  auto jsRows = batchArg.As<Napi::Object>().Get("rows").As<Napi::Array>();
  in.batch.pixels = samples.pixels;
  for (size_t i = 0; i < samples.rows.size(); ++i) {
    auto row = samples.rows[i];
    auto where = "batch.rows[" + std::to_string(i) + "].eligible";
    auto flags = eligibleOf(jsRows.Get(static_cast<uint32_t>(i)).As<Napi::Object>().Get("eligible"), row, config, where);
    in.eligible.insert(in.eligible.end(), flags.begin(), flags.end());
    in.targets.insert(in.targets.end(), row.answer.begin(), row.answer.end());
    in.lengths.push_back(static_cast<int64_t>(row.answer.size()));
    row.perturb = false;
    in.batch.rows.push_back(row);
  }
  for (size_t i = 0; i < samples.rows.size(); ++i) {
    auto row = in.batch.rows[i];
    row.perturb = true;
    in.batch.rows.push_back(row);
  }
  return in;
}

// contrastiveForModel(model, batch, options) → Promise<row[]>, one per batch row. Each row is run twice, full
// and dropped view (its seed for the drop), sharing the image encoding: in ONE forward pass (views "joint",
// default) or one decoder batch per view ("split"). With options.debugLogits each result also carries its two
// [answer tokens, V] logit tensors.
Napi::Value contrastiveForModel(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto s = Model::state(arg(info, 0), "model");
    auto opts = optionsArg(info, 2);
    auto co = parseOptions(opts);
    auto p = parseViewPerturbation(opts);
    bool debug = optBool(opts, "debugLogits", false);
    auto layout = parseViewLayout(optString(opts, "views", "joint"));
    auto in = parseFusedInput(arg(info, 1), Model::vlmOf(s)->config, static_cast<uint64_t>(optInt(opts, "seed", 0)));
    return runAsync(info.Env(), [s, in, p, co, debug, layout]() -> Reply {
      std::lock_guard<std::mutex> lock(Model::mutexOf(s));
      torch::NoGradGuard noGrad;
      auto& vlm = Model::vlmOf(s);
      auto logits = vlm->language_model->logits(twoViewHidden(*vlm, in.batch, p, layout)).to(torch::kFloat);
      int64_t N = static_cast<int64_t>(in.targets.size());
      auto full = logits.slice(0, 0, N), drop = logits.slice(0, N, 2 * N);
      auto rows = contrastiveRows(full, drop, torch::tensor(in.targets, torch::kLong), torch::tensor(in.eligible, torch::kLong) != 0, in.lengths, co);
      std::vector<std::pair<torch::Tensor, torch::Tensor>> views;
      for (int64_t b = 0, off = 0; debug && b < static_cast<int64_t>(in.lengths.size()); off += in.lengths[b++])
        views.emplace_back(full.slice(0, off, off + in.lengths[b]).cpu().clone(), drop.slice(0, off, off + in.lengths[b]).cpu().clone());
      return [rows, views](Napi::Env env) -> Napi::Value {
        auto out = Napi::Array::New(env, rows.size());
        for (size_t b = 0; b < rows.size(); ++b) {
          auto o = rowObject(env, rows[b]);
          if (!views.empty()) {
            o.Set("logitsFull", Tensor::wrap(env, views[b].first));
            o.Set("logitsDrop", Tensor::wrap(env, views[b].second));
          }
          out.Set(static_cast<uint32_t>(b), o);
        }
        return out;
      };
    });
  });
}

}  // namespace

void registerContrastive(Napi::Env env, Napi::Object exports) {
  exports.Set("contrastiveScores", Napi::Function::New(env, contrastiveScores, "contrastiveScores"));
  exports.Set("contrastiveForModel", Napi::Function::New(env, contrastiveForModel, "contrastiveForModel"));
}

}  // namespace hscr
