{
  "//": "hscr builds with CMake (CMakeLists.txt). node-gyp only delegates to it, so that `node-gyp rebuild` produces build/Release/hscr.node (prebuilds: scripts/prebuild.js).",
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
