// The JS handle on a torch::Tensor. Tensors stay native; JS sees shape, dtype, device and, on request,
// a copy of the data as a typed array.
#pragma once
#include "common.h"

namespace hscr {

class Tensor : public Napi::ObjectWrap<Tensor> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  // A new JS Tensor owning `t`.
  static Napi::Object wrap(Napi::Env env, torch::Tensor t);
  // The tensor behind a JS value: E_ARG when it is no Tensor, E_DISPOSED after dispose().
  static torch::Tensor unwrap(const Napi::Value& v, const std::string& name);

  explicit Tensor(const Napi::CallbackInfo& info);
  ~Tensor() override;

 private:
  static Napi::Value fromArray(const Napi::CallbackInfo& info);
  Napi::Value shape(const Napi::CallbackInfo& info);
  Napi::Value dtype(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value numel(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);
  Napi::Value toArray(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  Napi::Value toAsync(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);

  const torch::Tensor& live(const char* what) const;
  void release();

  torch::Tensor tensor_;
  bool disposed_ = false;
  int64_t accountedBytes_ = 0;  // reported to V8 so the GC sees native memory
  Napi::Env env_;
};

}  // namespace hscr
