// Module entry: per-instance data (so worker_threads can load the addon too), then every part's exports.
#include "parts.h"
#include "tensor.h"

namespace hscr {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  Tensor::Init(env, exports);
  registerRuntime(env, exports);
  registerSafetensors(env, exports);
  registerModel(env, exports);
  registerContrastive(env, exports);
  registerMlpo(env, exports);
  registerOptimizer(env, exports);
  registerDistributed(env, exports);
  registerTrain(env, exports);
  return exports;
}

}  // namespace hscr

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return hscr::Init(env, exports); }
NODE_API_MODULE(hscr_native, InitAddon)
