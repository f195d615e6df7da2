/**
 * Issue 4, acceptance 3 and 4, with real processes running the CLI (test/helpers/hscr-cli.ts, the sources
 * through ts-node, so no dist/ build is needed):
 * - a 2-process Gloo run (`--nproc 2`, c10d TCPStore rendezvous) with global batch B gives the loss curve of
 *   one process with batch B within 1e-4 (and so does gradient accumulation), for SFT and for MLPO;
 * - kill -9 at a random step, then `--resume`: the final adapter is bit-identical to an uninterrupted run's.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readMetrics } from '../lib/train/metrics';
import type { VqaRecord } from '../lib/data/types';
import { makePhantomData, makeTinyModelDir, writeRankedFromPhantom } from './helpers/train-fixture';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-proc-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

// A .js entry that registers ts-node itself (see the file), so the children run the TypeScript sources.
const CLI = [process.execPath, path.resolve(__dirname, 'helpers', 'hscr-cli.js')];
// One libtorch thread per process: both runs of a comparison must do their float sums the same way.
const ENV: NodeJS.ProcessEnv = { ...process.env, HSCR_NUM_THREADS: '1' };

function hscr(args: string[]): { status: number | null; output: string } {
  const r = spawnSync(CLI[0], [...CLI.slice(1), ...args], { encoding: 'utf8', env: ENV, timeout: 180_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

const model = path.join(tmp, 'model');
let data = '';
let records: VqaRecord[] = [];

t.before(async () => {
  await makeTinyModelDir(model, 2);
  ({ file: data, records } = await makePhantomData(path.join(tmp, 'data'), 8));
});

const common = () => ['sft', '--model', model, '--data', data, '--lr', '1e-2', '--save-steps', '0', '--quiet', '--seed', '3'];

t.test('2 Gloo processes with batch 2 each = 1 process with batch 4 (loss curve within 1e-4)', async (t) => {
  // LoRA dropout off: with it each rank would draw its own masks, a different (equally valid) run.
  const steps = ['--max-steps', '5', '--lora-dropout', '0'];
  const single = hscr([...common(), ...steps, '--out', path.join(tmp, 'single'), '--batch', '4']);
  t.equal(single.status, 0, `1 process, batch 4${single.status ? `: ${single.output}` : ''}`);
  const ddp = hscr([...common(), ...steps, '--out', path.join(tmp, 'ddp'), '--batch', '2', '--nproc', '2']);
  t.equal(ddp.status, 0, `--nproc 2, batch 2${ddp.status ? `: ${ddp.output}` : ''}`);
  const accum = hscr([...common(), ...steps, '--out', path.join(tmp, 'accum'), '--batch', '1', '--grad-accum', '2', '--nproc', '2']);
  t.equal(accum.status, 0, `--nproc 2, batch 1, --grad-accum 2${accum.status ? `: ${accum.output}` : ''}`);

  const a = readMetrics(path.join(tmp, 'single', 'metrics.jsonl'));
  t.equal(a.length, 5, 'one metrics line per step, written by rank 0 only');
  for (const [name, dir] of [['2 processes', 'ddp'], ['2 processes × 2 accumulated micro-batches', 'accum']]) {
    const b = readMetrics(path.join(tmp, dir, 'metrics.jsonl'));
    t.equal(b.length, 5, `${name}: 5 lines`);
    const lossDiff = Math.max(...a.map((m, i) => Math.abs(m.loss - b[i].loss)));
    const normDiff = Math.max(...a.map((m, i) => Math.abs(m.grad_norm - b[i].grad_norm) / m.grad_norm));
    t.ok(lossDiff < 1e-4, `${name}: loss curve within 1e-4 (max diff ${lossDiff.toExponential(2)})`);
    t.ok(normDiff < 1e-4, `${name}: grad norms within 1e-4 relative (${normDiff.toExponential(2)})`);
    t.same(b.map((m) => m.num_tokens), a.map((m) => m.num_tokens), `${name}: the same samples in every step`);
  }
  t.ok(a[4].loss < a[0].loss - 0.05, `the runs really train (${a[0].loss.toFixed(3)} → ${a[4].loss.toFixed(3)})`);
});

t.test('MLPO on 2 Gloo processes (reference log-probs sharded over the ranks) = 1 process', async (t) => {
  const prefs = path.join(tmp, 'ranked.jsonl');
  writeRankedFromPhantom(prefs, records, 3);
  const args = ['train', '--model', model, '--prefs', prefs, '--lr', '1e-2', '--max-steps', '3', '--lora-dropout', '0', '--save-steps', '0', '--quiet'];
  const single = hscr([...args, '--out', path.join(tmp, 'mlpo-1'), '--batch', '4']);
  t.equal(single.status, 0, `1 process${single.status ? `: ${single.output}` : ''}`);
  const ddp = hscr([...args, '--out', path.join(tmp, 'mlpo-2'), '--batch', '2', '--nproc', '2']);
  t.equal(ddp.status, 0, `--nproc 2${ddp.status ? `: ${ddp.output}` : ''}`);
  const a = readMetrics(path.join(tmp, 'mlpo-1', 'metrics.jsonl'));
  const b = readMetrics(path.join(tmp, 'mlpo-2', 'metrics.jsonl'));
  t.equal(b.length, 3);
  const lossDiff = Math.max(...a.map((m, i) => Math.abs(m.loss - b[i].loss)));
  const normDiff = Math.max(...a.map((m, i) => Math.abs(m.grad_norm - b[i].grad_norm) / m.grad_norm));
  t.ok(lossDiff < 1e-4, `loss curve within 1e-4 (${lossDiff.toExponential(2)})`);
  t.ok(normDiff < 1e-4, `grad norms within 1e-4 relative (${normDiff.toExponential(2)})`);
  const cache = (dir: string) => fs.readFileSync(path.join(tmp, dir, fs.readdirSync(path.join(tmp, dir)).find((f) => f.startsWith('reference_logps-'))!), 'utf8');
  const refA = JSON.parse(cache('mlpo-1')).logps as Record<string, number[]>;
  const refB = JSON.parse(cache('mlpo-2')).logps as Record<string, number[]>;
  t.same(Object.keys(refB).sort(), Object.keys(refA).sort(), 'every sample’s reference log-probs, gathered from both ranks');
  const refDiff = Math.max(...Object.keys(refA).flatMap((id) => refA[id].map((v, k) => Math.abs(v - refB[id][k]))));
  t.ok(refDiff < 1e-4, `and equal to the single process’s (${refDiff.toExponential(2)})`);
});

/** Starts a run and SIGKILLs it once its metrics show `atStep` steps; resolves with the step count seen. */
function killAtStep(args: string[], metricsFile: string, atStep: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(CLI[0], [...CLI.slice(1), ...args], { env: ENV, stdio: 'ignore' });
    const poll = setInterval(() => {
      const lines = fs.existsSync(metricsFile) ? fs.readFileSync(metricsFile, 'utf8').split('\n').filter(Boolean).length : 0;
      if (lines >= atStep) {
        child.kill('SIGKILL');
        clearInterval(poll);
        resolve(lines);
      }
    }, 2);
    child.on('exit', (code, signal) => {
      clearInterval(poll);
      if (signal !== 'SIGKILL') reject(new Error(`the run ended (code ${code}) before it was killed`));
    });
  });
}

t.test('kill -9 at a random step, then --resume: final adapter bit-identical to an uninterrupted run', async (t) => {
  // Dropout on, so the restored RNG state matters; a checkpoint every step, kept two at a time.
  const args = [...common(), '--max-steps', '30', '--batch', '2', '--lora-dropout', '0.2', '--save-steps', '1', '--save-total-limit', '2'];
  const whole = hscr([...args, '--out', path.join(tmp, 'whole')]);
  t.equal(whole.status, 0, `uninterrupted run${whole.status ? `: ${whole.output}` : ''}`);

  const out = path.join(tmp, 'killed');
  const atStep = 3 + Math.floor(Math.random() * 20);
  const seen = await killAtStep([...args, '--out', out], path.join(out, 'metrics.jsonl'), atStep);
  t.ok(seen < 30, `killed at step ${seen} (aimed at ${atStep})`);
  t.notOk(fs.existsSync(path.join(out, 'adapter')), 'the killed run never finished');

  const again = hscr([...args, '--out', out]);
  t.not(again.status, 0, 'without --resume the folder of a run is refused');
  t.match(again.output, /--resume/);

  const resumed = hscr([...args, '--out', out, '--resume']);
  t.equal(resumed.status, 0, `resumed run${resumed.status ? `: ${resumed.output}` : ''}`);
  const a = fs.readFileSync(path.join(tmp, 'whole', 'adapter', 'adapter_model.safetensors'));
  const b = fs.readFileSync(path.join(out, 'adapter', 'adapter_model.safetensors'));
  t.ok(a.equals(b), 'adapter/adapter_model.safetensors: the same bytes');
  const la = readMetrics(path.join(tmp, 'whole', 'metrics.jsonl'));
  const lb = readMetrics(path.join(out, 'metrics.jsonl'));
  t.same(lb.map((m) => m.step), la.map((m) => m.step), 'metrics: every step once');
  t.same(lb.map((m) => m.loss), la.map((m) => m.loss), 'metrics: the same losses');
  t.equal(fs.readdirSync(out).filter((n) => n.startsWith('checkpoint-')).length, 2, 'save-total-limit kept two checkpoints');
  t.equal(fs.readdirSync(out).filter((n) => n.startsWith('.checkpoint-')).length, 0, 'no temp folder left behind');
});
