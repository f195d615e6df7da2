#!/usr/bin/env node
'use strict';
// npm's install step for the native addon. node-gyp-build's own bin would fall back to `node-gyp rebuild`,
// which knows nothing of CMake, so this script does the equivalent with cmake-js:
//   1. a prebuild that matches the libtorch found on this machine and loads (scripts/addon-select.js tests it
//      in a child process, so a binary that crashes on load cannot take npm down) is used as is;
//   2. otherwise (or with HSCR_BUILD_FROM_SOURCE=1, or when a local build already exists, i.e. a developer
//      checkout) the addon is compiled with cmake-js against the libtorch that scripts/find-torch.js finds;
//   3. with no matching prebuild and no cmake to build one, it says what it found and how to fix it, and
//      leaves the package installed (loading it then repeats the same message).
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const { findTorch } = require('./find-torch');
const { selectAddon } = require('./addon-select');

const root = path.resolve(__dirname, '..');
const buildOnly = process.argv.includes('--build-only');

function log(msg) {
  process.stderr.write(`hscr install: ${msg}\n`);
}

function loadsInChild(file) {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { stdio: 'pipe', timeout: 120000 });
  return r.status === 0;
}

function onPath(program) {
  return (process.env.PATH || '').split(path.delimiter).some((d) => d && fs.existsSync(path.join(d, program)));
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
  if (buildOnly || process.env.HSCR_BUILD_FROM_SOURCE === '1' || localBuild) return build();
  try {
    const chosen = selectAddon(root, process.env, { prebuildsOnly: true });
    log(`using prebuilt ${path.relative(root, chosen.file)}: ${chosen.reason}`);
    return;
  } catch (e) {
    if (!onPath('cmake') || !(onPath('g++') || onPath('c++'))) {
      log(e.message);
      log('no cmake/g++ on PATH to build from source: installed without a working addon (see the fix above).');
      return;
    }
    log(`${e.message}\nbuilding from source instead.`);
  }
  build();
}

main();
