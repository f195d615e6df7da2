#!/usr/bin/env node
'use strict';
// node-gyp-build-test's check for hscr (package.json "prebuild.test"): exit 0 when a binary loads here, so the
// install step (`node-gyp-build-test || node scripts/install-native.js`) builds nothing. node-gyp-build's
// default check (require the first binary node-gyp-build resolves) cannot do this alone: which prebuild fits
// depends on the libtorch on the machine, which scripts/addon-select.js finds; it test-loads its candidate in
// a further child process. Prints what it chose and why.
// A non-zero exit means "build from source", on purpose also when:
//   - HSCR_BUILD_FROM_SOURCE=1 or `npm install --build-from-source` asks for it;
//   - build/CMakeCache.txt exists (a developer checkout or an earlier source build): the incremental cmake-js
//     build is a no-op when nothing changed, and a stale local build must not shadow edited sources.
const fs = require('fs');
const path = require('path');
const { selectAddon } = require('./addon-select');

const root = path.resolve(__dirname, '..');
const log = (msg) => process.stderr.write(`hscr install: ${msg}\n`);

if (process.env.HSCR_BUILD_FROM_SOURCE === '1' || process.env.npm_config_build_from_source === 'true') {
  log('build from source requested');
  process.exit(1);
}
if (fs.existsSync(path.join(root, 'build', 'CMakeCache.txt'))) {
  log('build/ holds a cmake-js build: rebuilding it incrementally');
  process.exit(1);
}
try {
  const chosen = selectAddon(root, process.env, { prebuildsOnly: true });
  log(`using prebuilt ${path.relative(root, chosen.file)}: ${chosen.reason}`);
} catch (e) {
  log(e.message);
  process.exit(1);
}
