// Each part of the addon registers its exports here; addon.cpp calls them in order.
#pragma once
#include <napi.h>

namespace hscr {
void registerRuntime(Napi::Env env, Napi::Object exports);
void registerSafetensors(Napi::Env env, Napi::Object exports);
void registerModel(Napi::Env env, Napi::Object exports);
}  // namespace hscr
