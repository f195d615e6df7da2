{
  "//": "hscr builds with CMake (CMakeLists.txt) through cmake-js. node-gyp only delegates to it, so that `node-gyp rebuild` produces build/Release/hscr.node. Prebuilds: prebuildify with scripts/node-gyp-shim.js as its node-gyp (scripts/prebuild.js).",
  "targets": [
    {
      "target_name": "hscr_cmake",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_js_build",
          "inputs": ["CMakeLists.txt"],
          "outputs": ["build/Release/hscr.node"],
          "action": ["node", "scripts/install-native.js", "--build-only"]
        }
      ]
    }
  ]
}
