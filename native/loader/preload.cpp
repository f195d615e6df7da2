// hscr_preload.node: a torch-free addon with one function, preload(paths), that dlopen()s each library with
// RTLD_NOW | RTLD_LOCAL. lib/native.ts calls it with the libc10/libtorch files of the libtorch it found (an
// installed PyTorch's torch/lib, LIBTORCH/lib, Debian's) before it loads hscr.node: the dynamic linker then
// satisfies hscr.node's NEEDED entries by SONAME from those already-loaded libraries, wherever they live, and
// binds its symbols through that dependency scope. RTLD_LOCAL, not GLOBAL: with GLOBAL, Debian libtorch's own
// dependencies (GLib among its ~290 libraries) entered the global scope and clashed with sharp's bundled GLib
// (hundreds of GLib-GObject-CRITICAL lines when writing PNGs, measured).
// Node's own process.dlopen cannot do this: it dlclose()s a library that registers no module.
#include <dlfcn.h>
#include <node_api.h>
#include <string>

namespace {

napi_value Throw(napi_env env, const std::string& message) {
  napi_throw_error(env, "E_NATIVE", message.c_str());
  return nullptr;
}

napi_value Preload(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 1) {
    return Throw(env, "preload(paths): expected an array of library paths");
  }
  bool isArray = false;
  napi_is_array(env, argv[0], &isArray);
  if (!isArray) return Throw(env, "preload(paths): expected an array of library paths");
  uint32_t n = 0;
  napi_get_array_length(env, argv[0], &n);
  for (uint32_t i = 0; i < n; ++i) {
    napi_value item;
    napi_get_element(env, argv[0], i, &item);
    size_t len = 0;
    if (napi_get_value_string_utf8(env, item, nullptr, 0, &len) != napi_ok) {
      return Throw(env, "preload(paths): every path must be a string");
    }
    std::string file(len, '\0');
    napi_get_value_string_utf8(env, item, file.data(), len + 1, &len);
    // Kept open for the life of the process on purpose: hscr.node depends on these.
    if (dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL) == nullptr) {
      const char* why = dlerror();
      return Throw(env, "cannot load " + file + ": " + (why ? why : "unknown dlopen error"));
    }
  }
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "preload", NAPI_AUTO_LENGTH, Preload, nullptr, &fn);
  napi_set_named_property(env, exports, "preload", fn);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
