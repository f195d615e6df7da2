/**
 * Issue 4, acceptance 5: `hscr sft` on the tiny preset lowers the training loss by ≥ 50% on a small dataset
 * (first epoch's mean vs last epoch's), with JSONL metrics per step. Plus the engine's guards: a folder
 * holding a run is not overwritten, a resume with other settings is refused, bad data stops before writing.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initModel } from '../lib/cli/model';
import { generatePhantom } from '../lib/data/phantom';
import { readMetrics } from '../lib/train/metrics';
import { runSft } from '../lib/train/sft';
import { makePhantomData, makeTinyModelDir } from './helpers/train-fixture';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-sft-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const CLI = [process.execPath, path.resolve(__dirname, 'helpers', 'hscr-cli.js')];

t.test('hscr sft on the tiny preset halves the training loss', async (t) => {
  const model = path.join(tmp, 'tiny');
  await initModel({ preset: 'tiny', out: model, seed: 1 });
  await generatePhantom({ outDir: path.join(tmp, 'phantom'), train: 16, test: 0, seed: 3 });
  const out = path.join(tmp, 'sft');
  const args = ['sft', '--model', model, '--data', path.join(tmp, 'phantom', 'train.jsonl'), '--out', out, '--finetune', 'full'];
  const r = spawnSync(CLI[0], [...CLI.slice(1), ...args, '--lr', '3e-3', '--batch', '8', '--epochs', '12', '--save-steps', '0', '--quiet', '--json'], { encoding: 'utf8', timeout: 300_000 });
  t.equal(r.status, 0, `hscr sft exits 0${r.status ? `: ${r.stdout}${r.stderr}` : ''}`);
  const summary = JSON.parse(r.stdout) as { steps: number; samplesPerSecond: number };
  const metrics = readMetrics(path.join(out, 'metrics.jsonl'));
  t.equal(metrics.length, 24, '2 steps per epoch × 12 epochs, one line each');
  t.equal(summary.steps, 24);
  for (const key of ['step', 'epoch', 'loss', 'learning_rate', 'grad_norm', 'samples_per_second', 'tokens_per_second']) {
    t.ok(metrics.every((m) => typeof m[key] === 'number'), `every line has ${key}`);
  }
  const first = (metrics[0].loss + metrics[1].loss) / 2;
  const last = (metrics[22].loss + metrics[23].loss) / 2;
  t.ok(last <= 0.5 * first, `loss ${first.toFixed(3)} → ${last.toFixed(3)} (${((1 - last / first) * 100).toFixed(0)}% lower)`);
  t.comment(`tiny preset, full fine-tuning, batch 8: ${summary.samplesPerSecond.toFixed(1)} samples/s on this machine`);
  t.ok(fs.existsSync(path.join(out, 'model', 'model.safetensors')) && fs.existsSync(path.join(out, 'model', 'tokenizer.json')), 'full fine-tuning leaves a complete model folder in <out>/model');
});

t.test('guards: an existing run, a resume with other settings, bad data', async (t) => {
  const model = path.join(tmp, 'fixture');
  await makeTinyModelDir(model, 3);
  const { file } = await makePhantomData(path.join(tmp, 'data'), 6);
  const out = path.join(tmp, 'guarded');
  const config = { modelDir: model, outputDir: out, learningRate: 1e-2, maxSteps: 3, batchPerDevice: 2, saveSteps: 1 };
  await runSft({ config, data: file, quiet: true });
  const adapter = fs.readFileSync(path.join(out, 'adapter', 'adapter_model.safetensors'));
  t.ok(fs.existsSync(path.join(out, 'model', 'model.safetensors')), 'a LoRA run also leaves the merged model folder');

  await t.rejects(runSft({ config, data: file, quiet: true }), { code: 'E_ARG', message: /--resume/ }, 'a folder with a run needs --resume or --overwrite');
  await t.rejects(runSft({ config: { ...config, learningRate: 2e-2 }, data: file, quiet: true, resume: true }), { code: 'E_CHECKPOINT', message: /learningRate/ }, 'resume with another lr');
  t.ok(fs.readFileSync(path.join(out, 'adapter', 'adapter_model.safetensors')).equals(adapter), 'the refused runs left the adapter alone');

  const bad = path.join(tmp, 'bad.jsonl');
  fs.writeFileSync(bad, `${fs.readFileSync(file, 'utf8')}{"id": "x", "image": "images/train-00000.png", "question": 3}\n`);
  fs.copyFileSync(bad, path.join(tmp, 'data', 'bad.jsonl'));
  const badOut = path.join(tmp, 'bad-run');
  await t.rejects(runSft({ config: { ...config, outputDir: badOut }, data: path.join(tmp, 'data', 'bad.jsonl'), quiet: true }), { code: 'E_DATA', message: /bad\.jsonl.*line 7/ });
  t.notOk(fs.existsSync(path.join(badOut, 'metrics.jsonl')), 'nothing written for bad data');

  await t.rejects(runSft({ config: { ...config, batchPerDevice: 0 }, data: file, quiet: true }), { code: 'E_ARG', value: 0 });
  await t.rejects(runSft({ config: { ...config, lora: { dropout: 1 } }, data: file, quiet: true }), { code: 'E_ARG', value: 1 });
});
