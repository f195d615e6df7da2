// Precompiled header: libtorch's umbrella header is the bulk of every file's compile time.
#pragma once
#include <napi.h>
#include <torch/torch.h>
