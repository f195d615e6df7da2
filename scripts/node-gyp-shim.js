#!/usr/bin/env node
'use strict';
// prebuildify's `--node-gyp` for a CMake project (prebuildify has no cmake-js backend). prebuildify runs
//   <this> rebuild --target=<node> --devdir=<dir> --arch=<arch> --release
// in its --cwd, then moves the first *.node of <cwd>/build/Release into prebuilds/. So this script:
//   1. builds the project with cmake-js, incrementally, in the package's own build/ (scripts/install-native.js);
//   2. copies the one binary asked for (HSCR_PREBUILD_TARGET: `hscr`, the default, or `hscr_preload`) into
//      <cwd>/build/Release/, alone.
// The cwd is a staging folder (scripts/prebuild.js passes build/prebuildify/<target>), so prebuildify's move
// never takes the developer's build/Release/hscr.node away. --target/--devdir/--arch are ignored: the addon
// uses Node-API (no per-Node headers) and builds for the host arch.
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const OUTPUTS = {
  hscr: path.join(root, 'build', 'Release', 'hscr.node'),
  hscr_preload: path.join(root, 'build', 'loader', 'hscr_preload.node'),
};

function main() {
  const [command] = process.argv.slice(2);
  if (command !== 'rebuild') {
    process.stderr.write(`node-gyp-shim: only \`rebuild\` is supported (got ${command})\n`);
    process.exit(2);
  }
  const target = process.env.HSCR_PREBUILD_TARGET || 'hscr';
  const from = OUTPUTS[target];
  if (!from) {
    process.stderr.write(`node-gyp-shim: HSCR_PREBUILD_TARGET must be one of ${Object.keys(OUTPUTS).join(', ')}\n`);
    process.exit(2);
  }
  const r = spawnSync(process.execPath, [path.join(__dirname, 'install-native.js'), '--build-only'], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status === null ? 1 : r.status);
  const release = path.resolve('build', 'Release');
  if (release === path.dirname(OUTPUTS.hscr)) {
    process.stderr.write('node-gyp-shim: run from a staging folder (prebuildify --cwd), not the package root\n');
    process.exit(2);
  }
  fs.rmSync(release, { recursive: true, force: true });
  fs.mkdirSync(release, { recursive: true });
  fs.copyFileSync(from, path.join(release, path.basename(from)));
}

main();
