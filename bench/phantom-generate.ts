/**
 * Time to write the phantom benchmark: `node dist/bench/phantom-generate.js [train] [test] [size]`
 * (after `npx tsc -p tsconfig.json`). Prints items/s; nothing is asserted here.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generatePhantom } from '../lib/data/phantom';

async function main(): Promise<void> {
  const [train, test, size] = [Number(process.argv[2] ?? 2000), Number(process.argv[3] ?? 200), Number(process.argv[4] ?? 64)];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hscr-bench-phantom-'));
  try {
    const started = process.hrtime.bigint();
    const r = await generatePhantom({ outDir: dir, train, test, seed: 1, size, priorBias: 0.8 });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const n = r.train.length + r.test.length;
    console.log(`phantom: ${n} items at ${size}px in ${seconds.toFixed(2)} s (${(n / seconds).toFixed(0)} items/s)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
