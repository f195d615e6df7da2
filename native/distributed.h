// Data parallelism on torch's own distributed engine (c10d): a TCPStore rendezvous and a Gloo (CPU) or NCCL
// (CUDA) process group. Gradients are all-reduced in flat buckets; small metric vectors ride along.
#pragma once
#include <functional>

#include "common.h"

namespace hscr {

struct ProcessGroupHandle {
  int rank = 0, size = 1;
  std::string backend;
  // Backend-neutral entry points (Gloo and NCCL classes differ between libtorch 1.13 and 2.x).
  std::function<void(std::vector<at::Tensor>&)> allreduceSum;
  std::function<void(std::vector<at::Tensor>&, int root)> broadcast;
  std::function<void()> barrier;
  c10::intrusive_ptr<c10::intrusive_ptr_target> store, group;  // keep-alive
};

class ProcessGroup : public Napi::ObjectWrap<ProcessGroup> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static std::shared_ptr<ProcessGroupHandle> handle(const Napi::Value& v, const std::string& name);
  explicit ProcessGroup(const Napi::CallbackInfo& info);

 private:
  static Napi::Value create(const Napi::CallbackInfo& info);
  Napi::Value rank(const Napi::CallbackInfo& info);
  Napi::Value worldSize(const Napi::CallbackInfo& info);
  Napi::Value backend(const Napi::CallbackInfo& info);
  Napi::Value allreduce(const Napi::CallbackInfo& info);
  Napi::Value barrier(const Napi::CallbackInfo& info);
  Napi::Value broadcastParameters(const Napi::CallbackInfo& info);
  Napi::Value destroy(const Napi::CallbackInfo& info);
  std::shared_ptr<ProcessGroupHandle> h_;
};

// SUM all-reduce of `tensors` in flat buckets of at most bucketBytes (grouped by dtype and device).
void allreduceBucketed(ProcessGroupHandle& pg, const std::vector<at::Tensor>& tensors, int64_t bucketBytes = 25 << 20);

}  // namespace hscr
