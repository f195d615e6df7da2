/** The hscr command line straight from the TypeScript sources (for process tests: no dist/ build needed). */
import { main } from '../../lib/cli/index';

main(process.argv).catch((err: { message?: string; code?: string }) => {
  process.stderr.write(`hscr: ${err?.message ?? String(err)}${err?.code ? ` [${err.code}]` : ''}\n`);
  process.exitCode = 1;
});
