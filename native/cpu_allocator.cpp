// A caching allocator for CPU tensors, the CPU counterpart of PyTorch's CUDA caching allocator.
//
// Why: a training step allocates and frees the same large buffers (activations, gradients, GEMM outputs)
// every step. Through glibc, buffers over the mmap threshold are unmapped on free, and arenas of worker
// threads give freed heaps back with munmap/madvise, so every step touches fresh pages: the profile of a
// full fine-tuning forward + backward on the `small` preset spent ~28% of its time in page faults and the
// kernel zeroing pages (54,000 minor faults, ~210 MB, per step in steady state). M_ARENA_MAX=1 set at addon
// load does not help: Node's threads own arenas before the addon loads. Keeping freed large buffers here
// makes a steady-state step fault-free.
//
// Policy: requests of at least kLargeBytes are rounded up to a size class (8 per power of two, so at most
// 12.5% slack and variable sequence lengths still hit the cache), mapped with mmap, and on free kept on a
// per-class list for the next request of that class. Smaller requests go to torch's own allocator (glibc
// serves those from its heaps without faults). At most `limit` bytes stay cached (HSCR_CPU_CACHE_MB,
// default 4 GiB or a quarter of physical memory, whichever is less); `releaseCpuCache()` returns them all.
// HSCR_CPU_ALLOCATOR=system keeps torch's allocator.
#include "cpu_allocator.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#define HSCR_HAVE_MMAP 1
#endif

namespace hscr {

#ifdef HSCR_HAVE_MMAP
namespace {

constexpr size_t kLargeBytes = size_t{64} << 10;  // 64 KiB

// Rounds n (≥ kLargeBytes) up to 2^e · (1 + m/8), m in 0..7, then to whole pages.
size_t sizeClass(size_t n) {
  size_t top = size_t{1} << (63 - __builtin_clzll(static_cast<unsigned long long>(n)));
  size_t step = top / 8;
  size_t rounded = (n + step - 1) / step * step;
  return (rounded + 4095) / 4096 * 4096;
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(size_t limit) : limit_(limit) {}

  // data == context for every buffer, as raw_allocate()/raw_deallocate() require (torch uses them for
  // scratch space): the deleter tells a cached buffer from a small one by looking its address up.
  c10::DataPtr allocate(size_t n) const override {
    void* p = n < kLargeBytes ? c10::alloc_cpu(n) : take(sizeClass(n));
    return {p, p, &CachingCpuAllocator::deleteAny, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &CachingCpuAllocator::deleteAny; }

  // PyTorch ≥ 2.3 declares this pure virtual; 1.13 has no such member (then this is a plain method).
  void copy_data(void* dest, const void* src, std::size_t count) const { std::memcpy(dest, src, count); }

  CpuCacheStats stats() const {
    std::lock_guard<std::mutex> g(mu_);
    CpuCacheStats s;
    s.installed = true;
    s.limitBytes = limit_;
    s.cachedBytes = cached_;
    s.liveBytes = live_;
    s.peakLiveBytes = peakLive_;
    s.hits = hits_;
    s.misses = misses_;
    return s;
  }

  void release() {
    std::map<size_t, std::vector<void*>> freed;
    {
      std::lock_guard<std::mutex> g(mu_);
      freed.swap(free_);
      cached_ = 0;
    }
    for (auto& kv : freed)
      for (void* p : kv.second) munmap(p, kv.first);
  }

  void setLimit(size_t bytes) {
    {
      std::lock_guard<std::mutex> g(mu_);
      limit_ = bytes;
    }
    if (stats().cachedBytes > bytes) release();
  }

  static CachingCpuAllocator* instance;

 private:
  void* take(size_t bytes) const {
    {
      std::lock_guard<std::mutex> g(mu_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= bytes;
        noteLive(p, bytes);
        ++hits_;
        return p;
      }
      ++misses_;
    }
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      // Cached buffers of other sizes may be what stands in the way: give them back and try once more.
      const_cast<CachingCpuAllocator*>(this)->release();
      p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }
    TORCH_CHECK(p != MAP_FAILED, "CPU out of memory: could not map ", bytes, " bytes");
#ifdef MADV_HUGEPAGE
    // Transparent huge pages where the system offers them on request: 512× fewer first-touch faults.
    if (bytes >= (size_t{2} << 20)) madvise(p, bytes, MADV_HUGEPAGE);
#endif
    std::lock_guard<std::mutex> g(mu_);
    noteLive(p, bytes);
    return p;
  }

  void noteLive(void* p, size_t bytes) const {
    liveBlocks_[p] = bytes;
    live_ += bytes;
    if (live_ > peakLive_) peakLive_ = live_;
  }

  static void deleteAny(void* p) {
    auto* self = instance;
    size_t bytes = 0;
    {
      std::lock_guard<std::mutex> g(self->mu_);
      auto it = self->liveBlocks_.find(p);
      if (it != self->liveBlocks_.end()) {
        bytes = it->second;
        self->liveBlocks_.erase(it);
        self->live_ -= bytes;
        if (self->cached_ + bytes <= self->limit_) {
          self->free_[bytes].push_back(p);
          self->cached_ += bytes;
          return;
        }
      }
    }
    if (bytes)
      munmap(p, bytes);
    else
      c10::free_cpu(p);
  }

  mutable std::mutex mu_;
  mutable std::map<size_t, std::vector<void*>> free_;  // size class → free buffers
  mutable std::unordered_map<void*, size_t> liveBlocks_;  // large buffers in use → their size class
  size_t limit_;
  mutable size_t cached_ = 0, live_ = 0, peakLive_ = 0;
  mutable uint64_t hits_ = 0, misses_ = 0;
};

CachingCpuAllocator* CachingCpuAllocator::instance = nullptr;

size_t defaultLimit() {
  if (const char* mb = std::getenv("HSCR_CPU_CACHE_MB")) {
    char* end = nullptr;
    double v = std::strtod(mb, &end);
    if (end != mb && v >= 0) return static_cast<size_t>(v * 1024 * 1024);
  }
  size_t cap = size_t{4} << 30;
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) cap = std::min(cap, static_cast<size_t>(pages) * static_cast<size_t>(page) / 4);
#endif
  return cap;
}

}  // namespace
#else
namespace {
// Without mmap (not POSIX) torch's own allocator stays; the functions below report it as not installed.
struct CachingCpuAllocator {
  static CachingCpuAllocator* instance;
  CpuCacheStats stats() const { return {}; }
  void release() {}
  void setLimit(size_t) {}
};
CachingCpuAllocator* CachingCpuAllocator::instance = nullptr;
}  // namespace
#endif

void installCpuAllocator() {
#ifdef HSCR_HAVE_MMAP
  static std::once_flag once;
  std::call_once(once, [] {
    const char* choice = std::getenv("HSCR_CPU_ALLOCATOR");
    if (choice && std::string(choice) == "system") return;
    // Never destroyed: tensors may be freed during static destruction at exit.
    CachingCpuAllocator::instance = new CachingCpuAllocator(defaultLimit());
    c10::SetCPUAllocator(CachingCpuAllocator::instance, /*priority=*/1);
  });
#endif
}

CpuCacheStats cpuCacheStats() {
  return CachingCpuAllocator::instance ? CachingCpuAllocator::instance->stats() : CpuCacheStats{};
}

void releaseCpuCache() {
  if (CachingCpuAllocator::instance) CachingCpuAllocator::instance->release();
}

void setCpuCacheLimit(size_t bytes) {
  if (CachingCpuAllocator::instance) CachingCpuAllocator::instance->setLimit(bytes);
}

}  // namespace hscr
