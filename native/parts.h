// Each part of the addon registers its exports here; addon.cpp calls them in order.
#pragma once
#include <napi.h>

namespace hscr {
void registerRuntime(Napi::Env env, Napi::Object exports);
void registerSafetensors(Napi::Env env, Napi::Object exports);
void registerModel(Napi::Env env, Napi::Object exports);
void registerContrastive(Napi::Env env, Napi::Object exports);
void registerMlpo(Napi::Env env, Napi::Object exports);
void registerOptimizer(Napi::Env env, Napi::Object exports);
void registerDistributed(Napi::Env env, Napi::Object exports);
void registerTrain(Napi::Env env, Napi::Object exports);
}  // namespace hscr
