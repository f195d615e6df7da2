// Hugging Face safetensors files: a memory-mapped, zero-copy reader, a header-only reader, checkpoint shard
// resolution and an atomic writer. Validation follows the reference Rust crate (safetensors/src/tensor.rs).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace hscr::safetensors {

// One header entry; begin/end are byte offsets into the data section (after the 8 + N header bytes).
struct Entry {
  std::string name;
  at::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

struct Header {
  std::vector<Entry> entries;  // header order
  std::map<std::string, std::string> metadata;
  uint64_t dataStart = 0;  // 8 + header length
  uint64_t fileSize = 0;
};

struct File {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;  // header order
  std::map<std::string, std::string> metadata;
};

// The validated header, without mapping the data. E_CHECKPOINT (naming the file) on a malformed header,
// E_IO on a file that cannot be read.
Header readHeader(const std::string& path);

// Tensor names in header order (header only).
std::vector<std::string> keys(const std::string& path);

// Every tensor of the file as a zero-copy view of a private mapping; the mapping lives until the last view
// dies. Tensors whose offset is not a multiple of their element size are copied out instead.
File read(const std::string& path);

// DIR/model.safetensors, or the shards named by DIR/model.safetensors.index.json ("weight_map") in
// first-seen order. E_CHECKPOINT naming the missing file.
std::vector<std::string> shardFiles(const std::string& dir);

// Writes `tensors` in the given order to path + ".tmp-<pid>-<n>", fsyncs, then renames over `path`:
// a failure never leaves a partial file under `path`, and an existing file stays untouched until the rename.
void write(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
           const std::map<std::string, std::string>& metadata);

// "F32", "BF16", … for the dtypes safetensors and hscr share; E_DTYPE otherwise.
const char* dtypeTag(at::ScalarType t);
// "float32", "int16", … the JS-facing names of the same dtypes.
const char* dtypeJsName(at::ScalarType t);

}  // namespace hscr::safetensors
