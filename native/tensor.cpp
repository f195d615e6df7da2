#include "tensor.h"

#include <cstring>

namespace hscr {

// Tags a JS object as ours, so a look-alike object can never be unwrapped into garbage.
static const napi_type_tag kTensorTag = {0x6873637274656e73ULL, 0x6f72000000000001ULL};

void Tensor::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(env, "Tensor",
                                   {
                                       StaticMethod("fromArray", &Tensor::fromArray),
                                       InstanceAccessor("shape", &Tensor::shape, nullptr),
                                       InstanceAccessor("dtype", &Tensor::dtype, nullptr),
                                       InstanceAccessor("device", &Tensor::device, nullptr),
                                       InstanceAccessor("numel", &Tensor::numel, nullptr),
                                       InstanceAccessor("disposed", &Tensor::disposed, nullptr),
                                       InstanceMethod("toArray", &Tensor::toArray),
                                       InstanceMethod("to", &Tensor::to),
                                       InstanceMethod("toAsync", &Tensor::toAsync),
                                       InstanceMethod("dispose", &Tensor::dispose),
                                   });
  addonData(env).tensorClass = Napi::Persistent(cls);
  exports.Set("Tensor", cls);
}

Napi::Object Tensor::wrap(Napi::Env env, torch::Tensor t) {
  auto* heap = new torch::Tensor(std::move(t));
  auto ext = Napi::External<torch::Tensor>::New(env, heap);
  return addonData(env).tensorClass.New({ext});
}

torch::Tensor Tensor::unwrap(const Napi::Value& v, const std::string& name) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kTensorTag))
    fail("E_ARG", name + " must be a Tensor", describe(v));
  auto* self = Tensor::Unwrap(v.As<Napi::Object>());
  return self->live(name.c_str());
}

Tensor::Tensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Tensor>(info), env_(info.Env()) {
  // Only native code constructs tensors (with an External); from JS, Tensor.fromArray is the way in.
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::Error(info.Env(), makeJsError(info.Env(), "E_ARG", "use Tensor.fromArray(data, shape, dtype?) to make a tensor",
                                              info.Length() ? describe(info[0]) : "no arguments"));
  }
  auto* heap = info[0].As<Napi::External<torch::Tensor>>().Data();
  tensor_ = std::move(*heap);
  delete heap;
  info.This().As<Napi::Object>().TypeTag(&kTensorTag);
  if (tensor_.defined() && tensor_.device().is_cpu()) {
    accountedBytes_ = static_cast<int64_t>(tensor_.numel() * tensor_.element_size());
    Napi::MemoryManagement::AdjustExternalMemory(env_, accountedBytes_);
  }
}

Tensor::~Tensor() { release(); }

void Tensor::release() {
  tensor_ = torch::Tensor();
  disposed_ = true;
  if (accountedBytes_) {
    Napi::MemoryManagement::AdjustExternalMemory(env_, -accountedBytes_);
    accountedBytes_ = 0;
  }
}

const torch::Tensor& Tensor::live(const char* what) const {
  if (disposed_) fail("E_DISPOSED", std::string(what) + " was disposed");
  return tensor_;
}

// typed-array kind <-> dtype. Uint16Array carries bfloat16/float16 bits; Uint8Array carries uint8 or bool.
static at::ScalarType dtypeOfArray(napi_typedarray_type kind, const std::string& requested) {
  auto want = [&](std::initializer_list<const char*> allowed, const char* arrayName) {
    for (auto* a : allowed)
      if (requested == a) return parseDtype(requested);
    if (requested.empty()) return parseDtype(*allowed.begin());
    fail("E_DTYPE", std::string("a ") + arrayName + " cannot hold dtype " + requested, "\"" + requested + "\"");
  };
  switch (kind) {
    case napi_float32_array: return want({"float32"}, "Float32Array");
    case napi_float64_array: return want({"float64"}, "Float64Array");
    case napi_bigint64_array: return want({"int64"}, "BigInt64Array");
    case napi_int32_array: return want({"int32"}, "Int32Array");
    case napi_uint8_array: return want({"uint8", "bool"}, "Uint8Array");
    case napi_int16_array: return want({"int16"}, "Int16Array");
    case napi_int8_array: return want({"int8"}, "Int8Array");
    case napi_uint16_array:
      if (requested.empty()) fail("E_DTYPE", "a Uint16Array needs dtype \"bfloat16\" or \"float16\"", "no dtype");
      return want({"bfloat16", "float16"}, "Uint16Array");
    default: fail("E_DTYPE", "unsupported typed array (Float32Array, Float64Array, Uint16Array, BigInt64Array, Int32Array, Int16Array, Int8Array, Uint8Array)", "");
  }
}

Napi::Value Tensor::fromArray(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto data = arg(info, 0);
    if (!data.IsTypedArray()) fail("E_ARG", "data must be a typed array", describe(data));
    auto arr = data.As<Napi::TypedArray>();
    auto shape = toIntList(arg(info, 1), "shape");
    std::string requested = arg(info, 2).IsUndefined() ? "" : toString(arg(info, 2), "dtype");
    auto dtype = dtypeOfArray(arr.TypedArrayType(), requested);

    int64_t numel = 1;
    for (auto d : shape) {
      if (d < 0) fail("E_SHAPE", "shape entries must be >= 0", "[" + c10::Join(", ", shape) + "]");
      if (__builtin_mul_overflow(numel, d, &numel)) fail("E_SHAPE", "shape has more elements than fit in 63 bits", "[" + c10::Join(", ", shape) + "]");
    }
    if (numel != static_cast<int64_t>(arr.ElementLength()))
      fail("E_SHAPE", "shape [" + c10::Join(", ", shape) + "] holds " + std::to_string(numel) + " elements but the array has " +
                          std::to_string(arr.ElementLength()),
           "[" + c10::Join(", ", shape) + "]");

    const auto* src = static_cast<const uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
    if (dtype == at::kBool) {
      for (size_t i = 0; i < arr.ElementLength(); ++i)
        if (src[i] > 1) fail("E_ARG", "a bool tensor takes only 0 and 1, found " + std::to_string(src[i]) + " at index " + std::to_string(i));
    }
    auto t = torch::empty(shape, torch::TensorOptions().dtype(dtype));
    if (numel) std::memcpy(t.data_ptr(), src, arr.ByteLength());
    return wrap(info.Env(), std::move(t));
  });
}

Napi::Value Tensor::shape(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto sizes = live("tensor").sizes();
    auto a = Napi::Array::New(info.Env(), sizes.size());
    for (size_t i = 0; i < sizes.size(); ++i) a.Set(i, Napi::Number::New(info.Env(), static_cast<double>(sizes[i])));
    return a;
  });
}

Napi::Value Tensor::dtype(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), dtypeName(live("tensor").scalar_type())); });
}

Napi::Value Tensor::device(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), live("tensor").device().str()); });
}

Napi::Value Tensor::numel(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(live("tensor").numel())); });
}

Napi::Value Tensor::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed_); }

static napi_typedarray_type arrayKindOf(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return napi_float32_array;
    case at::kDouble: return napi_float64_array;
    case at::kBFloat16:
    case at::kHalf: return napi_uint16_array;
    case at::kLong: return napi_bigint64_array;
    case at::kInt: return napi_int32_array;
    case at::kByte:
    case at::kBool: return napi_uint8_array;
    case at::kShort: return napi_int16_array;
    case at::kChar: return napi_int8_array;
    default: fail("E_DTYPE", "no typed array for dtype " + dtypeName(t), dtypeName(t));
  }
}

Napi::Value Tensor::toArray(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto kind = arrayKindOf(live("tensor").scalar_type());
    auto t = tensor_.to(torch::kCPU).contiguous();
    size_t bytes = t.numel() * t.element_size();
    auto buf = Napi::ArrayBuffer::New(info.Env(), bytes);
    if (bytes) std::memcpy(buf.Data(), t.data_ptr(), bytes);
    size_t n = static_cast<size_t>(t.numel());
    switch (kind) {
      case napi_float32_array: return Napi::Float32Array::New(info.Env(), n, buf, 0);
      case napi_float64_array: return Napi::Float64Array::New(info.Env(), n, buf, 0);
      case napi_uint16_array: return Napi::Uint16Array::New(info.Env(), n, buf, 0);
      case napi_bigint64_array: return Napi::BigInt64Array::New(info.Env(), n, buf, 0);
      case napi_int32_array: return Napi::Int32Array::New(info.Env(), n, buf, 0);
      case napi_int16_array: return Napi::Int16Array::New(info.Env(), n, buf, 0);
      case napi_int8_array: return Napi::Int8Array::New(info.Env(), n, buf, 0);
      default: return Napi::Uint8Array::New(info.Env(), n, buf, 0);
    }
  });
}

// "cpu" / "cuda[:N]" moves, a dtype name casts.
static torch::Tensor convert(const torch::Tensor& t, const std::string& spec) {
  if (spec == "cpu" || spec.rfind("cuda", 0) == 0) return t.to(parseDevice(spec));
  return t.to(parseDtype(spec));
}

Napi::Value Tensor::to(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto spec = toString(arg(info, 0), "device or dtype");
    return wrap(info.Env(), convert(live("tensor"), spec));
  });
}

Napi::Value Tensor::toAsync(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto spec = toString(arg(info, 0), "device or dtype");
    torch::Tensor src = live("tensor");
    return runAsync(info.Env(), [src, spec]() -> Reply {
      auto out = convert(src, spec);
      return [out](Napi::Env env) -> Napi::Value { return wrap(env, out); };
    });
  });
}

Napi::Value Tensor::dispose(const Napi::CallbackInfo& info) {
  release();  // idempotent: a second dispose finds nothing to free
  return info.Env().Undefined();
}

}  // namespace hscr
