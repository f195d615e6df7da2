#!/usr/bin/env node
'use strict';
// prebuildify spawns `node-gyp rebuild --target=… --arch=… --release` and then copies the first *.node in
// build/Release. hscr builds with CMake, so this stand-in for node-gyp ignores those arguments (one N-API
// build serves every Node version) and runs the cmake-js build, which leaves build/Release/hscr.node.
const { spawnSync } = require('child_process');
const path = require('path');

const r = spawnSync(process.execPath, [path.join(__dirname, 'install-native.js'), '--build-only'], { stdio: 'inherit' });
process.exit(r.status === null ? 1 : r.status);
