// The JS Model class: a Vlm behind a handle. Weights stay native; JS passes token ids and a pixel tensor in,
// and gets log-probs, sums or generated ids out. Every heavy call runs on a worker thread, one at a time per
// model (a mutex), so JS can fire calls without corrupting module state.
#include <map>
#include <mutex>

#include "cpu_allocator.h"
#include "model.h"
#include "parts.h"
#include "safetensors.h"
#include "tensor.h"

namespace hscr {

static const napi_type_tag kModelTag = {0x68736372766c6d00ULL, 0x0000000000000002ULL};

struct ModelState {
  Vlm vlm{nullptr};
  std::mutex mutex;
  torch::Device device = torch::kCPU;
  at::ScalarType dtype = at::kFloat;
  // Set when a training step left a weight non-finite (optimizer.cpp); logprobs/generate/saveWeights then
  // re-check the weights and refuse while any is still NaN/Inf. Read and written under `mutex`.
  std::string nonFiniteParameter;
  // Weights were loaded with allowNonFinite: the user accepted NaN/Inf, so outputs are not checked either.
  bool allowNonFinite = false;
};

std::shared_ptr<ModelState> Model::state(const Napi::Value& v, const std::string& name) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kModelTag)) fail("E_ARG", name + " must be a Model", describe(v));
  auto* self = Model::Unwrap(v.As<Napi::Object>());
  if (!self->state_) fail("E_DISPOSED", name + " was disposed");
  return self->state_;
}

Vlm& Model::vlmOf(const std::shared_ptr<ModelState>& s) { return s->vlm; }
std::mutex& Model::mutexOf(const std::shared_ptr<ModelState>& s) { return s->mutex; }
void Model::markNonFinite(const std::shared_ptr<ModelState>& s, const std::string& parameter) { s->nonFiniteParameter = parameter; }

// Under the model's mutex: refuses to compute with (or write) weights a training step made NaN/Inf.
static void refuseNonFiniteWeights(ModelState& s, const char* what) {
  if (s.nonFiniteParameter.empty()) return;
  for (auto& p : s.vlm->named_parameters(true)) {
    if (int64_t n = nonFiniteCount(p.value()))
      fail("E_NONFINITE", std::string("cannot ") + what + ": parameter " + p.key() + " holds " + nonFiniteSummary(p.value(), n) +
                              " (a diverged training step); reload the model", p.key());
  }
  s.nonFiniteParameter.clear();  // repaired since (weights reloaded)
}

void Model::Init(Napi::Env env, Napi::Object exports) {
  auto cls = DefineClass(env, "Model",
                         {
                             StaticMethod("create", &Model::create),
                             InstanceMethod("parameters", &Model::parameters),
                             InstanceMethod("loadWeights", &Model::loadWeights),
                             InstanceMethod("saveWeights", &Model::saveWeights),
                             InstanceMethod("logprobs", &Model::logprobs),
                             InstanceMethod("generate", &Model::generate),
                             InstanceMethod("dispose", &Model::dispose),
                             InstanceAccessor("disposed", &Model::disposed, nullptr),
                             InstanceAccessor("device", &Model::device, nullptr),
                             InstanceAccessor("dtype", &Model::dtype, nullptr),
                         });
  addonData(env).modelClass = Napi::Persistent(cls);
  exports.Set("Model", cls);
}

Model::Model(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Model>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::Error(info.Env(), makeJsError(info.Env(), "E_ARG", "use Model.create(config, options) or loadModel(dir)", ""));
  auto* s = info[0].As<Napi::External<std::shared_ptr<ModelState>>>().Data();
  state_ = *s;
  delete s;
  info.This().As<Napi::Object>().TypeTag(&kModelTag);
}

// Random init as transformers does it for these models: N(0, 0.02) weights, zero biases, unit norms.
static void initWeights(VlmImpl& m, uint64_t seed) {
  torch::NoGradGuard g;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& p : m.named_parameters(true)) {
    const auto& name = p.key();
    auto& t = p.value();
    auto ends = [&](const std::string& s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
    if (ends("bias")) {
      t.zero_();
    } else if (name.find("norm") != std::string::npos) {
      t.fill_(1.0);
    } else {
      t.normal_(0.0, 0.02, gen);
    }
  }
}

static std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

// Weights alone must fit in memory (activations and training state need more on top): a config that asks for
// more is refused before one byte is allocated, instead of growing until the kernel kills the process.
// options.memoryCheck false skips it; options.maxMemoryBytes replaces the measured budget.
static void checkMemoryBudget(const VlmConfig& config, at::ScalarType dtype, const Napi::Object& opts) {
  if (!optBool(opts, "memoryCheck", true)) return;
  const int64_t count = parameterCount(config);
  const double bytes = static_cast<double>(count) * static_cast<double>(c10::elementSize(dtype));
  auto limit = opts.Get("maxMemoryBytes");
  double budget;
  std::string source;
  if (!limit.IsUndefined() && !limit.IsNull()) {
    budget = toNumber(limit, "option maxMemoryBytes");
    if (!(budget >= 0)) fail("E_ARG", "option maxMemoryBytes must be a number >= 0", describe(limit));
    source = "maxMemoryBytes";
  } else {
    int64_t avail = availableMemoryBytes();
    if (avail < 0) return;  // nothing to measure against
    budget = static_cast<double>(avail);
    source = "available memory (MemAvailable / cgroup limit)";
  }
  if (bytes > budget)
    fail("E_CONFIG",
         "the config describes a model of " + std::to_string(count) + " parameters: " + gib(bytes) + " of " + dtypeName(dtype) +
             " weights, more than the " + gib(budget) + " of " + source +
             "; check config.json (sizes, a missing text_config/vision_config falls back to 7B defaults) or pass memoryCheck: false "
             "(HSCR_MEMORY_CHECK=0) to try anyway",
         std::to_string(count));
}

Napi::Value Model::create(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto config = parseVlmConfig(toObject(arg(info, 0), "config"));
    auto opts = arg(info, 1).IsUndefined() ? Napi::Object::New(info.Env()) : toObject(arg(info, 1), "options");
    auto seed = static_cast<uint64_t>(optInt(opts, "seed", 0));
    auto device = parseDevice(optString(opts, "device", "cpu"));
    auto dtype = parseDtype(optString(opts, "dtype", "float32"));
    if (dtype != at::kFloat && dtype != at::kBFloat16 && dtype != at::kHalf)
      fail("E_DTYPE", "model dtype must be float32, bfloat16 or float16", dtypeName(dtype));
    // libtorch 1.13's CPU kernels lack float16 layer/RMS norm, softmax and GELU paths: the first forward would
    // fail deep inside; refuse here instead.
    if (dtype == at::kHalf && device.is_cpu())
      fail("E_DTYPE", "float16 needs a CUDA device (libtorch has no CPU float16 kernels for these layers): use float32 or bfloat16 on CPU",
           "\"float16\" on \"cpu\"");
    checkMemoryBudget(config, dtype, opts);
    return runAsync(info.Env(), [=]() -> Reply {
      auto s = std::make_shared<ModelState>();
      s->vlm = Vlm(config);
      initWeights(*s->vlm, seed);
      s->vlm->to(device, dtype);
      s->vlm->language_model->fuseProjections();  // merged q/k/v and gate/up products (decoder.h)
      s->vlm->eval();
      s->device = device;
      s->dtype = dtype;
      return [s](Napi::Env env) -> Napi::Value {
        return addonData(env).modelClass.New({Napi::External<std::shared_ptr<ModelState>>::New(env, new std::shared_ptr<ModelState>(s))});
      };
    });
  });
}

Napi::Value Model::parameters(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto s = state(info.This(), "model");
    auto params = s->vlm->named_parameters(true);
    auto out = Napi::Array::New(info.Env(), params.size());
    uint32_t i = 0;
    for (auto& p : params) {
      auto o = Napi::Object::New(info.Env());
      o.Set("name", p.key());
      auto shape = Napi::Array::New(info.Env(), p.value().dim());
      for (int64_t d = 0; d < p.value().dim(); ++d) shape.Set(static_cast<uint32_t>(d), static_cast<double>(p.value().size(d)));
      o.Set("shape", shape);
      o.Set("dtype", dtypeName(p.value().scalar_type()));
      o.Set("trainable", p.value().requires_grad());
      out.Set(i++, o);
    }
    return out;
  });
}

// entries: [{ name (internal), file, key (in that file) }]; options { allowNonFinite }. Each file is mapped once.
// A float weight only takes a floating-point tensor (an I32 in its place is an E_DTYPE naming it), and a
// tensor holding NaN/Inf is an E_CHECKPOINT naming it unless options.allowNonFinite.
Napi::Value Model::loadWeights(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto s = state(info.This(), "model");
    auto list = arg(info, 0);
    if (!list.IsArray()) fail("E_ARG", "entries must be an array of {name, file, key}", describe(list));
    std::vector<std::tuple<std::string, std::string, std::string>> entries;
    auto arr = list.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      auto e = toObject(arr.Get(i), "entries[" + std::to_string(i) + "]");
      entries.emplace_back(toString(e.Get("name"), "entries[].name"), toString(e.Get("file"), "entries[].file"),
                           toString(e.Get("key"), "entries[].key"));
    }
    const bool allowNonFinite = optBool(optionsArg(info, 1), "allowNonFinite", false);
    return runAsync(info.Env(), [s, entries, allowNonFinite]() -> Reply {
      std::lock_guard<std::mutex> lock(s->mutex);
      torch::NoGradGuard g;
      auto params = s->vlm->named_parameters(true);
      std::map<std::string, std::map<std::string, torch::Tensor>> files;  // each file mapped once
      // Checked in full before the first copy: a refused checkpoint leaves the model's weights as they were.
      std::vector<std::pair<torch::Tensor*, torch::Tensor>> copies;
      for (const auto& [name, file, key] : entries) {
        auto* target = params.find(name);
        if (!target) fail("E_CHECKPOINT", "the model has no parameter " + name, name);
        if (!files.count(file)) {
          auto f = safetensors::read(file);
          files.emplace(file, std::map<std::string, torch::Tensor>(f.tensors.begin(), f.tensors.end()));
        }
        const auto& f = files.at(file);
        auto it = f.find(key);
        if (it == f.end()) fail("E_CHECKPOINT", file + " has no tensor " + key, key);
        const auto& source = it->second;
        if (source.sizes() != target->sizes())
          fail("E_CHECKPOINT",
               file + ": " + key + " has shape [" + c10::Join(", ", source.sizes()) + "] but " + name + " needs [" +
                   c10::Join(", ", target->sizes()) + "]",
               key);
        if (target->is_floating_point() && !source.is_floating_point())
          fail("E_DTYPE",
               file + ": " + key + " is stored as " + safetensors::dtypeTag(source.scalar_type()) + " but " + name +
                   " is a floating-point weight (F32, F16, BF16 or F64 expected)",
               key);
        if (!allowNonFinite) {
          if (int64_t n = nonFiniteCount(source))
            fail("E_CHECKPOINT", file + ": " + key + " holds " + nonFiniteSummary(source, n) + "; pass allowNonFinite (--allow-non-finite) to load it anyway",
                 key);
          // float32 values beyond float16's range become Inf in the cast.
          if (source.scalar_type() != target->scalar_type() && nonFiniteCount(source.to(target->scalar_type())))
            fail("E_CHECKPOINT", file + ": " + key + " has values beyond the range of " + dtypeName(target->scalar_type()) + " (they would load as Inf)", key);
        }
        copies.emplace_back(target, source);
      }
      for (auto& [target, source] : copies) target->copy_(source);
      if (allowNonFinite) s->allowNonFinite = true;
      if (!s->nonFiniteParameter.empty()) {
        bool stillBad = false;
        for (auto& p : s->vlm->named_parameters(true)) stillBad = stillBad || nonFiniteCount(p.value()) > 0;
        if (!stillBad) s->nonFiniteParameter.clear();
      }
      return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
    });
  });
}

// entries: [{ name (internal), key (to write) }] — the caller picks the layout's key names; options
// { allowNonFinite }: without it a NaN/Inf weight is an E_NONFINITE naming it and nothing is written.
Napi::Value Model::saveWeights(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto s = state(info.This(), "model");
    auto path = toString(arg(info, 0), "path");
    auto list = arg(info, 1);
    if (!list.IsArray()) fail("E_ARG", "entries must be an array of {name, key}", describe(list));
    std::vector<std::pair<std::string, std::string>> entries;
    auto arr = list.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      auto e = toObject(arr.Get(i), "entries[" + std::to_string(i) + "]");
      entries.emplace_back(toString(e.Get("name"), "entries[].name"), toString(e.Get("key"), "entries[].key"));
    }
    std::map<std::string, std::string> metadata{{"format", "pt"}};
    if (!arg(info, 2).IsUndefined()) {
      auto m = toObject(arg(info, 2), "metadata");
      auto names = m.GetPropertyNames();
      for (uint32_t i = 0; i < names.Length(); ++i) {
        auto k = names.Get(i).As<Napi::String>().Utf8Value();
        metadata[k] = toString(m.Get(k), "metadata." + k);
      }
    }
    const bool allowNonFinite = optBool(optionsArg(info, 3), "allowNonFinite", false);
    return runAsync(info.Env(), [s, path, entries, metadata, allowNonFinite]() -> Reply {
      std::lock_guard<std::mutex> lock(s->mutex);
      auto params = s->vlm->named_parameters(true);
      std::vector<std::pair<std::string, torch::Tensor>> out;
      for (const auto& [name, key] : entries) {
        auto* t = params.find(name);
        if (!t) fail("E_ARG", "the model has no parameter " + name, name);
        if (!allowNonFinite)
          if (int64_t n = nonFiniteCount(*t))
            fail("E_NONFINITE", "refusing to write " + path + ": parameter " + name + " holds " + nonFiniteSummary(*t, n), name);
        out.emplace_back(key, t->detach().cpu());
      }
      safetensors::write(path, out, metadata);
      return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
    });
  });
}

// Pixels as the vision tower takes them: [images, channels, size, size] floats, every one finite (a NaN pixel
// would come out as NaN log-probs, i.e. null in JSON).
static void checkPixels(const torch::Tensor& px, const VlmConfig& c) {
  const auto shape = "[" + c10::Join(", ", px.sizes()) + "]";
  if (px.dim() != 4 || px.size(1) != c.vision.numChannels || px.size(2) != c.vision.imageSize || px.size(3) != c.vision.imageSize)
    fail("E_SHAPE",
         "batch.pixels must be [images, " + std::to_string(c.vision.numChannels) + ", " + std::to_string(c.vision.imageSize) + ", " +
             std::to_string(c.vision.imageSize) + "] for this model",
         shape);
  if (!px.is_floating_point()) fail("E_DTYPE", "batch.pixels must be a floating-point tensor", dtypeName(px.scalar_type()));
  if (int64_t n = nonFiniteCount(px)) {
    auto perImage = torch::logical_not(torch::isfinite(px)).flatten(1).any(1).nonzero();
    fail("E_DATA", "batch.pixels holds " + nonFiniteSummary(px, n) + ", in image " + std::to_string(perImage[0][0].item<int64_t>()) +
                       ": the image decoded or normalised to NaN/Inf", shape);
  }
}

Batch parseBatch(const Napi::Value& v, const VlmConfig& config, uint64_t seed, bool perturbByDefault) {
  auto o = toObject(v, "batch");
  Batch b;
  b.pixels = Tensor::unwrap(o.Get("pixels"), "batch.pixels");
  checkPixels(b.pixels, config);
  auto rows = o.Get("rows");
  if (!rows.IsArray()) fail("E_ARG", "batch.rows must be an array", describe(rows));
  auto arr = rows.As<Napi::Array>();
  auto ids = [](const Napi::Value& x, const std::string& name) -> std::vector<int64_t> {
    if (x.IsUndefined()) return {};
    if (x.IsTypedArray() && x.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
      auto a = x.As<Napi::Int32Array>();
      return std::vector<int64_t>(a.Data(), a.Data() + a.ElementLength());
    }
    return toIntList(x, name);
  };
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    std::string where = "batch.rows[" + std::to_string(i) + "]";
    auto r = toObject(arr.Get(i), where);
    Row row;
    row.image = optInt(r, "image", 0);
    row.prompt = ids(r.Get("prompt"), where + ".prompt");
    row.answer = ids(r.Get("answer"), where + ".answer");
    row.perturb = optBool(r, "perturb", perturbByDefault);
    row.seed = static_cast<uint64_t>(optInt(r, "seed", static_cast<int64_t>(seed) + row.image));
    b.rows.push_back(std::move(row));
  }
  validateBatch(config, b);
  return b;
}

Perturbation parsePerturbation(const Napi::Object& opts) {
  Perturbation p;
  p.kind = parsePerturbKind(optString(opts, "perturb", "none"));
  p.ratio = optNumber(opts, "ratio", 0.7);
  keptCount(1, p.ratio);  // validates the ratio
  return p;
}

Napi::Object optionsArg(const Napi::CallbackInfo& info, size_t i) {
  return arg(info, i).IsUndefined() ? Napi::Object::New(info.Env()) : toObject(arg(info, i), "options");
}

// NaN/Inf log-probs come from NaN/Inf weights or activations; they would reach JSON as null. -Inf is not a
// probability a softmax gives either (log_softmax of finite logits is finite).
static void refuseNonFiniteOutput(const torch::Tensor& lp, const std::vector<int64_t>& counts) {
  if (!nonFiniteCount(lp)) return;
  int64_t off = 0;
  for (size_t r = 0; r < counts.size(); ++r) {
    auto row = lp.slice(0, off, off + counts[r]);
    if (int64_t n = nonFiniteCount(row))
      fail("E_NONFINITE", "the model gave non-finite log-probs for batch row " + std::to_string(r) + " (" + nonFiniteSummary(row, n) +
                              "): its weights or activations overflow", std::to_string(r));
    off += counts[r];
  }
}

// { logprobs: Float32Array (every answer token, rows concatenated), counts: number[], sums: Float64Array }
Napi::Value Model::logprobs(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto s = state(info.This(), "model");
    auto opts = optionsArg(info, 1);
    auto p = parsePerturbation(opts);
    auto batch = parseBatch(arg(info, 0), s->vlm->config, static_cast<uint64_t>(optInt(opts, "seed", 0)), p.kind != PerturbKind::None);
    return runAsync(info.Env(), [s, batch, p]() -> Reply {
      std::lock_guard<std::mutex> lock(s->mutex);
      refuseNonFiniteWeights(*s, "compute log-probs");
      torch::NoGradGuard g;
      auto lp = s->vlm->answerLogprobs(batch, p).cpu().contiguous();
      std::vector<int64_t> counts;
      for (const auto& r : batch.rows) counts.push_back(static_cast<int64_t>(r.answer.size()));
      if (!s->allowNonFinite) refuseNonFiniteOutput(lp, counts);
      return [lp, counts](Napi::Env env) -> Napi::Value {
        auto o = Napi::Object::New(env);
        auto values = Napi::Float32Array::New(env, lp.numel());
        std::memcpy(values.Data(), lp.data_ptr<float>(), lp.numel() * sizeof(float));
        auto sums = Napi::Float64Array::New(env, counts.size());
        auto c = Napi::Array::New(env, counts.size());
        int64_t off = 0;
        for (size_t i = 0; i < counts.size(); ++i) {
          double sum = 0;
          for (int64_t k = 0; k < counts[i]; ++k) sum += values.Data()[off + k];
          off += counts[i];
          sums.Data()[i] = sum;
          c.Set(static_cast<uint32_t>(i), static_cast<double>(counts[i]));
        }
        o.Set("logprobs", values);
        o.Set("counts", c);
        o.Set("sums", sums);
        return o;
      };
    });
  });
}

// Generation past the context would run (RoPE extrapolates) but grows the KV cache without bound for a huge
// maxNewTokens; the longest row must fit maxPositionEmbeddings.
static void checkGenerationLength(const VlmConfig& c, const Batch& batch, int64_t maxNewTokens) {
  const int64_t context = c.text.maxPositionEmbeddings;
  if (context <= 0) return;
  for (size_t r = 0; r < batch.rows.size(); ++r) {
    const auto& row = batch.rows[r];
    const int64_t length = static_cast<int64_t>(row.prompt.size() + row.answer.size()) - 1 + c.visualTokens();
    if (maxNewTokens > context || length + maxNewTokens > context)
      fail("E_ARG",
           "batch row " + std::to_string(r) + ": " + std::to_string(length) + " prompt tokens (visual tokens included) + maxNewTokens " +
               std::to_string(maxNewTokens) + " exceed the model's context of " + std::to_string(context) + " positions",
           std::to_string(maxNewTokens));
  }
}

Napi::Value Model::generate(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto s = state(info.This(), "model");
    auto opts = optionsArg(info, 1);
    auto p = parsePerturbation(opts);
    auto batch = parseBatch(arg(info, 0), s->vlm->config, static_cast<uint64_t>(optInt(opts, "seed", 0)), p.kind != PerturbKind::None);
    GenerateOptions o;
    o.maxNewTokens = optInt(opts, "maxNewTokens", 64);
    o.temperature = optNumber(opts, "temperature", 0);
    o.topP = optNumber(opts, "topP", 1);
    o.seed = static_cast<uint64_t>(optInt(opts, "seed", 0));
    o.useCache = optBool(opts, "useCache", true);
    if (o.maxNewTokens < 1) fail("E_ARG", "maxNewTokens must be >= 1", std::to_string(o.maxNewTokens));
    checkGenerationLength(s->vlm->config, batch, o.maxNewTokens);
    if (o.temperature < 0) fail("E_ARG", "temperature must be >= 0", std::to_string(o.temperature));
    if (!(o.topP > 0 && o.topP <= 1)) fail("E_ARG", "topP must be in (0, 1]", std::to_string(o.topP));
    return runAsync(info.Env(), [s, batch, p, o]() -> Reply {
      std::lock_guard<std::mutex> lock(s->mutex);
      refuseNonFiniteWeights(*s, "generate");
      auto g = s->vlm->generate(batch, p, o);
      return [g](Napi::Env env) -> Napi::Value {
        auto out = Napi::Object::New(env);
        auto tokens = Napi::Array::New(env, g.tokens.size());
        auto finished = Napi::Array::New(env, g.finished.size());
        for (size_t i = 0; i < g.tokens.size(); ++i) {
          auto row = Napi::Array::New(env, g.tokens[i].size());
          for (size_t k = 0; k < g.tokens[i].size(); ++k) row.Set(static_cast<uint32_t>(k), static_cast<double>(g.tokens[i][k]));
          tokens.Set(static_cast<uint32_t>(i), row);
          finished.Set(static_cast<uint32_t>(i), Napi::Boolean::New(env, g.finished[i]));
        }
        out.Set("tokens", tokens);
        out.Set("finished", finished);
        return out;
      };
    });
  });
}

Napi::Value Model::dispose(const Napi::CallbackInfo& info) {
  state_.reset();  // running work holds its own reference and finishes first
  releaseCpuCache();  // the cached buffers were sized for this model's steps
  return info.Env().Undefined();
}

Napi::Value Model::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }

Napi::Value Model::device(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), state(info.This(), "model")->device.str()); });
}

Napi::Value Model::dtype(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), dtypeName(state(info.This(), "model")->dtype)); });
}

// The visual tokens a `token` (or `patch`) perturbation keeps: sorted indices, for inspection and tests.
static Napi::Value keptVisualTokens(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto n = toInt(arg(info, 0), "n");
    if (n < 0) fail("E_ARG", "n must be >= 0", std::to_string(n));
    auto keep = keptIndices(n, toNumber(arg(info, 1), "ratio"), static_cast<uint64_t>(toInt(arg(info, 2), "seed")));
    auto out = Napi::Array::New(info.Env(), keep.numel());
    for (int64_t i = 0; i < keep.numel(); ++i) out.Set(static_cast<uint32_t>(i), static_cast<double>(keep[i].item<int64_t>()));
    return out;
  });
}

void registerModel(Napi::Env env, Napi::Object exports) {
  Model::Init(env, exports);
  exports.Set("keptVisualTokens", Napi::Function::New(env, keptVisualTokens, "keptVisualTokens"));
}

}  // namespace hscr
