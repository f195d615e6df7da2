'use strict';
// Entry for process tests: registers ts-node (transpile only) and runs the CLI from the TypeScript sources.
// A plain .js entry, because test runners that add ESM loader hooks to child processes would otherwise
// send a .ts entry past ts-node's require hook.
for (const id of ['ts-node/register/transpile-only', '@isaacs/ts-node-temp-fork-for-pr-2009/register/transpile-only']) {
  try {
    require(id);
    break;
  } catch (e) {
    if (e.code !== 'MODULE_NOT_FOUND') throw e;
  }
}
require('./hscr-cli.ts');
