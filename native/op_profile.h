// Per-operator self times of one native call, for finding what a step spends its time on.
#pragma once
#include <memory>

namespace hscr {

// With HSCR_OP_PROFILE=N in the environment: a guard that records torch's operators (with input shapes) on
// this thread until it is destroyed, then prints the N with the most self time to stderr. Otherwise null.
std::unique_ptr<void, void (*)(void*)> opProfileIfRequested();

}  // namespace hscr
