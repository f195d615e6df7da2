// Shared plumbing of the addon: typed errors with stable codes, the guard that turns every C++ exception
// into a JS HscrError, argument readers that reject bad JS values instead of crashing, and async work.
#pragma once
#include <napi.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace hscr {

// An error with a stable code (E_ARG, E_SHAPE, E_DTYPE, E_DEVICE, E_IO, E_TORCH, E_CHECKPOINT, …)
// and the offending value, rendered short.
struct Error : std::runtime_error {
  std::string code;
  std::string value;
  Error(std::string code_, const std::string& msg, std::string value_ = "")
      : std::runtime_error(msg), code(std::move(code_)), value(std::move(value_)) {}
};

[[noreturn]] void fail(const std::string& code, const std::string& msg, const std::string& value = "");

// Per-addon-instance state: the JS classes native code constructs.
struct AddonData {
  Napi::FunctionReference errorClass;  // HscrError, handed over by lib/native.ts at load
  Napi::FunctionReference tensorClass;
  Napi::FunctionReference modelClass;
  Napi::FunctionReference groupClass;
  Napi::FunctionReference optimizerClass;
};
AddonData& addonData(Napi::Env env);

// A JS HscrError object (falls back to a plain Error with .code before lib/native.ts registered the class).
Napi::Value makeJsError(Napi::Env env, const std::string& code, const std::string& msg, const std::string& value);

// Runs `body`, translating every C++ exception into a thrown JS HscrError.
Napi::Value guarded(const Napi::CallbackInfo& info, const std::function<Napi::Value()>& body);

// For functions that return a promise: a bad argument rejects the promise instead of throwing, so
// `await f(...)` and `f(...).catch(...)` both see every failure.
Napi::Value guardedPromise(const Napi::CallbackInfo& info, const std::function<Napi::Value()>& body);

// Same translation outside a JS call (worker threads): fills code/message.
void describeException(std::exception_ptr ep, std::string& code, std::string& msg, std::string& value);

// Short rendering of any JS value, for error messages.
std::string describe(const Napi::Value& v);

// Argument readers: each throws hscr::Error E_ARG naming the argument and the value it got.
Napi::Value arg(const Napi::CallbackInfo& info, size_t i);
int64_t toInt(const Napi::Value& v, const std::string& name);
double toNumber(const Napi::Value& v, const std::string& name);
bool toBool(const Napi::Value& v, const std::string& name);
std::string toString(const Napi::Value& v, const std::string& name);
Napi::Object toObject(const Napi::Value& v, const std::string& name);
std::vector<int64_t> toIntList(const Napi::Value& v, const std::string& name);
// Optional fields of an options object: the default when absent/undefined, E_ARG when of the wrong type.
int64_t optInt(const Napi::Object& o, const char* key, int64_t dflt);
double optNumber(const Napi::Object& o, const char* key, double dflt);
bool optBool(const Napi::Object& o, const char* key, bool dflt);
std::string optString(const Napi::Object& o, const char* key, const std::string& dflt);

// dtype names as JS sees them ("float32", "bfloat16", …).
std::string dtypeName(at::ScalarType t);
at::ScalarType parseDtype(const std::string& name);
torch::Device parseDevice(const std::string& name);

// Non-finite (NaN/±Inf) entries of a floating-point tensor; 0 for every other dtype. The guard against NaN
// weights being loaded, written or consumed (issue 13): one reduction, no copy of the data.
int64_t nonFiniteCount(const torch::Tensor& t);
// "N non-finite values (first at flat index i: nan)", for messages.
std::string nonFiniteSummary(const torch::Tensor& t, int64_t count);

// Bytes this process can still allocate: MemAvailable, lowered to the room left under a cgroup (v2 or v1)
// memory limit; -1 when neither can be read (not Linux).
int64_t availableMemoryBytes();

// Async work: `work` runs on a libuv worker thread (no JS values there!) and returns a continuation that
// builds the JS result on the main thread. The promise rejects with an HscrError on any exception.
using Reply = std::function<Napi::Value(Napi::Env)>;
Napi::Promise runAsync(Napi::Env env, std::function<Reply()> work);

}  // namespace hscr
