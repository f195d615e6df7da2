// The CPU tensor allocator: large buffers are kept for reuse instead of going back to the OS (see the .cpp).
#pragma once
#include <cstddef>
#include <cstdint>

namespace hscr {

struct CpuCacheStats {
  bool installed = false;    // false: torch's own allocator is in use (HSCR_CPU_ALLOCATOR=system, or not POSIX)
  size_t limitBytes = 0;     // most bytes kept cached while free
  size_t cachedBytes = 0;    // bytes now cached, free for reuse
  size_t liveBytes = 0;      // bytes of large buffers now in use
  size_t peakLiveBytes = 0;  // most bytes of large buffers in use at once
  uint64_t hits = 0;         // large requests served from the cache
  uint64_t misses = 0;       // large requests that mapped fresh memory
};

// Makes the caching allocator torch's CPU allocator, once per process; a no-op when HSCR_CPU_ALLOCATOR=system.
void installCpuAllocator();
CpuCacheStats cpuCacheStats();
// Returns every cached (free) buffer to the OS; buffers in use are untouched.
void releaseCpuCache();
void setCpuCacheLimit(size_t bytes);

}  // namespace hscr
