// AdamW with decoupled weight decay, step for step the arithmetic of torch.optim.AdamW (single-tensor path),
// global-norm gradient clipping as torch.nn.utils.clip_grad_norm_, and the gradient all-reduce of data
// parallelism. The learning rate comes from the caller every step (the schedule lives in lib/train).
#include <cmath>
#include <limits>

#include "distributed.h"
#include "model.h"
#include "parts.h"
#include "safetensors.h"
#include "tensor.h"

namespace hscr {

static const napi_type_tag kOptimizerTag = {0x687363726f707400ULL, 0x0000000000000004ULL};

struct AdamWState {
  std::shared_ptr<ModelState> model;  // null for an optimizer over plain tensors
  std::mutex ownMutex;
  std::vector<std::string> names;
  std::vector<torch::Tensor> params, expAvg, expAvgSq;
  int64_t step = 0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0;
};

static std::unique_lock<std::mutex> lockFor(AdamWState& s) {
  return std::unique_lock<std::mutex>(s.model ? Model::mutexOf(s.model) : s.ownMutex);
}

class Optimizer : public Napi::ObjectWrap<Optimizer> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    auto cls = DefineClass(env, "Optimizer",
                           {
                               StaticMethod("create", &Optimizer::create),
                               InstanceMethod("step", &Optimizer::step),
                               InstanceMethod("save", &Optimizer::save),
                               InstanceMethod("load", &Optimizer::load),
                               InstanceAccessor("stepCount", &Optimizer::stepCount, nullptr),
                               InstanceMethod("parameterNames", &Optimizer::parameterNames),
                           });
    addonData(env).optimizerClass = Napi::Persistent(cls);
    exports.Set("Optimizer", cls);
  }

  explicit Optimizer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Optimizer>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::Error(info.Env(), makeJsError(info.Env(), "E_ARG", "use Optimizer.create(model, options)", ""));
    auto* s = info[0].As<Napi::External<std::shared_ptr<AdamWState>>>().Data();
    s_ = *s;
    delete s;
    info.This().As<Napi::Object>().TypeTag(&kOptimizerTag);
  }

 private:
  // Over a model's trainable parameters (requires_grad), in registration order, or over a list of plain
  // tensors (updated in place; their gradients come with each step) for cross-checks.
  static Napi::Value create(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      auto o = optionsArg(info, 1);
      auto s = std::make_shared<AdamWState>();
      if (arg(info, 0).IsArray()) {
        auto arr = arg(info, 0).As<Napi::Array>();
        for (uint32_t i = 0; i < arr.Length(); ++i) {
          auto t = Tensor::unwrap(arr.Get(i), "tensors[" + std::to_string(i) + "]");
          if (!t.is_floating_point()) fail("E_DTYPE", "optimised tensors must be floating point", dtypeName(t.scalar_type()));
          s->names.push_back(std::to_string(i));
          s->params.push_back(t);
          s->expAvg.push_back(torch::zeros_like(t));
          s->expAvgSq.push_back(torch::zeros_like(t));
        }
      }
      auto model = arg(info, 0).IsArray() ? nullptr : Model::state(arg(info, 0), "model");
      s->model = model;
      s->beta1 = optNumber(o, "beta1", 0.9);
      s->beta2 = optNumber(o, "beta2", 0.999);
      s->eps = optNumber(o, "eps", 1e-8);
      s->weightDecay = optNumber(o, "weightDecay", 0);
      if (!(s->beta1 >= 0 && s->beta1 < 1 && s->beta2 >= 0 && s->beta2 < 1)) fail("E_ARG", "betas must be in [0, 1)");
      if (model) {
      std::lock_guard<std::mutex> lock(Model::mutexOf(model));
      for (auto& p : Model::vlmOf(model)->named_parameters(true)) {
        if (!p.value().requires_grad()) continue;
        s->names.push_back(p.key());
        s->params.push_back(p.value());
        s->expAvg.push_back(torch::zeros_like(p.value(), torch::MemoryFormat::Preserve));
        s->expAvgSq.push_back(torch::zeros_like(p.value(), torch::MemoryFormat::Preserve));
      }
      }
      if (s->params.empty()) fail("E_ARG", "the model has no trainable parameters (add LoRA or set full fine-tuning first)");
      return addonData(info.Env()).optimizerClass.New({Napi::External<std::shared_ptr<AdamWState>>::New(info.Env(), new std::shared_ptr<AdamWState>(s))});
    });
  }

  std::shared_ptr<AdamWState> live() {
    if (!s_) fail("E_DISPOSED", "optimizer was disposed");
    return s_;
  }

  // { lr, maxGradNorm (0 = off), processGroup?, skip? } → { gradNorm, step, skipped }. Gradients are zeroed
  // afterwards. The update is skipped (no weight, moment or step-count change, as torch's GradScaler skips
  // optimizer.step) when options.skip is set (the caller saw a non-finite loss) or the global gradient norm,
  // after the all-reduce and so the same on every rank, is NaN/Inf. An update that still leaves a weight
  // non-finite (a learning rate that overflows) is an E_NONFINITE, and the model refuses further use.
  Napi::Value step(const Napi::CallbackInfo& info) {
    return guardedPromise(info, [&]() -> Napi::Value {
      auto s = live();
      auto o = optionsArg(info, 0);
      double lr = toNumber(o.Get("lr"), "options.lr");
      if (!std::isfinite(lr)) fail("E_ARG", "options.lr must be finite", std::to_string(lr));
      double maxNorm = optNumber(o, "maxGradNorm", 0);
      bool skip = optBool(o, "skip", false);
      std::shared_ptr<ProcessGroupHandle> pg;
      if (!o.Get("processGroup").IsUndefined() && !o.Get("processGroup").IsNull()) pg = ProcessGroup::handle(o.Get("processGroup"), "options.processGroup");
      std::vector<torch::Tensor> given;
      if (!o.Get("grads").IsUndefined()) {
        if (!o.Get("grads").IsArray()) fail("E_ARG", "options.grads must be an array of tensors", describe(o.Get("grads")));
        auto arr = o.Get("grads").As<Napi::Array>();
        if (arr.Length() != s->params.size()) fail("E_SHAPE", "options.grads needs one tensor per parameter", std::to_string(arr.Length()));
        for (uint32_t i = 0; i < arr.Length(); ++i) {
          given.push_back(Tensor::unwrap(arr.Get(i), "options.grads[" + std::to_string(i) + "]"));
          if (given.back().sizes() != s->params[i].sizes()) fail("E_SHAPE", "options.grads[" + std::to_string(i) + "] does not match its parameter");
          if (!given.back().is_floating_point()) fail("E_DTYPE", "options.grads[" + std::to_string(i) + "] must be floating point", dtypeName(given.back().scalar_type()));
        }
      }
      return runAsync(info.Env(), [s, lr, maxNorm, pg, given, skip]() -> Reply {
        auto lock = lockFor(*s);
        torch::NoGradGuard g;
        std::vector<torch::Tensor> grads;
        for (size_t i = 0; i < s->params.size(); ++i) {
          auto& p = s->params[i];
          if (!given.empty()) p.mutable_grad() = given[i].to(p.dtype()).clone();
          if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
          grads.push_back(p.grad());
        }
        if (pg && pg->size > 1) allreduceBucketed(*pg, grads);
        std::vector<torch::Tensor> norms;
        for (auto& gr : grads) norms.push_back(torch::norm(gr, 2));
        double total = torch::norm(torch::stack(norms), 2).item<double>();
        const bool skipped = skip || !std::isfinite(total);
        if (!skipped) update(*s, grads, lr, maxNorm, total);
        for (auto& gr : grads) gr.zero_();
        int64_t step = s->step;
        return [total, step, skipped](Napi::Env env) -> Napi::Value {
          auto out = Napi::Object::New(env);
          out.Set("gradNorm", total);
          out.Set("step", static_cast<double>(step));
          out.Set("skipped", skipped);
          return out;
        };
      });
    });
  }

  static void update(AdamWState& s, std::vector<torch::Tensor>& grads, double lr, double maxNorm, double total) {
    if (maxNorm > 0) {
      auto coef = std::min(maxNorm / (total + 1e-6), 1.0);
      for (auto& gr : grads) gr.mul_(coef);
    }
    const double nextStep = static_cast<double>(s.step + 1);
    double bc1 = 1 - std::pow(s.beta1, nextStep);
    double bc2 = 1 - std::pow(s.beta2, nextStep);
    double stepSize = lr / bc1, bc2Sqrt = std::sqrt(bc2);
    // Scalars the kernels take in the weights' dtype: one beyond its range would fail inside libtorch after
    // some weights had already moved. Refused before anything changes.
    const double decay = 1 - lr * s.weightDecay;
    for (const auto& p : s.params) {
      const double limit = p.scalar_type() == at::kDouble ? std::numeric_limits<double>::max()
                           : p.scalar_type() == at::kHalf ? 65504.0
                                                           : static_cast<double>(std::numeric_limits<float>::max());
      if (!(std::abs(stepSize) <= limit && std::abs(decay) <= limit))
        fail("E_NONFINITE",
             "learning rate " + std::to_string(lr) + " gives an AdamW step size of " + std::to_string(stepSize) + " (decay factor " +
                 std::to_string(decay) + "), beyond the range of " + dtypeName(p.scalar_type()) + "; nothing was updated",
             std::to_string(lr));
    }
    s.step += 1;
    for (size_t i = 0; i < s.params.size(); ++i) {
      auto& p = s.params[i];
      p.mul_(1 - lr * s.weightDecay);
      s.expAvg[i].mul_(s.beta1).add_(grads[i], 1 - s.beta1);
      s.expAvgSq[i].mul_(s.beta2).addcmul_(grads[i], grads[i], 1 - s.beta2);
      auto denom = (s.expAvgSq[i].sqrt() / bc2Sqrt).add_(s.eps);
      p.addcdiv_(s.expAvg[i], denom, -stepSize);
    }
    for (size_t i = 0; i < s.params.size(); ++i) {
      if (int64_t n = nonFiniteCount(s.params[i])) {
        if (s.model) Model::markNonFinite(s.model, s.names[i]);
        fail("E_NONFINITE",
             "AdamW step " + std::to_string(s.step) + " (lr " + std::to_string(lr) + ") left parameter " + s.names[i] + " with " +
                 nonFiniteSummary(s.params[i], n) + ": the learning rate overflows the weights; the model in memory is unusable",
             s.names[i]);
      }
    }
  }

  // Moments as safetensors (exp_avg.<param>, exp_avg_sq.<param>), the step count in the metadata.
  Napi::Value save(const Napi::CallbackInfo& info) {
    return guardedPromise(info, [&]() -> Napi::Value {
      auto s = live();
      auto path = toString(arg(info, 0), "path");
      return runAsync(info.Env(), [s, path]() -> Reply {
        auto lock = lockFor(*s);
        std::vector<std::pair<std::string, torch::Tensor>> out;
        for (size_t i = 0; i < s->names.size(); ++i) {
          for (const auto* m : {&s->expAvg[i], &s->expAvgSq[i]})
            if (int64_t n = nonFiniteCount(*m))
              fail("E_NONFINITE", "refusing to write " + path + ": the AdamW moments of " + s->names[i] + " hold " + nonFiniteSummary(*m, n), s->names[i]);
          out.emplace_back("exp_avg." + s->names[i], s->expAvg[i].cpu());
          out.emplace_back("exp_avg_sq." + s->names[i], s->expAvgSq[i].cpu());
        }
        safetensors::write(path, out,
                           {{"step", std::to_string(s->step)}, {"optimizer", "adamw"}, {"beta1", std::to_string(s->beta1)},
                            {"beta2", std::to_string(s->beta2)}, {"eps", std::to_string(s->eps)}});
        return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
      });
    });
  }

  Napi::Value load(const Napi::CallbackInfo& info) {
    return guardedPromise(info, [&]() -> Napi::Value {
      auto s = live();
      auto path = toString(arg(info, 0), "path");
      return runAsync(info.Env(), [s, path]() -> Reply {
        auto lock = lockFor(*s);
        auto f = safetensors::read(path);
        std::map<std::string, torch::Tensor> byName(f.tensors.begin(), f.tensors.end());
        torch::NoGradGuard g;
        for (size_t i = 0; i < s->names.size(); ++i) {
          for (auto [prefix, dst] : {std::make_pair("exp_avg.", &s->expAvg[i]), std::make_pair("exp_avg_sq.", &s->expAvgSq[i])}) {
            auto it = byName.find(prefix + s->names[i]);
            if (it == byName.end()) fail("E_CHECKPOINT", path + " has no " + prefix + s->names[i], s->names[i]);
            if (it->second.sizes() != dst->sizes()) fail("E_CHECKPOINT", path + ": " + prefix + s->names[i] + " has the wrong shape", s->names[i]);
            if (!it->second.is_floating_point())
              fail("E_DTYPE", path + ": " + prefix + s->names[i] + " must be floating point", safetensors::dtypeTag(it->second.scalar_type()));
            if (int64_t n = nonFiniteCount(it->second))
              fail("E_CHECKPOINT", path + ": " + prefix + s->names[i] + " holds " + nonFiniteSummary(it->second, n), prefix + s->names[i]);
          }
        }
        auto st = f.metadata.find("step");
        if (st == f.metadata.end()) fail("E_CHECKPOINT", path + " has no step in its metadata");
        int64_t savedStep = -1;
        try {
          size_t used = 0;
          savedStep = std::stoll(st->second, &used);
          if (used != st->second.size()) savedStep = -1;
        } catch (...) {
        }
        if (savedStep < 0) fail("E_CHECKPOINT", path + ": metadata step must be an integer >= 0", st->second);
        // Every check passed: only now does the optimizer state change.
        for (size_t i = 0; i < s->names.size(); ++i) {
          for (auto [prefix, dst] : {std::make_pair("exp_avg.", &s->expAvg[i]), std::make_pair("exp_avg_sq.", &s->expAvgSq[i])}) {
            dst->copy_(byName.at(prefix + s->names[i]));
          }
        }
        s->step = savedStep;
        return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
      });
    });
  }

  Napi::Value stepCount(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(live()->step)); });
  }

  Napi::Value parameterNames(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      auto s = live();
      auto a = Napi::Array::New(info.Env(), s->names.size());
      for (size_t i = 0; i < s->names.size(); ++i) a.Set(static_cast<uint32_t>(i), s->names[i]);
      return a;
    });
  }

  std::shared_ptr<AdamWState> s_;
};

void registerOptimizer(Napi::Env env, Napi::Object exports) { Optimizer::Init(env, exports); }

}  // namespace hscr
