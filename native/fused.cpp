#include "fused.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <cmath>

namespace hscr::fused {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool applies(const torch::Tensor& x) { return x.defined() && x.device().is_cpu() && x.scalar_type() == torch::kFloat; }

// ---- RMSNorm ------------------------------------------------------------------------------------------------

struct RmsNormFn : torch::autograd::Function<RmsNormFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight, double eps) {
    auto xc = x.contiguous();
    auto wc = weight.contiguous();
    int64_t H = xc.size(-1), N = xc.numel() / H;
    auto y = torch::empty_like(xc);
    auto rstd = torch::empty({N}, xc.options());
    const float *xp = xc.data_ptr<float>(), *wp = wc.data_ptr<float>();
    float *yp = y.data_ptr<float>(), *rp = rstd.data_ptr<float>();
    at::parallel_for(0, N, 8, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        const float* xr = xp + n * H;
        float* yr = yp + n * H;
        double ss = 0;
        for (int64_t i = 0; i < H; ++i) ss += static_cast<double>(xr[i]) * xr[i];
        float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(H) + eps));
        rp[n] = r;
        for (int64_t i = 0; i < H; ++i) yr[i] = wp[i] * (xr[i] * r);
      }
    });
    ctx->save_for_backward({xc, wc, rstd});
    ctx->saved_data["needX"] = x.requires_grad();
    ctx->saved_data["needW"] = weight.requires_grad();
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto x = saved[0], w = saved[1], rstd = saved[2];
    auto dy = grads[0].contiguous();
    int64_t H = x.size(-1), N = x.numel() / H;
    torch::Tensor dx, dw;
    if (ctx->saved_data["needX"].toBool()) {
      dx = torch::empty_like(x);
      const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>(), *gp = dy.data_ptr<float>(), *rp = rstd.data_ptr<float>();
      float* dp = dx.data_ptr<float>();
      // dx = r·(g − x̂·mean(g·x̂)), g = dy·w, x̂ = x·r.
      at::parallel_for(0, N, 8, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
          const float *xr = xp + n * H, *gr = gp + n * H;
          float* dr = dp + n * H;
          float r = rp[n];
          double dot = 0;
          for (int64_t i = 0; i < H; ++i) dot += static_cast<double>(gr[i]) * wp[i] * xr[i];
          float m = static_cast<float>(dot / static_cast<double>(H)) * r * r;
          for (int64_t i = 0; i < H; ++i) dr[i] = r * (gr[i] * wp[i] - xr[i] * m);
        }
      });
    }
    if (ctx->saved_data["needW"].toBool()) dw = (dy.view({N, H}) * (x.view({N, H}) * rstd.unsqueeze(1))).sum(0);
    return {dx, dw, torch::Tensor()};
  }
};

torch::Tensor rmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) { return RmsNormFn::apply(x, weight, eps); }

// ---- q/k/v split + RoPE --------------------------------------------------------------------------------------

struct SplitRotateFn : torch::autograd::Function<SplitRotateFn> {
  // One (b, t) token: its q/k/v heads between the merged row and the [B, heads, T, d] layouts. Forward:
  // row → q/k/v; backward: gradients q/k/v → row (a null q/k/v = no gradient came for it: zeros).
  template <bool Forward>
  static void token(float* row, float* q, float* k, float* v, const float* c, const float* s, int64_t b, int64_t t, int64_t T,
                    int64_t heads, int64_t kvHeads, int64_t d, float qScale) {
    int64_t half = d / 2;
    for (int64_t h = 0; h < heads + 2 * kvHeads; ++h) {
      float* src = row + h * d;
      float* base;
      int64_t index, nh;
      float scale = 1;
      if (h < heads) {
        base = q, index = h, nh = heads, scale = qScale;
      } else if (h < heads + kvHeads) {
        base = k, index = h - heads, nh = kvHeads;
      } else {
        base = v, index = h - heads - kvHeads, nh = kvHeads;
      }
      if (!base) {
        for (int64_t i = 0; i < d; ++i) src[i] = 0;
        continue;
      }
      float* dst = base + ((b * nh + index) * T + t) * d;
      if (base == v) {
        if (Forward)
          for (int64_t i = 0; i < d; ++i) dst[i] = src[i];
        else
          for (int64_t i = 0; i < d; ++i) src[i] = dst[i];
        continue;
      }
      for (int64_t i = 0; i < half; ++i) {
        if (Forward) {
          float x1 = src[i], x2 = src[i + half];
          dst[i] = (x1 * c[i] - x2 * s[i]) * scale;
          dst[i + half] = (x2 * c[i] + x1 * s[i]) * scale;
        } else {
          float g1 = dst[i], g2 = dst[i + half];
          src[i] = (g1 * c[i] + g2 * s[i]) * scale;
          src[i + half] = (g2 * c[i] - g1 * s[i]) * scale;
        }
      }
    }
  }

  static variable_list forward(AutogradContext* ctx, const torch::Tensor& qkv, const torch::Tensor& cos, const torch::Tensor& sin,
                               int64_t heads, int64_t kvHeads, int64_t headDim, double qScale) {
    auto x = qkv.contiguous();
    auto c = cos.contiguous(), s = sin.contiguous();
    int64_t B = x.size(0), T = x.size(1);
    auto o = x.options();
    auto q = torch::empty({B, heads, T, headDim}, o), k = torch::empty({B, kvHeads, T, headDim}, o), v = torch::empty({B, kvHeads, T, headDim}, o);
    float *xp = x.data_ptr<float>(), *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
    const float *cp = c.data_ptr<float>(), *sp = s.data_ptr<float>();
    int64_t C = x.size(2), half = headDim / 2;
    float qs = static_cast<float>(qScale);
    at::parallel_for(0, B * T, 16, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n)
        token<true>(xp + n * C, qp, kp, vp, cp + n * half, sp + n * half, n / T, n % T, T, heads, kvHeads, headDim, qs);
    });
    ctx->saved_data["cos"] = c;
    ctx->saved_data["sin"] = s;
    ctx->saved_data["shape"] = std::vector<int64_t>{B, T, C, heads, kvHeads, headDim};
    ctx->saved_data["qScale"] = qScale;
    return {q, k, v};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto c = ctx->saved_data["cos"].toTensor(), s = ctx->saved_data["sin"].toTensor();
    auto shape = ctx->saved_data["shape"].toIntVector();
    int64_t B = shape[0], T = shape[1], C = shape[2], heads = shape[3], kvHeads = shape[4], d = shape[5];
    float qs = static_cast<float>(ctx->saved_data["qScale"].toDouble());
    std::vector<torch::Tensor> g(3);
    for (int i = 0; i < 3; ++i)
      if (grads[i].defined()) g[i] = grads[i].contiguous();
    auto dx = torch::empty({B, T, C}, c.options());
    float* dp = dx.data_ptr<float>();
    float* qp = g[0].defined() ? g[0].data_ptr<float>() : nullptr;
    float* kp = g[1].defined() ? g[1].data_ptr<float>() : nullptr;
    float* vp = g[2].defined() ? g[2].data_ptr<float>() : nullptr;
    const float *cp = c.data_ptr<float>(), *sp = s.data_ptr<float>();
    int64_t half = d / 2;
    at::parallel_for(0, B * T, 16, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n)
        token<false>(dp + n * C, qp, kp, vp, cp + n * half, sp + n * half, n / T, n % T, T, heads, kvHeads, d, qs);
    });
    return {dx, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

std::vector<torch::Tensor> splitRotate(const torch::Tensor& qkv, const torch::Tensor& cos, const torch::Tensor& sin, int64_t heads,
                                       int64_t kvHeads, int64_t headDim, double qScale) {
  return SplitRotateFn::apply(qkv, cos, sin, heads, kvHeads, headDim, qScale);
}

// ---- SwiGLU ----------------------------------------------------------------------------------------------------

// ATen's own vectorised silu kernels do the arithmetic; what this saves is the two narrow() backward passes
// (each a zero-filled [.., 2I] tensor) and the temporaries of silu(g)·u.
struct SwiGluFn : torch::autograd::Function<SwiGluFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& gateUp) {
    auto I = gateUp.size(-1) / 2;
    auto out = at::silu(gateUp.narrow(-1, 0, I));
    out.mul_(gateUp.narrow(-1, I, I));
    ctx->save_for_backward({gateUp});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto gu = ctx->get_saved_variables()[0];
    auto dy = grads[0];
    auto I = gu.size(-1) / 2;
    auto g = gu.narrow(-1, 0, I), u = gu.narrow(-1, I, I);
    auto d = torch::empty_like(gu);
    auto dg = d.narrow(-1, 0, I), du = d.narrow(-1, I, I);
    at::silu_backward_out(dg, dy * u, g);  // dy·u·σ(g)·(1 + g·(1 − σ(g)))
    at::mul_out(du, dy, at::silu(g));
    return {d};
  }
};

torch::Tensor swiglu(const torch::Tensor& gateUp) { return SwiGluFn::apply(gateUp); }

// ---- LoRA dropout + A ------------------------------------------------------------------------------------------

static inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// x·mask·scale of one part into out (both [N, in]).
static void maskedInput(const float* x, const uint8_t* mask, float* out, int64_t N, int64_t in, float scale) {
  at::parallel_for(0, N, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin * in; i < end * in; ++i) out[i] = mask[i] ? x[i] * scale : 0.0f;
  });
}

struct DropoutDownFn : torch::autograd::Function<DropoutDownFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& a, int64_t parts, double p) {
    auto xc = x.contiguous();
    int64_t in = xc.size(-1), N = xc.numel() / in, r = a.size(0) / parts;
    auto x2 = xc.view({N, in});
    auto mask = torch::empty({parts, N, in}, xc.options().dtype(torch::kByte));
    uint64_t seed;
    {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      seed = at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
    }
    // Drop when a uniform 32-bit draw falls below p·2³²; one stream per (part, row), so the masks do not depend
    // on how rows are split among threads.
    uint64_t threshold = static_cast<uint64_t>(std::llround(p * 4294967296.0));
    uint8_t* mp = mask.data_ptr<uint8_t>();
    at::parallel_for(0, parts * N, 16, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        uint64_t state = seed ^ (static_cast<uint64_t>(row) * 0xD1B54A32D192ED03ULL);
        splitmix64(state);
        uint8_t* m = mp + row * in;
        int64_t i = 0;
        for (; i + 1 < in; i += 2) {
          uint64_t z = splitmix64(state);
          m[i] = (z & 0xFFFFFFFFULL) >= threshold;
          m[i + 1] = (z >> 32) >= threshold;
        }
        if (i < in) m[i] = (splitmix64(state) & 0xFFFFFFFFULL) >= threshold;
      }
    });
    float scale = static_cast<float>(1.0 / (1.0 - p));
    auto xm = torch::empty({N, in}, xc.options());
    std::vector<torch::Tensor> hs;
    for (int64_t i = 0; i < parts; ++i) {
      maskedInput(x2.data_ptr<float>(), mp + i * N * in, xm.data_ptr<float>(), N, in, scale);
      hs.push_back(at::mm(xm, a.narrow(0, i * r, r).t()));
    }
    auto h = parts == 1 ? hs[0] : at::cat(hs, 1);
    ctx->save_for_backward({x2, a});
    ctx->saved_data["mask"] = mask;
    ctx->saved_data["parts"] = parts;
    ctx->saved_data["scale"] = static_cast<double>(scale);
    ctx->saved_data["needX"] = x.requires_grad();
    ctx->saved_data["needA"] = a.requires_grad();
    auto outShape = xc.sizes().vec();
    outShape.back() = parts * r;
    ctx->saved_data["xShape"] = xc.sizes().vec();
    return h.view(outShape);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto x = saved[0], a = saved[1];
    auto mask = ctx->saved_data["mask"].toTensor();
    int64_t parts = ctx->saved_data["parts"].toInt();
    float scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    bool needX = ctx->saved_data["needX"].toBool(), needA = ctx->saved_data["needA"].toBool();
    int64_t N = x.size(0), in = x.size(1), r = a.size(0) / parts;
    auto dh = grads[0].reshape({N, parts * r});
    const uint8_t* mp = mask.data_ptr<uint8_t>();
    torch::Tensor dx, da, xm;
    if (needX) dx = torch::zeros({N, in}, x.options());
    if (needA) {
      da = torch::empty_like(a);
      xm = torch::empty({N, in}, x.options());
    }
    for (int64_t i = 0; i < parts; ++i) {
      auto dhi = dh.narrow(1, i * r, r);
      const uint8_t* m = mp + i * N * in;
      if (needA) {
        maskedInput(x.data_ptr<float>(), m, xm.data_ptr<float>(), N, in, scale);
        auto dai = da.narrow(0, i * r, r);
        at::mm_out(dai, dhi.t(), xm);
      }
      if (needX) {
        auto t = at::mm(dhi, a.narrow(0, i * r, r));  // [N, in]
        const float* tp = t.data_ptr<float>();
        float* dp = dx.data_ptr<float>();
        at::parallel_for(0, N, 16, [&](int64_t begin, int64_t end) {
          for (int64_t k = begin * in; k < end * in; ++k)
            if (m[k]) dp[k] += tp[k] * scale;
        });
      }
    }
    if (needX) dx = dx.view(ctx->saved_data["xShape"].toIntVector());
    return {dx, da, torch::Tensor(), torch::Tensor()};
  }
};

torch::Tensor dropoutDown(const torch::Tensor& x, const torch::Tensor& a, int64_t parts, double p) {
  return DropoutDownFn::apply(x, a, parts, p);
}

}  // namespace hscr::fused
