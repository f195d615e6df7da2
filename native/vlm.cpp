#include "vlm.h"

#include "common.h"

namespace hscr {

VlmImpl::VlmImpl(const VlmConfig& c) : config(c) {
  vision_tower = register_module("vision_tower", VisionTower(c.vision));
  multi_modal_projector = register_module("multi_modal_projector", Projector(c));
  language_model = register_module("language_model", Decoder(c.text));
}

void validateBatch(const VlmConfig& c, const Batch& b) {
  if (b.rows.empty()) fail("E_ARG", "a batch needs at least one row");
  if (!b.pixels.defined() || b.pixels.dim() != 4)
    fail("E_SHAPE", "pixels must be [images, channels, height, width]", b.pixels.defined() ? "[" + c10::Join(", ", b.pixels.sizes()) + "]" : "undefined");
  for (size_t r = 0; r < b.rows.size(); ++r) {
    const auto& row = b.rows[r];
    std::string where = "rows[" + std::to_string(r) + "]";
    if (row.image < 0 || row.image >= b.pixels.size(0))
      fail("E_ARG", where + ".image is not an index into pixels", std::to_string(row.image));
    if (std::count(row.prompt.begin(), row.prompt.end(), c.imageTokenIndex) != 1)
      fail("E_ARG", where + ".prompt must hold the image token " + std::to_string(c.imageTokenIndex) + " exactly once");
    for (auto* part : {&row.prompt, &row.answer})
      for (auto id : *part)
        if (id != c.imageTokenIndex && (id < 0 || id >= c.text.vocabSize))
          fail("E_ARG", where + " has a token id outside the vocabulary (0.." + std::to_string(c.text.vocabSize - 1) + ")", std::to_string(id));
  }
}

// Vision tower + feature selection + projector for a batch of images.
static torch::Tensor encode(VlmImpl& m, const torch::Tensor& pixels, const torch::Tensor& patchKeep, const torch::Tensor& latentMask) {
  auto h = m.vision_tower->forward(pixels, m.config.selectLayer, patchKeep, latentMask);
  if (m.config.selectFeature == "patch") h = h.slice(1, 1);
  return m.multi_modal_projector->forward(h.to(m.multi_modal_projector->linear_1->weight.dtype()));
}

std::vector<torch::Tensor> VlmImpl::visualTokens(const Batch& batch, const Perturbation& p) {
  const auto& rows = batch.rows;
  auto device = language_model->embed_tokens->weight.device();
  auto pixels = batch.pixels.to(device);
  std::vector<torch::Tensor> out(rows.size());

  bool needClean = false;
  for (const auto& r : rows) needClean |= !r.perturb || p.kind == PerturbKind::Token || p.kind == PerturbKind::None;
  torch::Tensor clean;
  if (needClean) clean = encode(*this, pixels, {}, {});  // each image once, however many rows use it

  std::vector<size_t> vitRows;  // rows whose perturbation happens before or inside the ViT
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (!r.perturb || p.kind == PerturbKind::None) {
      out[i] = clean[r.image];
    } else if (p.kind == PerturbKind::Token) {
      auto keep = keptIndices(clean.size(1), p.ratio, r.seed).to(device);
      out[i] = clean[r.image].index_select(0, keep);
    } else {
      vitRows.push_back(i);
    }
  }
  if (vitRows.empty()) return out;

  int64_t patches = config.vision.numPatches();
  std::vector<torch::Tensor> imgs, keeps, masks;
  for (auto i : vitRows) {
    const auto& r = rows[i];
    auto img = pixels[r.image];
    if (p.kind == PerturbKind::Pixel) {
      // Masked pixels become 0 after normalisation, i.e. the dataset's mean colour.
      img = img.masked_fill(pixelMask(img.size(1), img.size(2), p.ratio, r.seed).to(device), 0);
    } else {
      auto keep = keptIndices(patches, p.ratio, r.seed).to(device);
      if (p.kind == PerturbKind::Patch) {
        keeps.push_back(keep);
      } else {
        masks.push_back(torch::ones({patches}, torch::TensorOptions().dtype(torch::kBool).device(device)).index_fill(0, keep, false));
      }
    }
    imgs.push_back(img);
  }
  auto feats = encode(*this, torch::stack(imgs), keeps.empty() ? torch::Tensor() : torch::stack(keeps),
                      masks.empty() ? torch::Tensor() : torch::stack(masks));
  for (size_t j = 0; j < vitRows.size(); ++j) out[vitRows[j]] = feats[j];
  return out;
}

Sequences VlmImpl::assemble(const Batch& batch, const std::vector<torch::Tensor>& visual, bool padLeft,
                            const std::vector<std::vector<int64_t>>& extra) {
  auto device = language_model->embed_tokens->weight.device();
  size_t B = batch.rows.size();
  // All text of the batch embedded in one call, then cut back into rows.
  std::vector<int64_t> ids;
  std::vector<int64_t> before(B), after(B), answer(B);
  for (size_t b = 0; b < B; ++b) {
    const auto& r = batch.rows[b];
    auto at = std::find(r.prompt.begin(), r.prompt.end(), config.imageTokenIndex) - r.prompt.begin();
    before[b] = at;
    after[b] = static_cast<int64_t>(r.prompt.size()) - at - 1;
    answer[b] = static_cast<int64_t>(r.answer.size() + (extra.empty() ? 0 : extra[b].size()));
    ids.insert(ids.end(), r.prompt.begin(), r.prompt.begin() + at);
    ids.insert(ids.end(), r.prompt.begin() + at + 1, r.prompt.end());
    ids.insert(ids.end(), r.answer.begin(), r.answer.end());
    if (!extra.empty()) ids.insert(ids.end(), extra[b].begin(), extra[b].end());
  }
  auto text = language_model->embed(torch::tensor(ids, torch::TensorOptions().dtype(torch::kLong)).to(device));

  std::vector<torch::Tensor> seqs(B);
  std::vector<int64_t> lengths(B);
  int64_t offset = 0, T = 0;
  for (size_t b = 0; b < B; ++b) {
    auto pre = text.slice(0, offset, offset + before[b]);
    offset += before[b];
    auto post = text.slice(0, offset, offset + after[b] + answer[b]);
    offset += after[b] + answer[b];
    seqs[b] = torch::cat({pre, visual[b].to(text.dtype()), post}, 0);
    lengths[b] = seqs[b].size(0);
    T = std::max(T, lengths[b]);
  }

  auto H = text.size(1);
  Sequences s;
  std::vector<torch::Tensor> padded(B), pos(B), valid(B);
  auto longOpts = torch::TensorOptions().dtype(torch::kLong).device(device);
  for (size_t b = 0; b < B; ++b) {
    int64_t pad = T - lengths[b];
    auto zeros = torch::zeros({pad, H}, text.options());
    padded[b] = padLeft ? torch::cat({zeros, seqs[b]}, 0) : torch::cat({seqs[b], zeros}, 0);
    auto real = torch::arange(lengths[b], longOpts), none = torch::zeros({pad}, longOpts);
    pos[b] = padLeft ? torch::cat({none, real}) : torch::cat({real, none});
    auto ones = torch::ones({lengths[b]}, longOpts.dtype(torch::kBool)), off = torch::zeros({pad}, longOpts.dtype(torch::kBool));
    valid[b] = padLeft ? torch::cat({off, ones}) : torch::cat({ones, off});
    s.answerStart.push_back((padLeft ? pad : 0) + lengths[b] - answer[b]);
  }
  s.embeds = torch::stack(padded);
  s.positions = torch::stack(pos);
  s.valid = torch::stack(valid);
  return s;
}

torch::Tensor VlmImpl::answerHidden(const Batch& batch, const Perturbation& p) {
  auto seq = assemble(batch, visualTokens(batch, p), false);
  auto hidden = language_model->forward(seq.embeds, seq.positions, seq.valid, nullptr);
  auto T = hidden.size(1);
  std::vector<int64_t> idx;
  for (size_t b = 0; b < batch.rows.size(); ++b) {
    auto start = seq.answerStart[b];
    for (size_t k = 0; k < batch.rows[b].answer.size(); ++k) idx.push_back(static_cast<int64_t>(b) * T + start + static_cast<int64_t>(k) - 1);
  }
  auto index = torch::tensor(idx, torch::TensorOptions().dtype(torch::kLong)).to(hidden.device());
  return hidden.reshape({-1, hidden.size(-1)}).index_select(0, index);
}

// log p(target) of each row of logits [N, V]: the target's logit minus the row's logsumexp, as one autograd
// function whose backward writes the [N, V] gradient g·(onehot − softmax) in one tensor (eager composition
// makes three: logsumexp's, gather's zero-filled scatter, and their sum).
struct TargetLogprobsFn : torch::autograd::Function<TargetLogprobsFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logits, const torch::Tensor& targets) {
    auto lse = logits.logsumexp(-1);
    ctx->save_for_backward({logits, targets, lse});
    return logits.gather(1, targets.unsqueeze(1)).squeeze(1) - lse;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto g = grads[0].unsqueeze(1);
    auto d = (saved[0] - saved[2].unsqueeze(1)).exp_().mul_(-g);
    d.scatter_add_(1, saved[1].unsqueeze(1), g);
    return {d, torch::Tensor()};
  }
};

static torch::Tensor targetLogprobs(const torch::Tensor& logits, const torch::Tensor& targets) {
  return TargetLogprobsFn::apply(logits, targets);
}

torch::Tensor VlmImpl::answerLogprobs(const Batch& batch, const Perturbation& p) {
  auto logits = language_model->logits(answerHidden(batch, p)).to(torch::kFloat);
  std::vector<int64_t> targets;
  for (const auto& r : batch.rows) targets.insert(targets.end(), r.answer.begin(), r.answer.end());
  auto t = torch::tensor(targets, torch::TensorOptions().dtype(torch::kLong)).to(logits.device());
  return targetLogprobs(logits, t);
}

bool VlmImpl::sharedPrefixApplies(const Batch& batch, const Perturbation& p) {
  if (p.kind == PerturbKind::None) return true;
  return std::none_of(batch.rows.begin(), batch.rows.end(), [](const Row& r) { return r.perturb; });
}

torch::Tensor VlmImpl::answerLogprobsSharedPrefix(const Batch& batch) {
  const auto& rows = batch.rows;
  size_t R = rows.size();
  auto device = language_model->embed_tokens->weight.device();
  // Groups of rows with the same image and prompt, in order of first appearance.
  std::vector<int64_t> groupOf(R);
  std::vector<size_t> leader;  // a row of each group
  for (size_t r = 0; r < R; ++r) {
    size_t g = 0;
    while (g < leader.size() && !(rows[leader[g]].image == rows[r].image && rows[leader[g]].prompt == rows[r].prompt)) ++g;
    if (g == leader.size()) leader.push_back(r);
    groupOf[r] = static_cast<int64_t>(g);
  }
  size_t S = leader.size();

  // 1. Prefixes: each group's image + prompt, right-padded, once.
  Batch prefixBatch{batch.pixels, {}};
  for (auto r : leader) prefixBatch.rows.push_back(Row{rows[r].image, rows[r].prompt, {}, false, 0});
  auto visual = visualTokens(prefixBatch, Perturbation{});
  auto pre = assemble(prefixBatch, visual, false);
  std::vector<int64_t> prefixLen(S);
  for (size_t g = 0; g < S; ++g) prefixLen[g] = pre.answerStart[g];  // no answer: start = length
  // Of the prefix, only its last token's hidden state is read (it predicts the first answer token): the last
  // layer computes that position alone; its keys/values still cover the whole prefix.
  std::vector<int64_t> lastOf(S);
  for (size_t g = 0; g < S; ++g) lastOf[g] = prefixLen[g] - 1;
  auto keep = torch::tensor(lastOf, torch::TensorOptions().dtype(torch::kLong)).to(device);
  KvCache cache;
  auto prefixHidden = language_model->forward(pre.embeds, pre.positions, pre.valid, &cache, keep);  // [S, 1, H]
  auto P = prefixHidden.size(1), H = prefixHidden.size(2);

  // 2. Answers: every row's answer tokens but the last (nothing is predicted from it), right-padded,
  //    attending to its group's prefix keys/values (copied per row; index_select keeps the gradient path).
  int64_t L = 0;
  for (const auto& r : rows) L = std::max<int64_t>(L, static_cast<int64_t>(r.answer.size()) - 1);
  torch::Tensor answerHiddenFlat;
  if (L > 0) {
    std::vector<int64_t> ids(R * L, 0), pos(R * L, 0);
    std::vector<uint8_t> valid(R * L, 0);
    for (size_t r = 0; r < R; ++r) {
      auto n = static_cast<int64_t>(rows[r].answer.size()) - 1;
      for (int64_t k = 0; k < n; ++k) {
        ids[r * L + k] = rows[r].answer[k];
        pos[r * L + k] = prefixLen[groupOf[r]] + k;
        valid[r * L + k] = 1;
      }
    }
    auto longOpts = torch::TensorOptions().dtype(torch::kLong);
    auto R64 = static_cast<int64_t>(R);
    auto idsT = torch::tensor(ids, longOpts).view({R64, L}).to(device);
    auto posT = torch::tensor(pos, longOpts).view({R64, L}).to(device);
    auto validT = torch::tensor(std::vector<int64_t>(valid.begin(), valid.end()), longOpts).view({R64, L}).to(torch::kBool).to(device);
    auto gi = torch::tensor(groupOf, longOpts).to(device);
    KvCache rowCache;
    for (size_t l = 0; l < cache.keys.size(); ++l) {
      rowCache.keys.push_back(cache.keys[l].index_select(0, gi));
      rowCache.values.push_back(cache.values[l].index_select(0, gi));
    }
    rowCache.positions = cache.positions.index_select(0, gi);
    rowCache.valid = cache.valid.index_select(0, gi);
    auto h = language_model->forward(language_model->embed(idsT), posT, validT, &rowCache);  // [R, L, H]
    answerHiddenFlat = h.reshape({-1, H});
  }

  // 3. The hidden state that predicts each answer token: the prefix's last for the first, else the answer pass.
  std::vector<int64_t> idx, targets;
  for (size_t r = 0; r < R; ++r) {
    const auto& a = rows[r].answer;
    for (size_t k = 0; k < a.size(); ++k) {
      idx.push_back(k == 0 ? groupOf[r] * P : static_cast<int64_t>(S) * P + static_cast<int64_t>(r) * L + static_cast<int64_t>(k) - 1);
      targets.push_back(a[k]);
    }
  }
  auto all = answerHiddenFlat.defined() ? torch::cat({prefixHidden.reshape({-1, H}), answerHiddenFlat}, 0) : prefixHidden.reshape({-1, H});
  auto index = torch::tensor(idx, torch::TensorOptions().dtype(torch::kLong)).to(device);
  auto logits = language_model->logits(all.index_select(0, index)).to(torch::kFloat);
  return targetLogprobs(logits, torch::tensor(targets, torch::TensorOptions().dtype(torch::kLong)).to(device));
}

// Greedy argmax, or temperature + nucleus (top-p) sampling from a seeded generator.
static torch::Tensor pickTokens(const torch::Tensor& logits, const GenerateOptions& o, at::Generator& gen) {
  if (o.temperature <= 0) return logits.argmax(-1);
  auto probs = torch::softmax(logits.to(torch::kFloat).cpu() / o.temperature, -1);
  if (o.topP < 1) {
    auto sorted = probs.sort(-1, true);
    auto sp = std::get<0>(sorted), si = std::get<1>(sorted);
    auto drop = (sp.cumsum(-1) - sp) > o.topP;  // keeps the smallest prefix reaching top-p (never empty)
    sp = sp.masked_fill(drop, 0);
    probs = torch::zeros_like(probs).scatter(-1, si, sp);
  }
  return torch::multinomial(probs, 1, false, gen).squeeze(1).to(logits.device());
}

Generation VlmImpl::generate(const Batch& batch, const Perturbation& p, const GenerateOptions& o) {
  torch::NoGradGuard noGrad;
  size_t B = batch.rows.size();
  auto visual = visualTokens(batch, p);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  Generation g;
  g.tokens.assign(B, {});
  g.finished.assign(B, false);
  auto eos = config.text.eosTokenId;

  KvCache cache;
  torch::Tensor lastPos, next;
  for (int64_t step = 0; step < o.maxNewTokens; ++step) {
    torch::Tensor hidden;
    if (!o.useCache || step == 0) {
      // Left padding puts every row's newest token in the last column.
      auto seq = assemble(batch, visual, true, o.useCache ? std::vector<std::vector<int64_t>>{} : g.tokens);
      hidden = language_model->forward(seq.embeds, seq.positions, seq.valid, o.useCache ? &cache : nullptr);
      lastPos = seq.positions.select(1, -1);
    } else {
      lastPos = lastPos + 1;
      auto valid = torch::ones({static_cast<int64_t>(B), 1}, torch::TensorOptions().dtype(torch::kBool).device(next.device()));
      hidden = language_model->forward(language_model->embed(next.unsqueeze(1)), lastPos.unsqueeze(1), valid, &cache);
    }
    auto logits = language_model->logits(hidden.select(1, -1)).to(torch::kFloat);
    next = pickTokens(logits, o, gen);
    auto chosen = next.cpu();
    bool all = true;
    for (size_t b = 0; b < B; ++b) {
      if (g.finished[b]) continue;
      int64_t tok = chosen[b].item<int64_t>();
      if (tok == eos) {
        g.finished[b] = true;
      } else {
        g.tokens[b].push_back(tok);
        all = false;
      }
    }
    if (all) break;
  }
  return g;
}

std::vector<LinearImpl*> VlmImpl::linears() {
  std::vector<LinearImpl*> out;
  for (auto& m : modules(false))
    if (auto* l = dynamic_cast<LinearImpl*>(m.get())) out.push_back(l);
  return out;
}

void VlmImpl::setLoraEnabled(bool on) {
  for (auto* l : linears()) l->loraEnabled = on;
}

}  // namespace hscr
