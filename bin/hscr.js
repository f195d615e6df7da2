#!/usr/bin/env node
'use strict';
// `hscr … | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on('error', (err) => {
  if (err && err.code === 'EPIPE') process.exit(0);
  throw err;
});
require('../dist/lib/cli/index.js').main(process.argv).catch((err) => {
  const code = err && err.code ? ` [${err.code}]` : '';
  process.stderr.write(`hscr: ${err && err.message ? err.message : err}${code}\n`);
  process.exitCode = 1;
});
