#include "op_profile.h"

#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace hscr {

namespace prof = torch::autograd::profiler;

// Self time = a range's time minus its child ranges', keyed by operator name and input shapes.
static void printSelfTimes(const prof::thread_event_lists& lists, size_t top) {
  std::map<std::string, std::pair<double, int>> byOp;
  for (const auto& list : lists) {
    std::vector<std::pair<const prof::LegacyEvent*, double>> open;  // push event, children's time
    for (const auto& e : list) {
      if (e.kind() == prof::EventKind::PushRange) {
        open.push_back({&e, 0.0});
      } else if (e.kind() == prof::EventKind::PopRange && !open.empty()) {
        auto [push, children] = open.back();
        open.pop_back();
        double us = push->cpuElapsedUs(e);
        if (!open.empty()) open.back().second += us;
        std::string key = push->name();
        for (const auto& shape : push->shapes()) key += " [" + c10::Join(",", shape) + "]";
        byOp[key].first += us - children;
        byOp[key].second += 1;
      }
    }
  }
  std::vector<std::pair<double, std::string>> rows;
  double total = 0, products = 0;
  for (const auto& kv : byOp) {
    rows.push_back({kv.second.first, kv.first + "  ×" + std::to_string(kv.second.second)});
    total += kv.second.first;
    if (kv.first.rfind("aten::mm ", 0) == 0 || kv.first.rfind("aten::bmm ", 0) == 0) products += kv.second.first;
  }
  std::sort(rows.rbegin(), rows.rend());
  std::fprintf(stderr, "hscr op profile: %.1f ms in operators, %.0f%% of it in mm/bmm (self ms, operator and input shapes, calls):\n",
               total / 1000, total > 0 ? 100 * products / total : 0.0);
  for (size_t i = 0; i < rows.size() && i < top; ++i) std::fprintf(stderr, "%10.2f  %s\n", rows[i].first / 1000, rows[i].second.c_str());
}

std::unique_ptr<void, void (*)(void*)> opProfileIfRequested() {
  const char* n = std::getenv("HSCR_OP_PROFILE");
  size_t top = n ? static_cast<size_t>(std::strtoul(n, nullptr, 10)) : 0;
  if (top == 0) return {nullptr, [](void*) {}};
  auto* guard = new prof::TLSLegacyProfilerGuard(
      torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU, /*report_input_shapes=*/true),
      [top](const prof::thread_event_lists& lists) { printSelfTimes(lists, top); });
  return {guard, [](void* g) { delete static_cast<prof::TLSLegacyProfilerGuard*>(g); }};
}

}  // namespace hscr
