#include "mlpo.h"

#include "common.h"
#include "model.h"
#include "parts.h"
#include "tensor.h"

namespace hscr {

MlpoTerms mlpoTerms(const torch::Tensor& pc, const torch::Tensor& pr, const torch::Tensor& rc, const torch::Tensor& rr,
                    const torch::Tensor& mask, const MlpoOptions& o) {
  if (pc.dim() != 1 || pr.dim() != 2 || pr.size(0) != pc.size(0) || rc.sizes() != pc.sizes() || rr.sizes() != pr.sizes() ||
      mask.sizes() != pr.sizes())
    fail("E_SHAPE", "mlpo needs chosen [B], rejected [B, J], reference alike and mask [B, J]",
         "[" + c10::Join(", ", pc.sizes()) + "], [" + c10::Join(", ", pr.sizes()) + "], mask [" + c10::Join(", ", mask.sizes()) + "]");
  MlpoTerms t;
  auto valid = mask.to(torch::kBool);
  t.rewardChosen = o.gamma * (pc - rc);
  t.rewardRejected = o.gamma * (pr - rr);
  auto J = pr.size(1);

  t.explicitPairs = valid;
  t.explicitMargins = (t.rewardChosen.unsqueeze(1) - t.rewardRejected).masked_fill(~valid, 0);
  auto eLoss = -torch::nn::functional::logsigmoid(t.explicitMargins) * valid;

  // Pair (j, m) with j ranked before m (j < m): the more similar answer should out-score the less similar one.
  auto upper = torch::ones({J, J}, valid.options()).triu(1);
  t.implicitPairs = valid.unsqueeze(2) & valid.unsqueeze(1) & upper.unsqueeze(0);
  t.implicitMargins = (t.rewardRejected.unsqueeze(2) - t.rewardRejected.unsqueeze(1)).masked_fill(~t.implicitPairs, 0);
  auto iLoss = -torch::nn::functional::logsigmoid(t.implicitMargins) * t.implicitPairs;

  t.explicitLoss = eLoss.sum(1);
  t.implicitLoss = iLoss.sum({1, 2});
  if (o.meanPairs) {
    t.explicitLoss = t.explicitLoss / t.explicitPairs.sum(1).clamp_min(1).to(t.explicitLoss.dtype());
    t.implicitLoss = t.implicitLoss / t.implicitPairs.sum({1, 2}).clamp_min(1).to(t.implicitLoss.dtype());
  }
  t.perSample = o.lambdaExplicit * t.explicitLoss + o.lambdaImplicit * t.implicitLoss;
  return t;
}

MlpoOptions parseMlpoOptions(const Napi::Object& opts) {
  MlpoOptions o;
  o.gamma = optNumber(opts, "gamma", 0.1);
  o.lambdaExplicit = optNumber(opts, "lambdaExplicit", 1);
  o.lambdaImplicit = optNumber(opts, "lambdaImplicit", 1);
  auto w = optString(opts, "pairWeighting", "sum");
  if (w != "sum" && w != "mean") fail("E_ARG", "pairWeighting must be sum or mean", "\"" + w + "\"");
  o.meanPairs = w == "mean";
  if (!(o.gamma > 0)) fail("E_ARG", "gamma must be > 0", std::to_string(o.gamma));
  return o;
}

static double share(const torch::Tensor& margins, const torch::Tensor& pairs) {
  auto n = pairs.sum().item<double>();
  return n > 0 ? ((margins > 0) & pairs).sum().item<double>() / n : 0.0;
}

// The loss as a plain op on tensors: mean over the batch, its parts, and its gradients with respect to the
// policy log-probs — the code path the trainer uses, exposed for users and cross-checks.
static Napi::Value mlpoLossBinding(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto in = toObject(arg(info, 0), "inputs");
    auto pc = Tensor::unwrap(in.Get("policyChosen"), "inputs.policyChosen");
    auto pr = Tensor::unwrap(in.Get("policyRejected"), "inputs.policyRejected");
    auto rc = Tensor::unwrap(in.Get("referenceChosen"), "inputs.referenceChosen");
    auto rr = Tensor::unwrap(in.Get("referenceRejected"), "inputs.referenceRejected");
    auto mask = Tensor::unwrap(in.Get("mask"), "inputs.mask");
    for (auto* t : {&pc, &pr, &rc, &rr})
      if (!t->is_floating_point()) fail("E_DTYPE", "log-probs must be floating point", dtypeName(t->scalar_type()));
    auto o = parseMlpoOptions(optionsArg(info, 1));
    return runAsync(info.Env(), [=]() -> Reply {
      torch::AutoGradMode grad(true);
      auto pcg = pc.detach().clone().requires_grad_(true), prg = pr.detach().clone().requires_grad_(true);
      auto t = mlpoTerms(pcg, prg, rc, rr, mask, o);
      auto loss = t.perSample.mean();
      loss.backward();
      auto B = static_cast<double>(pc.size(0));
      double lossV = loss.item<double>(), eV = t.explicitLoss.sum().item<double>() / B, iV = t.implicitLoss.sum().item<double>() / B;
      double accE = share(t.explicitMargins, t.explicitPairs), accI = share(t.implicitMargins, t.implicitPairs);
      auto gc = pcg.grad().detach(), gr = prg.grad().detach();
      auto rewC = t.rewardChosen.detach(), rewR = t.rewardRejected.detach();
      return [=](Napi::Env env) -> Napi::Value {
        auto out = Napi::Object::New(env);
        out.Set("loss", lossV);
        out.Set("explicit", eV);
        out.Set("implicit", iV);
        out.Set("explicitAccuracy", accE);
        out.Set("implicitAccuracy", accI);
        out.Set("gradPolicyChosen", Tensor::wrap(env, gc));
        out.Set("gradPolicyRejected", Tensor::wrap(env, gr));
        out.Set("rewardChosen", Tensor::wrap(env, rewC));
        out.Set("rewardRejected", Tensor::wrap(env, rewR));
        return out;
      };
    });
  });
}

void registerMlpo(Napi::Env env, Napi::Object exports) {
  exports.Set("mlpoLoss", Napi::Function::New(env, mlpoLossBinding, "mlpoLoss"));
}

}  // namespace hscr
