#include "safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <system_error>

#include "common.h"
#include "parts.h"
#include "tensor.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; this reader maps it as is");

namespace hscr::safetensors {

// ordered_json keeps the header's key order, which File::tensors promises.
using Json = nlohmann::ordered_json;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference crate's MAX_HEADER_SIZE
constexpr const char* kDtypeList = "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL";

struct DtypeInfo {
  const char* tag;
  const char* jsName;
  at::ScalarType type;
};
constexpr DtypeInfo kDtypes[] = {
    {"F64", "float64", at::kDouble}, {"F32", "float32", at::kFloat}, {"F16", "float16", at::kHalf},
    {"BF16", "bfloat16", at::kBFloat16}, {"I64", "int64", at::kLong}, {"I32", "int32", at::kInt},
    {"I16", "int16", at::kShort}, {"I8", "int8", at::kChar}, {"U8", "uint8", at::kByte},
    {"BOOL", "bool", at::kBool},
};

const DtypeInfo* findTag(const std::string& tag) {
  for (const auto& d : kDtypes)
    if (tag == d.tag) return &d;
  return nullptr;
}

const DtypeInfo& infoOf(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d;
  fail("E_DTYPE", std::string("safetensors cannot hold dtype ") + c10::toString(t) + " (supported: " + kDtypeList + ")",
       c10::toString(t));
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

constexpr size_t kShownChars = 80;

// Bounded in depth and length: dump() recurses, and a hostile header can nest a million arrays deep.
void renderShort(const Json& j, std::string& out, int depth) {
  if (!j.is_structured()) {
    out += j.dump(-1, ' ', false, Json::error_handler_t::replace).substr(0, kShownChars);
    return;
  }
  const bool isObject = j.is_object();
  out += isObject ? '{' : '[';
  if (depth >= 3 && !j.empty()) out += "...";
  if (depth < 3) {
    bool first = true;
    for (const auto& item : j.items()) {
      if (!first) out += ',';
      first = false;
      if (out.size() > kShownChars) {
        out += "...";
        break;
      }
      if (isObject) out += Json(item.key()).dump(-1, ' ', false, Json::error_handler_t::replace) + ":";
      renderShort(item.value(), out, depth + 1);
    }
  }
  out += isObject ? '}' : ']';
}

std::string shortJson(const Json& j) {
  std::string s;
  renderShort(j, s, 0);
  return s.size() > kShownChars ? s.substr(0, kShownChars - 3) + "..." : s;
}

[[noreturn]] void ioFail(const std::string& path, const std::string& what, int err) {
  // system_category().message is thread-safe, unlike strerror; these run on libuv workers.
  fail("E_IO", path + ": " + what + ": " + std::system_category().message(err), quoted(path));
}

[[noreturn]] void bad(const std::string& path, const std::string& what, const std::string& value) {
  fail("E_CHECKPOINT", path + ": " + what, value);
}

struct FileDescriptor {
  int fd = -1;
  FileDescriptor() = default;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

void openForReading(FileDescriptor& f, const std::string& path) {
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) ioFail(path, "cannot open", errno);
}

uint64_t fileSizeOf(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) ioFail(path, "cannot stat", errno);
  if (S_ISDIR(st.st_mode)) ioFail(path, "cannot read", EISDIR);
  return static_cast<uint64_t>(st.st_size);
}

void readExactly(int fd, char* out, size_t n, uint64_t offset, const std::string& path) {
  while (n > 0) {
    ssize_t got = ::pread(fd, out, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) ioFail(path, "cannot read", errno);
    if (got == 0) fail("E_IO", path + ": file shrank while being read", quoted(path));
    out += got, n -= static_cast<size_t>(got), offset += static_cast<uint64_t>(got);
  }
}

// Parses JSON and rejects duplicate keys at any depth: a plain parse would keep one value silently,
// and which one a checkpoint "means" is then a guess.
Json parseStrictJson(const std::string& path, const std::string& text, const std::string& what) {
  std::vector<std::set<std::string>> openObjects;
  auto onEvent = [&](int, Json::parse_event_t event, Json& parsed) -> bool {
    if (event == Json::parse_event_t::object_start) openObjects.emplace_back();
    if (event == Json::parse_event_t::object_end) openObjects.pop_back();
    if (event == Json::parse_event_t::key && !openObjects.back().insert(parsed.get<std::string>()).second)
      bad(path, what + " has a duplicate key " + quoted(parsed.get<std::string>()), quoted(parsed.get<std::string>()));
    return true;
  };
  try {
    return Json::parse(text, onEvent);
  } catch (const Json::exception& e) {
    bad(path, what + " is not valid UTF-8 JSON: " + e.what(), "");
  }
}

uint64_t checkedMul(uint64_t a, uint64_t b, const std::string& path, const std::string& where, const Json& culprit) {
  uint64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) bad(path, where + ": shape overflows 64 bits", shortJson(culprit));
  return out;
}

bool isCount(const Json& j) { return j.is_number_unsigned(); }

std::vector<int64_t> parseShape(const std::string& path, const std::string& where, const Json& shape) {
  if (!shape.is_array()) bad(path, where + ": shape must be an array of non-negative integers", shortJson(shape));
  std::vector<int64_t> dims;
  for (const auto& d : shape) {
    if (!isCount(d) || d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      bad(path, where + ": shape must be an array of non-negative integers", shortJson(shape));
    dims.push_back(static_cast<int64_t>(d.get<uint64_t>()));
  }
  return dims;
}

Entry parseEntry(const std::string& path, const std::string& name, const Json& v, uint64_t dataSize) {
  const std::string where = "tensor " + quoted(name);
  if (!v.is_object()) bad(path, where + ": entry must be an object with dtype, shape, data_offsets", shortJson(v));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!v.contains(field)) bad(path, where + ": entry has no \"" + field + "\"", shortJson(v));

  const Json& dtype = v.at("dtype");
  const DtypeInfo* info = dtype.is_string() ? findTag(dtype.get<std::string>()) : nullptr;
  if (!info) bad(path, where + ": unknown dtype (supported: " + kDtypeList + ")", shortJson(dtype));

  Entry e{name, info->type, parseShape(path, where, v.at("shape"))};

  const Json& offsets = v.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !isCount(offsets[0]) || !isCount(offsets[1]) ||
      offsets[0].get<uint64_t>() > offsets[1].get<uint64_t>())
    bad(path, where + ": data_offsets must be [begin, end] with 0 <= begin <= end", shortJson(offsets));
  e.begin = offsets[0].get<uint64_t>(), e.end = offsets[1].get<uint64_t>();
  if (e.end > dataSize)
    bad(path, where + ": data_offsets end " + std::to_string(e.end) + " lies beyond the data section of " + std::to_string(dataSize) + " bytes",
        shortJson(offsets));

  uint64_t bytes = c10::elementSize(e.dtype);
  for (auto d : e.shape) bytes = checkedMul(bytes, static_cast<uint64_t>(d), path, where, v.at("shape"));
  if (e.end - e.begin != bytes)
    bad(path, where + ": " + info->tag + shortJson(v.at("shape")) + " needs " + std::to_string(bytes) + " bytes but data_offsets span " +
                  std::to_string(e.end - e.begin),
        shortJson(offsets));
  return e;
}

std::map<std::string, std::string> parseMetadata(const std::string& path, const Json& v) {
  std::map<std::string, std::string> out;
  if (v.is_null()) return out;  // the reference crate reads it as an Option
  if (!v.is_object()) bad(path, "__metadata__ must be an object of strings", shortJson(v));
  for (const auto& item : v.items()) {
    if (!item.value().is_string())
      bad(path, "__metadata__ " + quoted(item.key()) + " must be a string", shortJson(item.value()));
    out[item.key()] = item.value().get<std::string>();
  }
  return out;
}

// The reference crate sorts entries by (begin, end) and then demands that they tile the data section:
// each starts where the previous ended, and the last ends at the end of the file.
void checkCoverage(const std::string& path, const std::vector<Entry>& entries, uint64_t dataSize) {
  std::vector<size_t> order(entries.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::make_pair(entries[a].begin, entries[a].end) < std::make_pair(entries[b].begin, entries[b].end);
  });
  uint64_t cursor = 0;
  for (size_t i : order) {
    const Entry& e = entries[i];
    const std::string offsets = "[" + std::to_string(e.begin) + "," + std::to_string(e.end) + "]";
    if (e.begin > cursor)
      bad(path, "tensor " + quoted(e.name) + " starts at byte " + std::to_string(e.begin) + " of the data section, leaving a gap after byte " +
                    std::to_string(cursor),
          offsets);
    if (e.begin < cursor)
      bad(path, "tensor " + quoted(e.name) + " starts at byte " + std::to_string(e.begin) + ", overlapping data that ends at byte " +
                    std::to_string(cursor),
          offsets);
    cursor = e.end;
  }
  if (cursor != dataSize)
    bad(path, "tensors cover " + std::to_string(cursor) + " bytes but the data section has " + std::to_string(dataSize) +
                  " (the format requires the tensors to cover it exactly)",
        std::to_string(dataSize));
}

Header parseHeader(const std::string& path, const std::string& text, uint64_t dataStart, uint64_t fileSize) {
  Json root = parseStrictJson(path, text, "header");
  if (!root.is_object()) bad(path, "header must be a JSON object", shortJson(root));
  Header h;
  h.dataStart = dataStart, h.fileSize = fileSize;
  const uint64_t dataSize = fileSize - dataStart;
  for (const auto& item : root.items()) {
    if (item.key() == "__metadata__")
      h.metadata = parseMetadata(path, item.value());
    else
      h.entries.push_back(parseEntry(path, item.key(), item.value(), dataSize));
  }
  checkCoverage(path, h.entries, dataSize);
  return h;
}

Header readHeaderFrom(int fd, const std::string& path) {
  const uint64_t size = fileSizeOf(fd, path);
  if (size < 8)
    bad(path, std::to_string(size) + " bytes is too short for a safetensors file (it starts with an 8-byte header length)",
        std::to_string(size));
  uint64_t headerBytes = 0;
  readExactly(fd, reinterpret_cast<char*>(&headerBytes), 8, 0, path);
  if (headerBytes > kMaxHeaderBytes)
    bad(path, "header length " + std::to_string(headerBytes) + " exceeds the 100 MB limit (a corrupt length field)", std::to_string(headerBytes));
  if (headerBytes > size - 8)
    bad(path, "header length " + std::to_string(headerBytes) + " does not fit a file of " + std::to_string(size) + " bytes",
        std::to_string(headerBytes));
  std::string text(headerBytes, '\0');
  readExactly(fd, text.data(), headerBytes, 8, path);
  return parseHeader(path, text, 8 + headerBytes, size);
}

// A private, copy-on-write mapping of a whole file. PROT_WRITE with MAP_PRIVATE (what torch's
// UntypedStorage.from_file(shared=False) does too) lets an in-place op on a loaded weight work on its own
// page copy instead of crashing the process; the file itself is never written.
struct Mapping {
  char* base = nullptr;
  size_t size = 0;
  Mapping(int fd, uint64_t bytes, const std::string& path) : size(bytes) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) ioFail(path, "cannot map", errno);
    base = static_cast<char*>(p);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { ::munmap(base, size); }
};

torch::Tensor tensorOf(const std::shared_ptr<Mapping>& mapping, uint64_t dataStart, const Entry& e) {
  auto options = torch::TensorOptions().dtype(e.dtype);
  if (e.end == e.begin) return torch::empty(e.shape, options);
  char* data = mapping->base + dataStart + e.begin;
  const size_t bytes = e.end - e.begin;
  // Kernels assume natural alignment; writers that do not sort by alignment can leave a tensor off it.
  if (reinterpret_cast<uintptr_t>(data) % c10::elementSize(e.dtype) != 0) {
    auto owned = torch::empty(e.shape, options);
    std::memcpy(owned.data_ptr(), data, bytes);
    return owned;
  }
  return torch::from_blob(data, e.shape, [mapping](void*) {}, options);
}

std::string joinPath(const std::string& dir, const std::string& name) {
  return !dir.empty() && dir.back() == '/' ? dir + name : dir + "/" + name;
}

bool isRegularFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return S_ISREG(st.st_mode);
  if (errno == ENOENT || errno == ENOTDIR) return false;
  ioFail(path, "cannot stat", errno);
}

std::string readText(const std::string& path) {
  FileDescriptor f;
  openForReading(f, path);
  std::string text(fileSizeOf(f.fd, path), '\0');
  readExactly(f.fd, text.data(), text.size(), 0, path);
  return text;
}

void writeAll(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t put = ::write(fd, p, n);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) ioFail(path, "cannot write", errno);
    p += put, n -= static_cast<size_t>(put);
  }
}

std::string headerText(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = Json(metadata);
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail("E_ARG", "no tensor may be named __metadata__: the key holds the file's metadata", quoted(name));
    if (!seen.insert(name).second) fail("E_ARG", "tensor name " + quoted(name) + " appears twice", quoted(name));
    if (!t.defined() || t.layout() != at::kStrided) fail("E_ARG", "tensor " + quoted(name) + " must be a defined dense tensor", quoted(name));
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    Json entry = Json::object();
    entry["dtype"] = infoOf(t.scalar_type()).tag;
    entry["shape"] = Json(t.sizes().vec());
    entry["data_offsets"] = Json::array({offset, offset + bytes});
    header[name] = std::move(entry);
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception& e) {
    fail("E_ARG", std::string("tensor names and metadata must be valid UTF-8: ") + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // as the reference writer: tensor data starts 8-aligned
  return text;
}

void writeBody(int fd, const std::string& path, const std::string& header,
               const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  const uint64_t headerBytes = header.size();
  writeAll(fd, &headerBytes, 8, path);
  writeAll(fd, header.data(), header.size(), path);
  for (const auto& entry : tensors) {
    // One CPU copy at a time, so saving a model never holds a second full copy of it.
    auto t = entry.second.detach().to(torch::kCPU).contiguous();
    writeAll(fd, t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size(), path);
  }
  if (::fsync(fd) != 0) ioFail(path, "cannot sync", errno);
}

void syncDirectoryOf(const std::string& path) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // the rename happened; durability of the entry is best effort
  ::fsync(fd);
  ::close(fd);
}

std::atomic<uint64_t> tempCounter{0};

}  // namespace

const char* dtypeTag(at::ScalarType t) { return infoOf(t).tag; }
const char* dtypeJsName(at::ScalarType t) { return infoOf(t).jsName; }

Header readHeader(const std::string& path) {
  FileDescriptor f;
  openForReading(f, path);
  return readHeaderFrom(f.fd, path);
}

std::vector<std::string> keys(const std::string& path) {
  std::vector<std::string> names;
  for (auto& e : readHeader(path).entries) names.push_back(std::move(e.name));
  return names;
}

File read(const std::string& path) {
  FileDescriptor f;
  openForReading(f, path);
  Header h = readHeaderFrom(f.fd, path);
  auto mapping = std::make_shared<Mapping>(f.fd, h.fileSize, path);
  File out;
  out.metadata = std::move(h.metadata);
  for (const auto& e : h.entries) out.tensors.emplace_back(e.name, tensorOf(mapping, h.dataStart, e));
  return out;
}

std::vector<std::string> shardFiles(const std::string& dir) {
  const std::string single = joinPath(dir, "model.safetensors");
  if (isRegularFile(single)) return {single};
  const std::string index = joinPath(dir, "model.safetensors.index.json");
  if (!isRegularFile(index)) bad(dir, "has neither model.safetensors nor model.safetensors.index.json", quoted(dir));

  Json root = parseStrictJson(index, readText(index), "the index");
  const Json* weightMap = root.is_object() && root.contains("weight_map") ? &root.at("weight_map") : nullptr;
  if (!weightMap || !weightMap->is_object() || weightMap->empty())
    bad(index, "\"weight_map\" must be a non-empty object of tensor name -> shard file", weightMap ? shortJson(*weightMap) : "");

  std::vector<std::string> shards;
  std::set<std::string> seen;
  for (const auto& item : weightMap->items()) {
    const Json& shard = item.value();
    if (!shard.is_string()) bad(index, "weight_map " + quoted(item.key()) + " must name a shard file", shortJson(shard));
    const std::string name = shard.get<std::string>();
    // A plain file name only: an index must not send the loader elsewhere on the disk.
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
      bad(index, "shard " + quoted(name) + " must be a plain file name in " + dir, quoted(name));
    if (!seen.insert(name).second) continue;
    const std::string shardPath = joinPath(dir, name);
    if (!isRegularFile(shardPath)) bad(index, "lists shard " + quoted(name) + ", which is missing (" + shardPath + ")", quoted(name));
    shards.push_back(shardPath);
  }
  return shards;
}

void write(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
           const std::map<std::string, std::string>& metadata) {
  const std::string header = headerText(tensors, metadata);  // every argument check before the file system
  const std::string temp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(tempCounter++);
  FileDescriptor f;
  f.fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (f.fd < 0) ioFail(path, "cannot create " + temp, errno);
  try {
    writeBody(f.fd, path, header, tensors);
    int fd = f.fd;
    f.fd = -1;
    if (::close(fd) != 0) ioFail(path, "cannot close " + temp, errno);
    if (::rename(temp.c_str(), path.c_str()) != 0) ioFail(path, "cannot rename " + temp + " to it", errno);
  } catch (...) {
    ::unlink(temp.c_str());
    throw;
  }
  syncDirectoryOf(path);
}

}  // namespace hscr::safetensors

// ---- JS bindings ----------------------------------------------------------------------------------------

namespace hscr {
namespace {

namespace st = hscr::safetensors;

std::string pathArg(const Napi::CallbackInfo& info, size_t i, const std::string& name) {
  std::string path = toString(arg(info, i), name);
  if (path.empty()) fail("E_ARG", name + " must not be empty", "\"\"");
  if (path.find('\0') != std::string::npos) fail("E_ARG", name + " must not contain NUL characters", describe(arg(info, i)));
  return path;
}

// An own data property even for names such as "__proto__", which a plain Set would treat as the prototype.
void defineOwn(Napi::Object o, const std::string& key, Napi::Value v) {
  o.DefineProperty(Napi::PropertyDescriptor::Value(key, v, napi_default_jsproperty));
}

std::vector<std::string> ownKeys(Napi::Env env, Napi::Object o) {
  napi_value names;
  napi_status status = napi_get_all_property_names(env, o, napi_key_own_only,
                                                   static_cast<napi_key_filter>(napi_key_enumerable | napi_key_skip_symbols),
                                                   napi_key_numbers_to_strings, &names);
  if (status != napi_ok) throw Napi::Error::New(env);
  auto array = Napi::Array(env, names);
  std::vector<std::string> out(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) out[i] = array.Get(i).As<Napi::String>().Utf8Value();
  return out;
}

Napi::Value jsRead(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto path = pathArg(info, 0, "path");
    return runAsync(info.Env(), [path]() -> Reply {
      auto file = std::make_shared<st::File>(st::read(path));
      return [file](Napi::Env env) -> Napi::Value {
        auto tensors = Napi::Object::New(env);
        for (const auto& [name, t] : file->tensors) defineOwn(tensors, name, Tensor::wrap(env, t));
        auto metadata = Napi::Object::New(env);
        for (const auto& [key, value] : file->metadata) defineOwn(metadata, key, Napi::String::New(env, value));
        auto out = Napi::Object::New(env);
        out.Set("tensors", tensors);
        out.Set("metadata", metadata);
        return out;
      };
    });
  });
}

Napi::Value jsKeys(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto path = pathArg(info, 0, "path");
    return runAsync(info.Env(), [path]() -> Reply {
      auto header = std::make_shared<st::Header>(st::readHeader(path));
      return [header](Napi::Env env) -> Napi::Value {
        auto out = Napi::Array::New(env, header->entries.size());
        for (size_t i = 0; i < header->entries.size(); ++i) {
          const auto& e = header->entries[i];
          auto shape = Napi::Array::New(env, e.shape.size());
          for (size_t d = 0; d < e.shape.size(); ++d) shape.Set(d, Napi::Number::New(env, static_cast<double>(e.shape[d])));
          auto o = Napi::Object::New(env);
          o.Set("name", e.name);
          o.Set("dtype", st::dtypeJsName(e.dtype));
          o.Set("shape", shape);
          out.Set(i, o);
        }
        return out;
      };
    });
  });
}

std::map<std::string, std::string> metadataArg(const Napi::CallbackInfo& info, size_t i) {
  std::map<std::string, std::string> out;
  if (arg(info, i).IsUndefined()) return out;
  auto o = toObject(arg(info, i), "metadata");
  for (const auto& key : ownKeys(info.Env(), o)) {
    auto v = o.Get(key);
    if (!v.IsString()) fail("E_ARG", "metadata[\"" + key + "\"] must be a string", describe(v));
    out[key] = v.As<Napi::String>().Utf8Value();
  }
  return out;
}

Napi::Value jsWrite(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto path = pathArg(info, 0, "path");
    auto object = toObject(arg(info, 1), "tensors");
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (const auto& name : ownKeys(info.Env(), object))
      tensors.emplace_back(name, Tensor::unwrap(object.Get(name), "tensors[\"" + name + "\"]"));
    auto metadata = metadataArg(info, 2);
    return runAsync(info.Env(), [path, tensors, metadata]() -> Reply {
      st::write(path, tensors, metadata);
      return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
    });
  });
}

Napi::Value jsShards(const Napi::CallbackInfo& info) {
  return guardedPromise(info, [&]() -> Napi::Value {
    auto dir = pathArg(info, 0, "dir");
    return runAsync(info.Env(), [dir]() -> Reply {
      auto shards = st::shardFiles(dir);
      return [shards](Napi::Env env) -> Napi::Value {
        auto out = Napi::Array::New(env, shards.size());
        for (size_t i = 0; i < shards.size(); ++i) out.Set(i, shards[i]);
        return out;
      };
    });
  });
}

}  // namespace

void registerSafetensors(Napi::Env env, Napi::Object exports) {
  exports.Set("readSafetensors", Napi::Function::New(env, jsRead, "readSafetensors"));
  exports.Set("safetensorsKeys", Napi::Function::New(env, jsKeys, "safetensorsKeys"));
  exports.Set("writeSafetensors", Napi::Function::New(env, jsWrite, "writeSafetensors"));
  exports.Set("safetensorsShards", Napi::Function::New(env, jsShards, "safetensorsShards"));
}

}  // namespace hscr
