#!/usr/bin/env node
'use strict';
// npm's install step for the native addon. node-gyp-build's own bin would fall back to `node-gyp rebuild`,
// which knows nothing of CMake, so this script does what it does with cmake-js instead:
//   1. a prebuild in prebuilds/<platform>-<arch>/ that loads (tested in a child process, so a binary that
//      crashes on load cannot take npm down) is used as is;
//   2. otherwise (or with HSCR_BUILD_FROM_SOURCE=1, or when a local build already exists, i.e. a developer
//      checkout) the addon is compiled with cmake-js against the libtorch that scripts/find-torch.js finds.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const { findTorch } = require('./find-torch');

const root = path.resolve(__dirname, '..');
const buildOnly = process.argv.includes('--build-only');

function log(msg) {
  process.stderr.write(`hscr install: ${msg}\n`);
}

function loadsInChild(file) {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { stdio: 'pipe', timeout: 120000 });
  return r.status === 0;
}

function prebuildFile() {
  const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (!fs.existsSync(dir)) return undefined;
  const file = fs.readdirSync(dir).find((f) => f.endsWith('.node'));
  return file ? path.join(dir, file) : undefined;
}

function build() {
  const torch = findTorch();
  log(`building from source with cmake-js against libtorch at ${torch.dir} (${torch.source})`);
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const jobs = String(process.env.CMAKE_BUILD_PARALLEL_LEVEL || os.availableParallelism());
  const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build', `--CDTorch_DIR=${torch.dir}`], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, CMAKE_BUILD_PARALLEL_LEVEL: jobs },
  });
  if (r.status !== 0) {
    log('the native build failed (see above). Run `bash scripts/setup.sh` to install libtorch-dev, cmake and OpenBLAS.');
    process.exit(r.status || 1);
  }
  const out = path.join(root, 'build', 'Release', 'hscr.node');
  if (!loadsInChild(out)) {
    log(`built ${out}, but it does not load; run \`node -e "require('${out}')"\` to see why.`);
    process.exit(1);
  }
  log(`built ${path.relative(root, out)}`);
}

function main() {
  const localBuild = fs.existsSync(path.join(root, 'build', 'Release'));
  const fromSource = buildOnly || process.env.HSCR_BUILD_FROM_SOURCE === '1' || localBuild;
  const prebuild = fromSource ? undefined : prebuildFile();
  if (prebuild && loadsInChild(prebuild)) {
    log(`using prebuilt ${path.relative(root, prebuild)}`);
    return;
  }
  if (prebuild) log(`prebuilt ${path.relative(root, prebuild)} does not load here; falling back to a local build`);
  build();
}

main();
