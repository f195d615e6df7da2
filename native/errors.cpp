#include "cpu_allocator.h"
#include "common.h"

#include <fstream>
#include <sstream>

namespace hscr {

void fail(const std::string& code, const std::string& msg, const std::string& value) { throw Error(code, msg, value); }

AddonData& addonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

Napi::Value makeJsError(Napi::Env env, const std::string& code, const std::string& msg, const std::string& value) {
  auto& data = addonData(env);
  std::string full = value.empty() ? msg : msg + " (got " + value + ")";
  if (!data.errorClass.IsEmpty()) {
    std::vector<napi_value> args{Napi::String::New(env, full), Napi::String::New(env, code)};
    if (!value.empty()) args.push_back(Napi::String::New(env, value));
    return data.errorClass.New(args);
  }
  auto err = Napi::Error::New(env, full);
  err.Set("code", Napi::String::New(env, code));
  return err.Value();
}

void describeException(std::exception_ptr ep, std::string& code, std::string& msg, std::string& value) {
  try {
    std::rethrow_exception(ep);
  } catch (const Error& e) {
    code = e.code, msg = e.what(), value = e.value;
  } catch (const c10::Error& e) {
    // libtorch's own checks: shape and dtype mismatches surface here.
    code = "E_TORCH", msg = e.what_without_backtrace();
  } catch (const Napi::Error& e) {
    code = "E_INTERNAL", msg = e.Message();
  } catch (const std::bad_alloc&) {
    code = "E_TORCH", msg = "out of memory";
  } catch (const std::exception& e) {
    code = "E_INTERNAL", msg = e.what();
  } catch (...) {
    code = "E_INTERNAL", msg = "unknown native exception";
  }
}

Napi::Value guarded(const Napi::CallbackInfo& info, const std::function<Napi::Value()>& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;  // already a JS exception (e.g. from a JS callback)
  } catch (...) {
    std::string code, msg, value;
    describeException(std::current_exception(), code, msg, value);
    throw Napi::Error(info.Env(), makeJsError(info.Env(), code, msg, value));
  }
}

Napi::Value guardedPromise(const Napi::CallbackInfo& info, const std::function<Napi::Value()>& body) {
  try {
    return body();
  } catch (const Napi::Error& e) {
    auto d = Napi::Promise::Deferred::New(info.Env());
    d.Reject(e.Value());
    return d.Promise();
  } catch (...) {
    std::string code, msg, value;
    describeException(std::current_exception(), code, msg, value);
    auto d = Napi::Promise::Deferred::New(info.Env());
    d.Reject(makeJsError(info.Env(), code, msg, value));
    return d.Promise();
  }
}

std::string describe(const Napi::Value& v) {
  if (v.IsEmpty() || v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsNumber()) {
    std::ostringstream s;
    s << v.As<Napi::Number>().DoubleValue();
    return s.str();
  }
  if (v.IsString()) {
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s.size() > 60) s = s.substr(0, 57) + "...";
    return "\"" + s + "\"";
  }
  if (v.IsBigInt()) return "bigint";
  if (v.IsTypedArray()) return "typed array of length " + std::to_string(v.As<Napi::TypedArray>().ElementLength());
  if (v.IsArray()) return "array of length " + std::to_string(v.As<Napi::Array>().Length());
  if (v.IsFunction()) return "function";
  if (v.IsSymbol()) return "symbol";
  return "object";
}

Napi::Value arg(const Napi::CallbackInfo& info, size_t i) { return i < info.Length() ? info[i] : info.Env().Undefined(); }

int64_t toInt(const Napi::Value& v, const std::string& name) {
  if (v.IsBigInt()) {
    bool lossless = false;
    int64_t x = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) fail("E_ARG", name + " must fit in 64 bits", describe(v));
    return x;
  }
  if (!v.IsNumber()) fail("E_ARG", name + " must be an integer", describe(v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9007199254740991.0)
    fail("E_ARG", name + " must be an integer", describe(v));
  return static_cast<int64_t>(d);
}

double toNumber(const Napi::Value& v, const std::string& name) {
  if (!v.IsNumber()) fail("E_ARG", name + " must be a number", describe(v));
  return v.As<Napi::Number>().DoubleValue();
}

bool toBool(const Napi::Value& v, const std::string& name) {
  if (!v.IsBoolean()) fail("E_ARG", name + " must be a boolean", describe(v));
  return v.As<Napi::Boolean>().Value();
}

std::string toString(const Napi::Value& v, const std::string& name) {
  if (!v.IsString()) fail("E_ARG", name + " must be a string", describe(v));
  return v.As<Napi::String>().Utf8Value();
}

Napi::Object toObject(const Napi::Value& v, const std::string& name) {
  if (!v.IsObject() || v.IsArray()) fail("E_ARG", name + " must be an object", describe(v));
  return v.As<Napi::Object>();
}

std::vector<int64_t> toIntList(const Napi::Value& v, const std::string& name) {
  if (!v.IsArray()) fail("E_ARG", name + " must be an array of integers", describe(v));
  auto a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) out[i] = toInt(a.Get(i), name + "[" + std::to_string(i) + "]");
  return out;
}

// null counts as absent: JSON configs say `"pad_token_id": null` for "no value".
static Napi::Value field(const Napi::Object& o, const char* key) {
  auto v = o.Get(key);
  return v.IsNull() ? o.Env().Undefined() : v;
}

int64_t optInt(const Napi::Object& o, const char* key, int64_t dflt) {
  auto v = field(o, key);
  return v.IsUndefined() ? dflt : toInt(v, std::string("option ") + key);
}
double optNumber(const Napi::Object& o, const char* key, double dflt) {
  auto v = field(o, key);
  return v.IsUndefined() ? dflt : toNumber(v, std::string("option ") + key);
}
bool optBool(const Napi::Object& o, const char* key, bool dflt) {
  auto v = field(o, key);
  return v.IsUndefined() ? dflt : toBool(v, std::string("option ") + key);
}
std::string optString(const Napi::Object& o, const char* key, const std::string& dflt) {
  auto v = field(o, key);
  return v.IsUndefined() ? dflt : toString(v, std::string("option ") + key);
}

std::string dtypeName(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    default: return c10::toString(t);
  }
}

at::ScalarType parseDtype(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "float64") return at::kDouble;
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "float16") return at::kHalf;
  if (name == "int64") return at::kLong;
  if (name == "int32") return at::kInt;
  if (name == "uint8") return at::kByte;
  if (name == "bool") return at::kBool;
  if (name == "int16") return at::kShort;
  if (name == "int8") return at::kChar;
  fail("E_DTYPE", "unknown dtype (float32, float64, bfloat16, float16, int64, int32, uint8, bool)", "\"" + name + "\"");
}

torch::Device parseDevice(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available()) fail("E_DEVICE", "CUDA is not available in this libtorch / on this machine", "\"" + name + "\"");
    int index = 0;
    if (name.size() > 4) {
      if (name[4] != ':') fail("E_DEVICE", "device must be cpu, cuda or cuda:N", "\"" + name + "\"");
      try {
        index = std::stoi(name.substr(5));
      } catch (...) {
        fail("E_DEVICE", "device must be cpu, cuda or cuda:N", "\"" + name + "\"");
      }
    }
    if (index < 0 || index >= static_cast<int>(torch::cuda::device_count()))
      fail("E_DEVICE", "no such CUDA device", "\"" + name + "\"");
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  fail("E_DEVICE", "device must be cpu, cuda or cuda:N", "\"" + name + "\"");
}

int64_t nonFiniteCount(const torch::Tensor& t) {
  if (!t.defined() || !t.is_floating_point() || t.numel() == 0) return 0;
  torch::NoGradGuard g;
  auto finite = torch::isfinite(t.detach());
  if (finite.all().item<bool>()) return 0;
  return t.numel() - finite.sum().item<int64_t>();
}

std::string nonFiniteSummary(const torch::Tensor& t, int64_t count) {
  torch::NoGradGuard g;
  auto flat = t.detach().reshape({-1});
  auto first = torch::logical_not(torch::isfinite(flat)).nonzero();
  std::ostringstream s;
  s << count << " non-finite value" << (count == 1 ? "" : "s") << " of " << t.numel();
  if (first.numel() > 0) {
    int64_t i = first[0][0].item<int64_t>();
    double v = flat[i].item<double>();
    s << " (first at flat index " << i << ": " << (std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf") << ")";
  }
  return s.str();
}

// One number from a /proc or /sys file; -1 when absent, unreadable or "max".
static int64_t readNumber(const char* path) {
  std::ifstream f(path);
  std::string word;
  if (!(f >> word) || word == "max") return -1;
  try {
    return static_cast<int64_t>(std::stoull(word));
  } catch (...) {
    return -1;
  }
}

static int64_t memAvailable() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return -1;
}

int64_t availableMemoryBytes() {
  int64_t avail = memAvailable();
  // cgroup v2 first, then v1; "unlimited" reads as max (v2) or a number near 2^63 (v1).
  const std::pair<const char*, const char*> groups[] = {{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
                                                        {"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"}};
  for (const auto& [limitFile, usageFile] : groups) {
    int64_t limit = readNumber(limitFile), usage = readNumber(usageFile);
    if (limit <= 0 || limit >= (int64_t{1} << 62) || usage < 0) continue;
    int64_t room = std::max<int64_t>(0, limit - usage);
    avail = avail < 0 ? room : std::min(avail, room);
    break;
  }
  // Buffers the caching allocator holds free are this process's to reuse (and it gives them back on failure).
  if (avail >= 0) avail += static_cast<int64_t>(cpuCacheStats().cachedBytes);
  return avail;
}

namespace {
class TaskWorker : public Napi::AsyncWorker {
 public:
  TaskWorker(Napi::Env env, std::function<Reply()> work)
      : Napi::AsyncWorker(env, "hscr:task"), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    // libuv's threads start with OpenMP's default team size; apply the process-wide setting.
    at::init_num_threads();
    try {
      reply_ = work_();
    } catch (...) {
      describeException(std::current_exception(), code_, msg_, value_);
      SetError(msg_);
    }
    work_ = nullptr;  // release captured tensors on the worker, before the JS side sees the result
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(reply_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      describeException(std::current_exception(), code_, msg_, value_);
      deferred_.Reject(makeJsError(env, code_, msg_, value_));
    }
  }
  void OnError(const Napi::Error&) override { deferred_.Reject(makeJsError(Env(), code_, msg_, value_)); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<Reply()> work_;
  Reply reply_;
  std::string code_, msg_, value_;
};
}  // namespace

Napi::Promise runAsync(Napi::Env env, std::function<Reply()> work) {
  auto* w = new TaskWorker(env, std::move(work));
  auto p = w->promise();
  w->Queue();
  return p;
}

}  // namespace hscr
