#!/usr/bin/env node
'use strict';
// `npm run prebuild` (and `prepack`, so a clean clone packs one): builds the addon with cmake-js against the
// libtorch scripts/find-torch.js finds, and copies it into prebuilds/<platform>-<arch>/ under its variant name
//   hscr.napi.glibc.torch-<major>.<minor>.<cpu|cuda>.node   and the torch-free   hscr_preload.napi.glibc.node.
// Variants already there (e.g. a CUDA build copied from a GPU machine) are kept, so one tarball can carry several.
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { platformDir, prebuildName, describeLibtorch, PRELOAD_NAME } = require('./addon-select');

const root = path.resolve(__dirname, '..');

function torchLibDirOfBuild() {
  const cache = fs.readFileSync(path.join(root, 'build', 'CMakeCache.txt'), 'utf8');
  const m = /^TORCH_LIBRARY:[A-Z]+=(.+)$/m.exec(cache);
  if (!m) throw new Error('build/CMakeCache.txt has no TORCH_LIBRARY: was the addon built with cmake-js?');
  return path.dirname(fs.realpathSync(m[1].trim()));
}

function copyStripped(from, to) {
  fs.copyFileSync(from, to);
  // Debug symbols are most of an unstripped addon; strip is optional (binutils), the copy works without it.
  const r = spawnSync('strip', ['--strip-unneeded', to], { stdio: 'ignore' });
  if (r.error) process.stderr.write('hscr prebuild: `strip` not found; the prebuild keeps its symbols\n');
}

function main() {
  if (process.env.HSCR_PREBUILD_SKIP_BUILD !== '1') {
    const r = spawnSync(process.execPath, [path.join(__dirname, 'install-native.js'), '--build-only'], { stdio: 'inherit' });
    if (r.status !== 0) process.exit(r.status === null ? 1 : r.status);
  }
  const libDir = torchLibDirOfBuild();
  const lt = describeLibtorch(libDir, 'build');
  if (!lt) throw new Error(`cannot tell the libtorch version in ${libDir}`);
  const dir = platformDir(root);
  fs.mkdirSync(dir, { recursive: true });
  const addon = path.join(dir, prebuildName(lt));
  copyStripped(path.join(root, 'build', 'Release', 'hscr.node'), addon);
  copyStripped(path.join(root, 'build', 'Release', 'hscr_preload.node'), path.join(dir, PRELOAD_NAME));
  const mib = (fs.statSync(addon).size / 2 ** 20).toFixed(1);
  process.stderr.write(`hscr prebuild: ${path.relative(root, addon)} (${mib} MiB; libtorch ${lt.fullVersion} in ${libDir})\n`);
}

main();
