#!/usr/bin/env node
'use strict';
// `npm run prebuildify` (and `prepack`, so a clean clone packs a prebuild): prebuildify, driven through
// scripts/node-gyp-shim.js (cmake-js instead of node-gyp), writes
//   prebuilds/torch-<major>.<minor>-<cpu|cuda>/prebuilds/<platform>-<arch>/hscr.glibc.node
//   prebuilds/loader/prebuilds/<platform>-<arch>/hscr_preload.glibc.node
// (prebuildify's names: with --napi no ABI tag, with --tag-libc the `glibc` tag node-gyp-build checks)
// for the libtorch scripts/find-torch.js finds (LIBTORCH / Torch_DIR, python3's torch, Debian's libtorch-dev).
// What prebuildify cannot know, and this script adds: the libtorch variant, read from the CMake build's
// TORCH_LIBRARY, names the folder (--out). Variant folders already there (e.g. a CUDA build copied from a GPU
// machine) are kept, so one tarball can carry several.
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { build } = require('./install-native');
const { describeLibtorch, variantTag, variantDir, LOADER_DIR } = require('./addon-select');

const root = path.resolve(__dirname, '..');

function log(msg) {
  process.stderr.write(`hscr prebuild: ${msg}\n`);
}

function torchLibDirOfBuild() {
  const cache = fs.readFileSync(path.join(root, 'build', 'CMakeCache.txt'), 'utf8');
  const m = /^TORCH_LIBRARY:[A-Z]+=(.+)$/m.exec(cache);
  if (!m) throw new Error('build/CMakeCache.txt has no TORCH_LIBRARY: was the addon built with cmake-js?');
  return path.dirname(fs.realpathSync(m[1].trim()));
}

/** prebuildify for one CMake target, its binary named `name`, into `out`/prebuilds/<platform>-<arch>/. */
function prebuildify(target, name, out) {
  const staging = path.join(root, 'build', 'prebuildify', target);
  fs.mkdirSync(staging, { recursive: true });
  const args = [
    require.resolve('prebuildify/bin.js'),
    '--napi',
    '--tag-libc',
    '--strip',
    `--name=${name}`,
    `--target=node@${process.versions.node}`,
    `--node-gyp=${path.join(__dirname, 'node-gyp-shim.js')}`,
    `--cwd=${staging}`,
    `--out=${out}`,
  ];
  log(`prebuildify ${args.slice(1).join(' ')}`);
  const r = spawnSync(process.execPath, args, { stdio: 'inherit', env: { ...process.env, HSCR_PREBUILD_TARGET: target } });
  if (r.status !== 0) process.exit(r.status === null ? 1 : r.status);
}

function main() {
  // The build first (its CMake cache names the libtorch); the shim's own build below is then a no-op.
  build();
  const libDir = torchLibDirOfBuild();
  const lt = describeLibtorch(libDir, 'build');
  if (!lt) throw new Error(`cannot tell the libtorch version in ${libDir}`);
  const out = variantDir(root, lt);
  prebuildify('hscr', 'hscr', out);
  prebuildify('hscr_preload', 'hscr_preload', path.join(root, 'prebuilds', LOADER_DIR));
  for (const dir of [out, path.join(root, 'prebuilds', LOADER_DIR)]) {
    for (const file of walk(dir)) {
      const mib = (fs.statSync(file).size / 2 ** 20).toFixed(2);
      log(`${path.relative(root, file)} (${mib} MiB)`);
    }
  }
  log(`variant ${variantTag(lt)}: libtorch ${lt.fullVersion}${lt.cuda ? ' CUDA' : ' CPU'} in ${libDir}`);
}

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });
}

main();
