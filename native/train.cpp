// Training bindings on a Model: LoRA adapters (add, enable/disable = reference policy, merge/unmerge),
// which parameters train, train/eval mode, the fused forward+backward step for SFT and MLPO/DPO, and the
// RNG state a resumable checkpoint needs. The optimizer step is in optimizer.cpp.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "op_profile.h"
#include "mlpo.h"
#include "model.h"
#include "parts.h"
#include "tensor.h"

namespace hscr {

static bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// { r, alpha, dropout, targets: string[] (module names' last part), scope: 'language_model' | 'all', seed }
// → the adapted modules' names. PEFT's defaults for LLaVA: the decoder's attention and MLP projections.
static Napi::Value addLora(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto s = Model::state(arg(info, 0), "model");
    auto o = optionsArg(info, 1);
    auto r = optInt(o, "r", 16);
    auto alpha = optNumber(o, "alpha", 32);
    auto dropout = optNumber(o, "dropout", 0.05);
    auto scope = optString(o, "scope", "language_model");
    auto seed = static_cast<uint64_t>(optInt(o, "seed", 0));
    std::vector<std::string> targets{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    if (!o.Get("targets").IsUndefined()) {
      if (!o.Get("targets").IsArray()) fail("E_ARG", "options.targets must be an array of module names", describe(o.Get("targets")));
      targets.clear();
      auto a = o.Get("targets").As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) targets.push_back(toString(a.Get(i), "options.targets[]"));
    }
    if (r < 1) fail("E_ARG", "LoRA rank r must be >= 1", std::to_string(r));
    if (!(dropout >= 0 && dropout < 1)) fail("E_ARG", "LoRA dropout must be in [0, 1)", std::to_string(dropout));
    if (scope != "language_model" && scope != "all") fail("E_ARG", "options.scope must be language_model or all", scope);
    std::lock_guard<std::mutex> lock(Model::mutexOf(s));
    auto& vlm = Model::vlmOf(s);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    std::vector<std::string> adapted;
    for (auto& m : vlm->named_modules("", false)) {
      auto* lin = dynamic_cast<LinearImpl*>(m.value().get());
      if (!lin || (scope == "language_model" && m.key().rfind("language_model.", 0) != 0) || m.key() == "language_model.lm_head") continue;
      bool wanted = std::any_of(targets.begin(), targets.end(), [&](const std::string& t) { return endsWith(m.key(), "." + t); });
      if (!wanted) continue;
      if (lin->hasLora()) fail("E_ARG", m.key() + " already has a LoRA adapter", m.key());
      torch::NoGradGuard g;
      lin->addLora(r, alpha, dropout, gen);
      lin->loraA->weight.set_data(lin->loraA->weight.to(lin->weight.device()));
      lin->loraB->weight.set_data(lin->loraB->weight.to(lin->weight.device()));
      adapted.push_back(m.key());
    }
    if (adapted.empty()) fail("E_ARG", "no module matched the LoRA targets", c10::Join(",", targets));
    auto out = Napi::Array::New(info.Env(), adapted.size());
    for (size_t i = 0; i < adapted.size(); ++i) out.Set(static_cast<uint32_t>(i), adapted[i]);
    return out;
  });
}

// 'lora': only adapter weights train (base frozen); 'full': everything; 'none': nothing.
static Napi::Value setTrainable(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto s = Model::state(arg(info, 0), "model");
    auto mode = toString(arg(info, 1), "mode");
    if (mode != "lora" && mode != "full" && mode != "none") fail("E_ARG", "mode must be lora, full or none", mode);
    std::lock_guard<std::mutex> lock(Model::mutexOf(s));
    int64_t count = 0;
    for (auto& p : Model::vlmOf(s)->named_parameters(true)) {
      bool isLora = p.key().find(".lora_A.") != std::string::npos || p.key().find(".lora_B.") != std::string::npos;
      bool on = mode == "full" || (mode == "lora" && isLora);
      p.value().set_requires_grad(on);
      if (on) count += p.value().numel();
    }
    if (mode == "lora" && count == 0) fail("E_ARG", "the model has no LoRA adapters: call addLora first");
    return Napi::Number::New(info.Env(), static_cast<double>(count));
  });
}

static Napi::Value setLoraEnabled(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto s = Model::state(arg(info, 0), "model");
    bool on = toBool(arg(info, 1), "enabled");
    std::lock_guard<std::mutex> lock(Model::mutexOf(s));
    Model::vlmOf(s)->setLoraEnabled(on);
    return info.Env().Undefined();
  });
}

static Napi::Value mergeLora(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto s = Model::state(arg(info, 0), "model");
    bool merge = arg(info, 1).IsUndefined() ? true : toBool(arg(info, 1), "merge");
    std::lock_guard<std::mutex> lock(Model::mutexOf(s));
    for (auto* l : Model::vlmOf(s)->linears()) merge ? l->merge() : l->unmerge();
    return info.Env().Undefined();
  });
}

static Napi::Value setTraining(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto s = Model::state(arg(info, 0), "model");
    bool on = toBool(arg(info, 1), "training");
    std::lock_guard<std::mutex> lock(Model::mutexOf(s));
    Model::vlmOf(s)->train(on);
    return info.Env().Undefined();
  });
}

// bf16 autocast on CUDA with fp32 master weights (the paper trains in bf16); CPU runs in fp32.
struct CudaAutocast {
  bool on;
  explicit CudaAutocast(bool enable) : on(enable) {
    if (!on) return;
#if TORCH_VERSION_MAJOR >= 2 && TORCH_VERSION_MINOR >= 4
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
#endif
  }
  ~CudaAutocast() {
    if (!on) return;
#if TORCH_VERSION_MAJOR >= 2 && TORCH_VERSION_MINOR >= 4
    at::autocast::set_autocast_enabled(at::kCUDA, false);
#else
    at::autocast::set_enabled(false);
#endif
    at::autocast::clear_cache();
  }
};

// Sequence log-prob of every row: the sum of its answer tokens' log-probs (autograd kept).
static torch::Tensor sequenceLogps(const torch::Tensor& tokenLogps, const Batch& batch) {
  std::vector<int64_t> rowOf;
  for (size_t r = 0; r < batch.rows.size(); ++r) rowOf.insert(rowOf.end(), batch.rows[r].answer.size(), static_cast<int64_t>(r));
  auto index = torch::tensor(rowOf, torch::TensorOptions().dtype(torch::kLong)).to(tokenLogps.device());
  return torch::zeros({static_cast<int64_t>(batch.rows.size())}, tokenLogps.options()).index_add(0, index, tokenLogps);
}

static double shareCount(const torch::Tensor& margins, const torch::Tensor& pairs) { return ((margins > 0) & pairs).sum().item<double>(); }

// spec.loss 'sft': loss = −Σ answer-token log-probs · scale.
// spec.loss 'mlpo': rows are grouped per sample: [chosen, rejected_1 … rejected_J] with J = spec.groups[i];
//   spec.referenceLogps (Float64Array, one per row) from the frozen SFT policy; loss = Σ_samples per-sample loss
//   · scale. The caller sets scale = 1 / (tokens or samples in the whole step, over micro-batches and ranks), so
//   that gradient accumulation and data parallelism add up to the single-process, single-batch gradient.
// Returns sums (not means) so the caller can aggregate exactly across micro-batches and ranks.
static Napi::Value forwardBackward(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto s = Model::state(arg(info, 0), "model");
    auto spec = optionsArg(info, 2);
    auto loss = optString(spec, "loss", "sft");
    if (loss != "sft" && loss != "mlpo") fail("E_ARG", "spec.loss must be sft or mlpo", loss);
    double scale = optNumber(spec, "scale", 1);
    bool autocast = optBool(spec, "autocastBf16", true) && Model::vlmOf(s)->language_model->embed_tokens->weight.is_cuda();
    auto p = parsePerturbation(spec);
    auto batch = parseBatch(arg(info, 1), Model::vlmOf(s)->config, static_cast<uint64_t>(optInt(spec, "seed", 0)), p.kind != PerturbKind::None);
    std::vector<int64_t> groups;
    std::vector<double> refs;
    MlpoOptions mo;
    // MLPO rows of a sample share image and prompt: by default that prefix runs once (vlm.h).
    bool sharedPrefix = loss == "mlpo" && optBool(spec, "sharedPrefix", true) && VlmImpl::sharedPrefixApplies(batch, p);
    if (loss == "mlpo") {
      groups = toIntList(spec.Get("groups"), "spec.groups");
      auto rv = spec.Get("referenceLogps");
      if (!rv.IsTypedArray() || rv.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
        fail("E_ARG", "spec.referenceLogps must be a Float64Array (one per row)", describe(rv));
      auto ra = rv.As<Napi::Float64Array>();
      refs.assign(ra.Data(), ra.Data() + ra.ElementLength());
      int64_t rows = 0;
      for (auto g : groups) {
        if (g < 0) fail("E_ARG", "spec.groups entries must be >= 0", std::to_string(g));
        rows += 1 + g;
      }
      if (rows != static_cast<int64_t>(batch.rows.size()))
        fail("E_SHAPE", "spec.groups covers " + std::to_string(rows) + " rows but the batch has " + std::to_string(batch.rows.size()));
      if (refs.size() != batch.rows.size()) fail("E_SHAPE", "spec.referenceLogps needs one value per row", std::to_string(refs.size()));
      mo = parseMlpoOptions(spec);
    }
    return runAsync(info.Env(), [s, batch, p, loss, scale, groups, refs, mo, autocast, sharedPrefix]() -> Reply {
      std::lock_guard<std::mutex> lock(Model::mutexOf(s));
      auto profile = opProfileIfRequested();
      torch::AutoGradMode grad(true);
      CudaAutocast amp(autocast);
      auto& vlm = Model::vlmOf(s);
      auto tokenLogps = sharedPrefix ? vlm->answerLogprobsSharedPrefix(batch) : vlm->answerLogprobs(batch, p);
      std::map<std::string, double> m;
      torch::Tensor seq;
      if (loss == "sft") {
        auto total = -tokenLogps.sum();
        (total * scale).backward();
        m["lossSum"] = total.item<double>();
        m["tokens"] = static_cast<double>(tokenLogps.numel());
        m["samples"] = static_cast<double>(batch.rows.size());
      } else {
        seq = sequenceLogps(tokenLogps, batch);
        int64_t B = static_cast<int64_t>(groups.size()), J = 0;
        for (auto g : groups) J = std::max(J, g);
        std::vector<int64_t> chosenIdx, rejIdx;
        std::vector<uint8_t> maskV;
        int64_t row = 0;
        for (auto g : groups) {
          chosenIdx.push_back(row);
          for (int64_t j = 0; j < J; ++j) {
            rejIdx.push_back(j < g ? row + 1 + j : row);  // padding points at the chosen row; masked out
            maskV.push_back(j < g);
          }
          row += 1 + g;
        }
        auto dev = seq.device();
        auto ci = torch::tensor(chosenIdx, torch::kLong).to(dev), ri = torch::tensor(rejIdx, torch::kLong).to(dev);
        auto refT = torch::tensor(refs, torch::kDouble).to(dev).to(seq.dtype());
        auto mask = torch::tensor(std::vector<int64_t>(maskV.begin(), maskV.end()), torch::kLong).to(torch::kBool).to(dev).view({B, J});
        auto t = mlpoTerms(seq.index_select(0, ci), seq.index_select(0, ri).view({B, J}), refT.index_select(0, ci),
                           refT.index_select(0, ri).view({B, J}), mask, mo);
        auto total = t.perSample.sum();
        (total * scale).backward();
        torch::NoGradGuard ng;
        m["lossSum"] = total.item<double>();
        m["explicitSum"] = t.explicitLoss.sum().item<double>();
        m["implicitSum"] = t.implicitLoss.sum().item<double>();
        m["samples"] = static_cast<double>(B);
        m["tokens"] = static_cast<double>(tokenLogps.numel());
        m["rewardChosenSum"] = t.rewardChosen.sum().item<double>();
        m["rewardRejectedSum"] = (t.rewardRejected * mask).sum().item<double>();
        m["rejected"] = mask.sum().item<double>();
        m["explicitPairs"] = t.explicitPairs.sum().item<double>();
        m["explicitCorrect"] = shareCount(t.explicitMargins, t.explicitPairs);
        m["explicitMarginSum"] = t.explicitMargins.sum().item<double>();
        m["implicitPairs"] = t.implicitPairs.sum().item<double>();
        m["implicitCorrect"] = shareCount(t.implicitMargins, t.implicitPairs);
        m["implicitMarginSum"] = t.implicitMargins.sum().item<double>();
        m["implicitRewardHigherSum"] = (t.rewardRejected.unsqueeze(2) * t.implicitPairs).sum().item<double>();
        m["implicitRewardLowerSum"] = (t.rewardRejected.unsqueeze(1) * t.implicitPairs).sum().item<double>();
        m["logpsChosenSum"] = seq.index_select(0, ci).sum().item<double>();
        m["logpsRejectedSum"] = (seq.index_select(0, ri).view({B, J}) * mask).sum().item<double>();
      }
      auto seqCopy = seq.defined() ? seq.detach().to(torch::kDouble).cpu() : torch::Tensor();
      return [m, seqCopy](Napi::Env env) -> Napi::Value {
        auto out = Napi::Object::New(env);
        for (auto& [k, v] : m) out.Set(k, v);
        if (seqCopy.defined()) {
          auto a = Napi::Float64Array::New(env, seqCopy.numel());
          std::memcpy(a.Data(), seqCopy.data_ptr<double>(), seqCopy.numel() * sizeof(double));
          out.Set("sequenceLogps", a);
        }
        return out;
      };
    });
  });
}

static Napi::Value rngState(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    return Tensor::wrap(info.Env(), gen.get_state());
  });
}

static Napi::Value setRngState(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto t = Tensor::unwrap(arg(info, 0), "state");
    if (t.scalar_type() != at::kByte) fail("E_DTYPE", "an RNG state is a uint8 tensor", dtypeName(t.scalar_type()));
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(t);
    return info.Env().Undefined();
  });
}

static Napi::Value manualSeed(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    torch::manual_seed(static_cast<uint64_t>(toInt(arg(info, 0), "seed")));
    return info.Env().Undefined();
  });
}

void registerTrain(Napi::Env env, Napi::Object exports) {
  exports.Set("addLora", Napi::Function::New(env, addLora, "addLora"));
  exports.Set("setTrainable", Napi::Function::New(env, setTrainable, "setTrainable"));
  exports.Set("setLoraEnabled", Napi::Function::New(env, setLoraEnabled, "setLoraEnabled"));
  exports.Set("mergeLora", Napi::Function::New(env, mergeLora, "mergeLora"));
  exports.Set("setTraining", Napi::Function::New(env, setTraining, "setTraining"));
  exports.Set("forwardBackward", Napi::Function::New(env, forwardBackward, "forwardBackward"));
  exports.Set("rngState", Napi::Function::New(env, rngState, "rngState"));
  exports.Set("setRngState", Napi::Function::New(env, setRngState, "setRngState"));
  exports.Set("manualSeed", Napi::Function::New(env, manualSeed, "manualSeed"));
}

}  // namespace hscr
