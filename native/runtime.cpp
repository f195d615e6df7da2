// Process-wide runtime: thread count, what libtorch was built with, and the GEMM throughput probe.
#include <ATen/Parallel.h>
#include <torch/version.h>

#include <chrono>
#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "cpu_allocator.h"
#include "parts.h"
#include "tensor.h"

namespace hscr {

static Napi::Value setErrorClass(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto cls = arg(info, 0);
    if (!cls.IsFunction() || !cls.As<Napi::Object>().Get("prototype").IsObject())
      fail("E_ARG", "error class must be a constructor", describe(cls));
    addonData(info.Env()).errorClass = Napi::Persistent(cls.As<Napi::Function>());
    return info.Env().Undefined();
  });
}

static Napi::Value setNumThreads(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int64_t n = toInt(arg(info, 0), "threads");
    if (n < 1 || n > 1024) fail("E_ARG", "threads must be between 1 and 1024", std::to_string(n));
    at::set_num_threads(static_cast<int>(n));
    return info.Env().Undefined();
  });
}

static Napi::Value runtimeInfo(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto env = info.Env();
    auto o = Napi::Object::New(env);
    o.Set("torchVersion", TORCH_VERSION);
    o.Set("threads", at::get_num_threads());
    o.Set("interopThreads", at::get_num_interop_threads());
    o.Set("parallelInfo", at::get_parallel_info());
    o.Set("cudaAvailable", torch::cuda::is_available());
    o.Set("cudaDeviceCount", static_cast<double>(torch::cuda::device_count()));
    o.Set("cudnnAvailable", torch::cuda::cudnn_is_available());
    o.Set("napiVersion", NAPI_VERSION);
#ifdef HSCR_WITH_CUDA
    o.Set("builtWithCuda", true);
#else
    o.Set("builtWithCuda", false);
#endif
    return o;
  });
}

// n×n fp32 (or bf16) matmuls for `seconds`, after one warm-up product; 2n³ flops each.
static Napi::Value gemmBenchmark(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    int64_t n = toInt(arg(info, 0), "n");
    if (n < 1 || n > 32768) fail("E_ARG", "n must be between 1 and 32768", std::to_string(n));
    double seconds = arg(info, 1).IsUndefined() ? 1.0 : toNumber(arg(info, 1), "seconds");
    if (!(seconds > 0 && seconds <= 600)) fail("E_ARG", "seconds must be in (0, 600]", std::to_string(seconds));
    auto device = parseDevice(arg(info, 2).IsUndefined() ? "cpu" : toString(arg(info, 2), "device"));
    auto dtype = parseDtype(arg(info, 3).IsUndefined() ? "float32" : toString(arg(info, 3), "dtype"));
    return runAsync(info.Env(), [=]() -> Reply {
      torch::NoGradGuard noGrad;
      auto opts = torch::TensorOptions().device(device).dtype(dtype);
      auto a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts), c = torch::empty({n, n}, opts);
      auto sync = [&] {
        if (device.is_cuda()) torch::cuda::synchronize(device.index());
      };
      at::mm_out(c, a, b);
      sync();
      int64_t iters = 0;
      auto start = std::chrono::steady_clock::now();
      double elapsed = 0;
      do {
        at::mm_out(c, a, b);
        sync();
        ++iters;
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      } while (elapsed < seconds);
      double gflops = 2.0 * n * n * n * iters / elapsed / 1e9;
      int threads = at::get_num_threads();
      return [=](Napi::Env env) -> Napi::Value {
        auto o = Napi::Object::New(env);
        o.Set("n", static_cast<double>(n));
        o.Set("iterations", static_cast<double>(iters));
        o.Set("seconds", elapsed);
        o.Set("gflops", gflops);
        o.Set("threads", threads);
        return o;
      };
    });
  });
}

// a @ b off the JS thread: the smallest real async op, used by tests and as a template.
static Napi::Value matmulAsync(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto a = Tensor::unwrap(arg(info, 0), "a");
    auto b = Tensor::unwrap(arg(info, 1), "b");
    if (a.dim() != 2 || b.dim() != 2 || a.size(1) != b.size(0))
      fail("E_SHAPE", "matmul needs [m,k] @ [k,n]", "[" + c10::Join(", ", a.sizes()) + "] @ [" + c10::Join(", ", b.sizes()) + "]");
    if (a.scalar_type() != b.scalar_type())
      fail("E_DTYPE", "matmul needs equal dtypes", dtypeName(a.scalar_type()) + " @ " + dtypeName(b.scalar_type()));
    return runAsync(info.Env(), [a, b]() -> Reply {
      auto c = at::matmul(a, b);
      return [c](Napi::Env env) -> Napi::Value { return Tensor::wrap(env, c); };
    });
  });
}

static Napi::Value randn(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto shape = toIntList(arg(info, 0), "shape");
    auto opts = arg(info, 1).IsUndefined() ? Napi::Object::New(info.Env()) : toObject(arg(info, 1), "options");
    // Checked before allocating: a negative or overflowing shape, or more bytes than the machine has, is refused.
    int64_t numel = 1;
    for (auto d : shape) {
      if (d < 0) fail("E_SHAPE", "shape entries must be >= 0", "[" + c10::Join(", ", shape) + "]");
      if (__builtin_mul_overflow(numel, d, &numel)) fail("E_SHAPE", "shape has more elements than fit in 63 bits", "[" + c10::Join(", ", shape) + "]");
    }
    int64_t avail = availableMemoryBytes();
    if (avail >= 0 && static_cast<double>(numel) * 4.0 > static_cast<double>(avail))
      fail("E_SHAPE", "shape [" + c10::Join(", ", shape) + "] needs more memory than is available", std::to_string(numel));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(optInt(opts, "seed", 0)));
    auto t = at::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat));
    return Tensor::wrap(info.Env(), t.to(parseDtype(optString(opts, "dtype", "float32"))));
  });
}

// glibc gives each thread that allocates under contention its own malloc arena, and memory freed into an
// arena stays there. Torch work runs on whichever libuv worker picks up the job (4 by default), so a
// training step's ~1 GB of activations ended up cached once per worker: the peak RSS climbed ~1 GB per step
// for the first steps (5.2–5.7 GB against the Python peers' 1.7–2.0 GB; 2.0 GB with UV_THREADPOOL_SIZE=1).
// The jobs are serialised by the model's mutex anyway, so one arena costs no contention worth having.
// A MALLOC_ARENA_MAX set by the user wins.
static void limitMallocArenas() {
#if defined(__GLIBC__) && defined(M_ARENA_MAX)
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 1);
#endif
}

// The caching CPU allocator's counters (see cpu_allocator.cpp), in bytes.
static Napi::Value jsCpuCacheStats(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto s = hscr::cpuCacheStats();
    auto o = Napi::Object::New(info.Env());
    o.Set("installed", s.installed);
    o.Set("limitBytes", static_cast<double>(s.limitBytes));
    o.Set("cachedBytes", static_cast<double>(s.cachedBytes));
    o.Set("liveBytes", static_cast<double>(s.liveBytes));
    o.Set("peakLiveBytes", static_cast<double>(s.peakLiveBytes));
    o.Set("hits", static_cast<double>(s.hits));
    o.Set("misses", static_cast<double>(s.misses));
    return o;
  });
}

static Napi::Value jsReleaseCpuCache(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    hscr::releaseCpuCache();
    return info.Env().Undefined();
  });
}

static Napi::Value jsSetCpuCacheLimit(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    double bytes = toNumber(arg(info, 0), "bytes");
    if (!(bytes >= 0 && bytes <= 9.0e15)) fail("E_ARG", "cache limit must be a byte count >= 0", std::to_string(bytes));
    hscr::setCpuCacheLimit(static_cast<size_t>(bytes));
    return info.Env().Undefined();
  });
}

void registerRuntime(Napi::Env env, Napi::Object exports) {
  limitMallocArenas();
  installCpuAllocator();
  exports.Set("cpuCacheStats", Napi::Function::New(env, jsCpuCacheStats, "cpuCacheStats"));
  exports.Set("releaseCpuCache", Napi::Function::New(env, jsReleaseCpuCache, "releaseCpuCache"));
  exports.Set("setCpuCacheLimit", Napi::Function::New(env, jsSetCpuCacheLimit, "setCpuCacheLimit"));
  exports.Set("setErrorClass", Napi::Function::New(env, setErrorClass, "setErrorClass"));
  exports.Set("setNumThreads", Napi::Function::New(env, setNumThreads, "setNumThreads"));
  exports.Set("runtimeInfo", Napi::Function::New(env, runtimeInfo, "runtimeInfo"));
  exports.Set("gemmBenchmark", Napi::Function::New(env, gemmBenchmark, "gemmBenchmark"));
  exports.Set("matmulAsync", Napi::Function::New(env, matmulAsync, "matmulAsync"));
  exports.Set("randn", Napi::Function::New(env, randn, "randn"));
}

}  // namespace hscr
