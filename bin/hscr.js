#!/usr/bin/env node
'use strict';
require('../dist/lib/cli/index.js').main(process.argv).catch((err) => {
  const code = err && err.code ? ` [${err.code}]` : '';
  process.stderr.write(`hscr: ${err && err.message ? err.message : err}${code}\n`);
  process.exitCode = 1;
});
