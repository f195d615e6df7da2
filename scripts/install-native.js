#!/usr/bin/env node
'use strict';
// Builds the addon from source with cmake-js. npm's install step is
//   node-gyp-build-test || node scripts/install-native.js
// i.e. node-gyp-build's own test-then-build, with the build done by cmake-js: node-gyp-build's install bin
// would fall back to `node-gyp rebuild`, which knows nothing of CMakeLists.txt. node-gyp-build-test runs
// scripts/addon-test.js (package.json "prebuild.test") in its own process, so a prebuild that crashes on
// load only makes this script run. Here:
//   - with cmake and a C++ compiler on PATH, compile against the libtorch scripts/find-torch.js finds into
//     build/Release/hscr.node (which node-gyp-build then prefers over prebuilds), and test-load it in a child;
//   - without them, say what was found and how to fix it, and leave the package installed (loading it then
//     repeats the message) rather than fail the whole `npm install`.
// `--build-only` (scripts/prebuild.js, scripts/node-gyp-shim.js, binding.gyp): build, or fail.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');

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

/** cmake-js compile (incremental) into build/; exits the process on failure. */
function build() {
  const { findTorch } = require('./find-torch');
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
  if (process.argv.includes('--build-only')) return build();
  if (!onPath('cmake') || !(onPath('g++') || onPath('c++'))) {
    log(
      'no prebuild was used (see above for why) and there is no cmake/g++ on PATH to build from source: ' +
        'installed without a working addon. Fix: install a libtorch a prebuild matches, or cmake + g++ + libtorch ' +
        'and run `npm rebuild hscr`.',
    );
    return;
  }
  build();
}

if (require.main === module) main();

module.exports = { build };
