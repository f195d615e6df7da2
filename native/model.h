// JS handle on a VLM (see model.cpp). Other parts (training, HSCR kernels) reach the Vlm through Model::state.
#pragma once
#include <mutex>

#include "common.h"
#include "vlm.h"

namespace hscr {

struct ModelState;

class Model : public Napi::ObjectWrap<Model> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static std::shared_ptr<ModelState> state(const Napi::Value& v, const std::string& name);
  static Vlm& vlmOf(const std::shared_ptr<ModelState>& s);
  static std::mutex& mutexOf(const std::shared_ptr<ModelState>& s);
  // Under mutexOf(s): a training step left `parameter` NaN/Inf; later forwards and saves re-check and refuse.
  static void markNonFinite(const std::shared_ptr<ModelState>& s, const std::string& parameter);
  explicit Model(const Napi::CallbackInfo& info);

 private:
  static Napi::Value create(const Napi::CallbackInfo& info);
  Napi::Value parameters(const Napi::CallbackInfo& info);
  Napi::Value loadWeights(const Napi::CallbackInfo& info);
  Napi::Value saveWeights(const Napi::CallbackInfo& info);
  Napi::Value logprobs(const Napi::CallbackInfo& info);
  Napi::Value generate(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value dtype(const Napi::CallbackInfo& info);

  std::shared_ptr<ModelState> state_;
};

// Shared by every binding that takes a batch: parses and validates {pixels, rows}. A row's `perturb` defaults
// to perturbByDefault (true when the call names a perturbation); its seed to options.seed + its image index.
Batch parseBatch(const Napi::Value& v, const VlmConfig& config, uint64_t seed, bool perturbByDefault);
Perturbation parsePerturbation(const Napi::Object& opts);
Napi::Object optionsArg(const Napi::CallbackInfo& info, size_t i);

}  // namespace hscr
