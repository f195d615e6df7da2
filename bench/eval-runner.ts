/**
 * Overhead of the evaluation runner on 200 phantom test items (streamed predictions, scoring, results):
 * `node dist/bench/eval-runner.js [items] [batchSize] [msPerBatch]`. The predictor is an oracle that reads
 * the records, optionally sleeping per batch to stand in for a model; the model's own speed is measured
 * where `hscr eval` runs it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generatePhantom } from '../lib/data/phantom';
import { evaluate, type Predictor } from '../lib/eval';

async function main(): Promise<void> {
  const [items, batchSize, msPerBatch] = [Number(process.argv[2] ?? 200), Number(process.argv[3] ?? 8), Number(process.argv[4] ?? 0)];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hscr-bench-eval-'));
  try {
    const { test } = await generatePhantom({ outDir: path.join(dir, 'data'), train: 0, test: items, seed: 1 });
    const byId = new Map(test.map((r) => [r.id, r.answer]));
    const oracle: Predictor = async (batch) => {
      if (msPerBatch > 0) await new Promise((r) => setTimeout(r, msPerBatch));
      return batch.map((q) => byId.get(q.id) ?? '');
    };
    const started = process.hrtime.bigint();
    const r = await evaluate(test, oracle, { batchSize, outDir: path.join(dir, 'out') });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(`eval runner: ${items} items, batch ${batchSize}, ${msPerBatch} ms/batch model stand-in: ${seconds.toFixed(3)} s in all (${(items / seconds).toFixed(0)} samples/s)`);
    console.log(r.table);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
