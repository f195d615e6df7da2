#include "distributed.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef HSCR_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "model.h"
#include "parts.h"

namespace hscr {

static const napi_type_tag kGroupTag = {0x6873637270670000ULL, 0x0000000000000003ULL};

std::shared_ptr<ProcessGroupHandle> ProcessGroup::handle(const Napi::Value& v, const std::string& name) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kGroupTag)) fail("E_ARG", name + " must be a ProcessGroup", describe(v));
  auto* self = ProcessGroup::Unwrap(v.As<Napi::Object>());
  if (!self->h_) fail("E_DISPOSED", name + " was destroyed");
  return self->h_;
}

void ProcessGroup::Init(Napi::Env env, Napi::Object exports) {
  auto cls = DefineClass(env, "ProcessGroup",
                         {
                             StaticMethod("create", &ProcessGroup::create),
                             InstanceAccessor("rank", &ProcessGroup::rank, nullptr),
                             InstanceAccessor("worldSize", &ProcessGroup::worldSize, nullptr),
                             InstanceAccessor("backend", &ProcessGroup::backend, nullptr),
                             InstanceMethod("allreduce", &ProcessGroup::allreduce),
                             InstanceMethod("barrier", &ProcessGroup::barrier),
                             InstanceMethod("broadcastParameters", &ProcessGroup::broadcastParameters),
                             InstanceMethod("destroy", &ProcessGroup::destroy),
                         });
  addonData(env).groupClass = Napi::Persistent(cls);
  exports.Set("ProcessGroup", cls);
}

ProcessGroup::ProcessGroup(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProcessGroup>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::Error(info.Env(), makeJsError(info.Env(), "E_ARG", "use ProcessGroup.create(options)", ""));
  auto* h = info[0].As<Napi::External<std::shared_ptr<ProcessGroupHandle>>>().Data();
  h_ = *h;
  delete h;
  info.This().As<Napi::Object>().TypeTag(&kGroupTag);
}

template <typename G>
static void bindOps(ProcessGroupHandle& h, const c10::intrusive_ptr<G>& g) {
  h.allreduceSum = [g](std::vector<at::Tensor>& ts) {
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    g->allreduce(ts, o)->wait();
  };
  h.broadcast = [g](std::vector<at::Tensor>& ts, int root) {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    g->broadcast(ts, o)->wait();
  };
  h.barrier = [g]() { g->barrier()->wait(); };
  h.group = g;
}

static bool isLoopback(const std::string& host) { return host == "localhost" || host.rfind("127.", 0) == 0; }

// options: { rank, worldSize, masterAddr, masterPort, backend: 'gloo' | 'nccl', timeoutMs }
Napi::Value ProcessGroup::create(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto o = toObject(arg(info, 0), "options");
    int rank = static_cast<int>(toInt(o.Get("rank"), "options.rank"));
    int size = static_cast<int>(toInt(o.Get("worldSize"), "options.worldSize"));
    auto addr = optString(o, "masterAddr", "127.0.0.1");
    auto port = optInt(o, "masterPort", 29500);
    auto backend = optString(o, "backend", "gloo");
    auto timeout = std::chrono::milliseconds(optInt(o, "timeoutMs", 300000));
    if (size < 1 || rank < 0 || rank >= size) fail("E_ARG", "need 0 <= rank < worldSize", std::to_string(rank) + "/" + std::to_string(size));
    if (port < 1 || port > 65535) fail("E_ARG", "masterPort must be 1..65535", std::to_string(port));
    if (backend != "gloo" && backend != "nccl") fail("E_ARG", "backend must be gloo or nccl", "\"" + backend + "\"");
#ifndef HSCR_WITH_NCCL
    if (backend == "nccl") fail("E_DIST", "this build of hscr has no NCCL (needs a CUDA libtorch)", "\"nccl\"");
#endif
    return runAsync(info.Env(), [=]() -> Reply {
      auto h = std::make_shared<ProcessGroupHandle>();
      h->rank = rank, h->size = size, h->backend = backend;
      try {
        c10d::TCPStoreOptions so;
        so.port = static_cast<uint16_t>(port);
        so.isServer = rank == 0;
        so.numWorkers = static_cast<size_t>(size);
        so.waitWorkers = true;
        so.timeout = timeout;
        auto store = c10::make_intrusive<c10d::TCPStore>(addr, so);
        h->store = store;
        if (backend == "gloo") {
          auto opts = c10d::ProcessGroupGloo::Options::create();
          opts->timeout = timeout;
          const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
          if (ifname)
            opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
          else if (isLoopback(addr))
            opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
          else
            opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
          bindOps(*h, c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, opts));
        }
#ifdef HSCR_WITH_NCCL
        else {
          auto opts = c10d::ProcessGroupNCCL::Options::create();
          opts->timeout = timeout;
          bindOps(*h, c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, opts));
        }
#endif
      } catch (const Error&) {
        throw;
      } catch (const std::exception& e) {
        fail("E_DIST", std::string("process group rendezvous at ") + addr + ":" + std::to_string(port) + " failed: " + e.what());
      }
      return [h](Napi::Env env) -> Napi::Value {
        return addonData(env).groupClass.New({Napi::External<std::shared_ptr<ProcessGroupHandle>>::New(env, new std::shared_ptr<ProcessGroupHandle>(h))});
      };
    });
  });
}

Napi::Value ProcessGroup::rank(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), handle(info.This(), "group")->rank); });
}
Napi::Value ProcessGroup::worldSize(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), handle(info.This(), "group")->size); });
}
Napi::Value ProcessGroup::backend(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), handle(info.This(), "group")->backend); });
}

// SUM over ranks of a Float64Array (counts, loss sums, metric sums).
Napi::Value ProcessGroup::allreduce(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto h = handle(info.This(), "group");
    auto v = arg(info, 0);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      fail("E_ARG", "allreduce takes a Float64Array", describe(v));
    auto a = v.As<Napi::Float64Array>();
    auto t = torch::from_blob(a.Data(), {static_cast<int64_t>(a.ElementLength())}, torch::kDouble).clone();
    return runAsync(info.Env(), [h, t]() -> Reply {
      std::vector<at::Tensor> ts{h->backend == "nccl" ? t.cuda() : t};
      h->allreduceSum(ts);
      auto out = ts[0].cpu();
      return [out](Napi::Env env) -> Napi::Value {
        auto r = Napi::Float64Array::New(env, out.numel());
        std::memcpy(r.Data(), out.data_ptr<double>(), out.numel() * sizeof(double));
        return r;
      };
    });
  });
}

Napi::Value ProcessGroup::barrier(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto h = handle(info.This(), "group");
    return runAsync(info.Env(), [h]() -> Reply {
      h->barrier();
      return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
    });
  });
}

// Every rank starts from rank 0's weights (random init or LoRA init may differ per process otherwise).
Napi::Value ProcessGroup::broadcastParameters(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto h = handle(info.This(), "group");
    auto s = Model::state(arg(info, 0), "model");
    return runAsync(info.Env(), [h, s]() -> Reply {
      std::lock_guard<std::mutex> lock(Model::mutexOf(s));
      torch::NoGradGuard g;
      for (auto& p : Model::vlmOf(s)->parameters(true)) {
        std::vector<at::Tensor> ts{p.data()};
        h->broadcast(ts, 0);
      }
      return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
    });
  });
}

Napi::Value ProcessGroup::destroy(const Napi::CallbackInfo& info) {
  h_.reset();
  return info.Env().Undefined();
}

void allreduceBucketed(ProcessGroupHandle& pg, const std::vector<at::Tensor>& tensors, int64_t bucketBytes) {
  size_t i = 0;
  while (i < tensors.size()) {
    std::vector<at::Tensor> bucket{tensors[i]};
    int64_t bytes = tensors[i].numel() * tensors[i].element_size();
    size_t j = i + 1;
    while (j < tensors.size() && tensors[j].scalar_type() == tensors[i].scalar_type() && tensors[j].device() == tensors[i].device() &&
           bytes + tensors[j].numel() * tensors[j].element_size() <= bucketBytes) {
      bytes += tensors[j].numel() * tensors[j].element_size();
      bucket.push_back(tensors[j++]);
    }
    std::vector<at::Tensor> flat{torch::cat([&] {
      std::vector<at::Tensor> v;
      for (auto& t : bucket) v.push_back(t.reshape({-1}));
      return v;
    }())};
    pg.allreduceSum(flat);
    int64_t off = 0;
    for (auto& t : bucket) {
      t.copy_(flat[0].slice(0, off, off + t.numel()).view_as(t));
      off += t.numel();
    }
    i = j;
  }
}

void registerDistributed(Napi::Env env, Napi::Object exports) { ProcessGroup::Init(env, exports); }

}  // namespace hscr
