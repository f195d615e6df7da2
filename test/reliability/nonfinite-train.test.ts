/**
 * Issue 13, failure 3 (training): a step whose loss or gradient is NaN/Inf is skipped and counted, K in a row
 * stop the run with an E_NONFINITE and a non-zero CLI exit, and nothing non-finite is ever saved. The
 * reported case: `sft --lr 1e30 --max-grad-norm 0`, which used to exit 0 with NaN weights.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors } from '../../lib/model/safetensors';
import { VisionLanguageModel } from '../../lib/model/vlm';
import { tensor } from '../../lib/tensor';
import { loadAdapter } from '../../lib/train/adapter';
import { listCheckpoints } from '../../lib/train/checkpoint';
import { readMetrics } from '../../lib/train/metrics';
import { trainAddon } from '../../lib/train/native';
import { createSftTask, encodeSftExamples, runSft } from '../../lib/train/sft';
import { loadDataset } from '../../lib/data';
import { disposeBundle, loadModelBundle } from '../../lib/model/bundle';
import { resolveSftConfig } from '../../lib/train/config';
import { runTraining, type TrainingTask } from '../../lib/train/loop';
import { makePhantomData, makeTinyModelDir } from '../helpers/train-fixture';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-rel-nan-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const CLI = [process.execPath, path.resolve(__dirname, '..', 'helpers', 'hscr-cli.js')];

const model = path.join(tmp, 'model');
const fixture = (async () => {
  await makeTinyModelDir(model, 3);
  return (await makePhantomData(path.join(tmp, 'data'), 8)).file;
})();

t.test('the optimizer skips a NaN gradient (weights, moments and step count unchanged) and refuses an overflowing update', async (t) => {
  const addon = trainAddon();
  const w = tensor(Float32Array.from([1, 2, 3]), [3]);
  const opt = addon.Optimizer.create([w], { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
  const r = await opt.step({ lr: 0.1, maxGradNorm: 0, grads: [tensor(Float32Array.from([0.5, NaN, 1]), [3])] });
  t.same({ skipped: r.skipped, step: opt.stepCount }, { skipped: true, step: 0 });
  t.ok(Number.isNaN(r.gradNorm), 'the NaN gradient norm is reported');
  t.same(Array.from(w.toArray() as Float32Array), [1, 2, 3], 'weights untouched');
  const forced = await opt.step({ lr: 0.1, maxGradNorm: 0, grads: [tensor(Float32Array.from([1, 1, 1]), [3])], skip: true });
  t.equal(forced.skipped, true, 'skip: true (a non-finite loss) skips a finite gradient too');
  const ok = await opt.step({ lr: 0.1, maxGradNorm: 0, grads: [tensor(Float32Array.from([1, 1, 1]), [3])] });
  t.same({ skipped: ok.skipped, step: opt.stepCount }, { skipped: false, step: 1 });
  t.ok((w.toArray() as Float32Array).every((x, i) => Math.abs(x - (i + 1 - 0.1)) < 1e-6), 'a finite step still updates (w − lr·sign(g))');
  const before = Array.from(w.toArray() as Float32Array);
  await t.rejects(opt.step({ lr: 1e38, maxGradNorm: 0, grads: [tensor(Float32Array.from([1, 1, 1]), [3])] }), {
    code: 'E_NONFINITE',
    message: /learning rate .* gives an AdamW step size of .* beyond the range of float32; nothing was updated/,
  });
  t.same(Array.from(w.toArray() as Float32Array), before, 'a step size beyond float32 changes nothing');
  t.equal(opt.stepCount, 1, 'nor the step count');
  // A representable step that still overflows a weight: 3.4e38 + 1e37 (lr · sign(g) on the first step) = Inf.
  const big = tensor(Float32Array.from([3.4e38, 1, 1]), [3]);
  const opt2 = addon.Optimizer.create([big], { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
  await t.rejects(opt2.step({ lr: 1e37, maxGradNorm: 0, grads: [tensor(Float32Array.from([-1, 1, 1]), [3])] }), {
    code: 'E_NONFINITE',
    message: /AdamW step 1 .* left parameter 0 with 1 non-finite value of 3 \(first at flat index 0: inf\)/,
  });
  await t.rejects(opt.step({ lr: Infinity, maxGradNorm: 0 }), { code: 'E_ARG', message: /lr must be finite/ });
});

t.test('sft --lr 1e30 --max-grad-norm 0: skipped steps are counted, 3 in a row stop the run, nothing non-finite is saved', async (t) => {
  const data = await fixture;
  const out = path.join(tmp, 'diverged');
  const config = { modelDir: model, outputDir: out, learningRate: 1e30, maxGradNorm: 0, maxSteps: 12, batchPerDevice: 2, saveSteps: 1, saveTotalLimit: 0, maxNonFiniteSteps: 3 };
  const err = await runSft({ config, data, quiet: true }).then(
    () => null,
    (e) => e,
  );
  t.equal(err?.code, 'E_NONFINITE', 'the run stops with an E_NONFINITE');
  t.match(err?.message, /sft: 3 optimizer steps in a row \(steps \d+–\d+\) had a non-finite loss or gradient/);
  const metrics = readMetrics(path.join(out, 'metrics.jsonl'));
  const skipped = metrics.filter((m) => m.nonfinite_skipped === 1);
  t.equal(skipped.length, 3, 'three skipped steps logged');
  t.ok(skipped.every((m, i) => m.nonfinite_steps === i + 1), 'with a running count');
  t.ok(metrics.length < 12, `stopped after ${metrics.length} of 12 steps`);
  t.notOk(fs.existsSync(path.join(out, 'adapter')), 'no final adapter');
  t.notOk(fs.existsSync(path.join(out, 'model')), 'no merged model');
  const checkpoints = listCheckpoints(out);
  t.ok(checkpoints.length >= 1, 'the checkpoints before the divergence remain');
  for (const c of checkpoints) {
    for (const file of fs.readdirSync(c.dir).filter((f) => f.endsWith('.safetensors') && !f.startsWith('rng'))) {
      const f = await readSafetensors(path.join(c.dir, file));
      const bad = Object.entries(f.tensors).filter(([, v]) => !(v.toArray() as Float32Array).every(Number.isFinite));
      t.same(bad.map(([k]) => k), [], `${path.basename(c.dir)}/${file} is finite`);
    }
    // Skipped steps do not move the step counter of the checkpoints: each is named after the loop's step.
    t.equal(JSON.parse(fs.readFileSync(path.join(c.dir, 'trainer_state.json'), 'utf8')).global_step, c.step);
  }
  const reloaded = await VisionLanguageModel.load(model);
  await loadAdapter(reloaded, checkpoints[checkpoints.length - 1].dir);
  t.pass('the last checkpoint loads with the finiteness check on');
  reloaded.dispose();
});

t.test('a single bad step is skipped and the run goes on (the counter resets)', async (t) => {
  const data = await fixture;
  const out = path.join(tmp, 'one-bad');
  const bundle = await loadModelBundle(model);
  t.teardown(() => disposeBundle(bundle));
  const { records } = await loadDataset(data);
  const task = createSftTask(bundle, encodeSftExamples(bundle, records, data), 'fingerprint');
  // The real SFT step, with step 2's loss reported as NaN (as a NaN batch would make it).
  const poisoned: TrainingTask = {
    ...task,
    microStep: async (m, indices, scale, step) => {
      const sums = await task.microStep(m, indices, scale, step);
      return step === 1 ? { ...sums, lossSum: NaN } : sums;
    },
  };
  const config = resolveSftConfig({ modelDir: model, outputDir: out, learningRate: 1e-3, maxSteps: 4, batchPerDevice: 2, saveSteps: 0, maxNonFiniteSteps: 2 });
  const r = await runTraining(bundle.model, poisoned, config, { quiet: true });
  const metrics = readMetrics(path.join(out, 'metrics.jsonl'));
  t.same(metrics.map((m) => m.nonfinite_skipped), [0, 1, 0, 0], 'step 2 skipped, the others taken');
  t.same(metrics.map((m) => m.nonfinite_steps), [0, 1, 1, 1], 'the running count');
  t.equal(r.steps, 4, 'one skipped step is not K in a row: the run finishes');
  t.ok(fs.existsSync(path.join(out, 'adapter', 'adapter_model.safetensors')), 'and saves its adapter');
});

t.test('the CLI exits non-zero with [E_NONFINITE] on a diverging run', async (t) => {
  const data = await fixture;
  const out = path.join(tmp, 'cli');
  const r = spawnSync(
    CLI[0],
    [...CLI.slice(1), 'sft', '--model', model, '--data', data, '--out', out, '--lr', '1e30', '--max-grad-norm', '0', '--max-steps', '10', '--batch', '2', '--save-steps', '0', '--max-nonfinite-steps', '2', '--quiet'],
    { encoding: 'utf8', env: { ...process.env, HSCR_NUM_THREADS: '1' }, timeout: 120_000 },
  );
  t.equal(r.status, 1, 'exit code 1');
  t.match(r.stderr, /2 optimizer steps in a row .* non-finite .*\[E_NONFINITE\]/);
  t.notOk(fs.existsSync(path.join(out, 'model')), 'no model folder handed on');
});
