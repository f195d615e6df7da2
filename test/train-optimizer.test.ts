/**
 * Issue 4, acceptance 2: hscr's AdamW (native) driven by lib/train/schedule.ts matches torch.optim.AdamW with
 * the HF schedule (test/reference/adamw_ref.py on Debian's python3-torch) within 1e-6 over 20 steps on the
 * same gradients — with warm-up, clipping and decoupled weight decay, for all three schedules.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors } from '../lib/model/safetensors';
import { randn, tensor } from '../lib/tensor';
import { trainAddon } from '../lib/train/native';
import { learningRateAt, lrFactor, termWeightAt, warmupStepsFor, type LrSchedule } from '../lib/train/schedule';
import type { LrScheduleKind } from '../lib/train/config';

const PYTHON = '/usr/bin/python3';
const REF = path.resolve(__dirname, 'reference', 'adamw_ref.py');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-adamw-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const STEPS = 20;
const P = 37;

interface Case {
  schedule: LrScheduleKind;
  lr: number;
  warmup: number;
  weightDecay: number;
  maxGradNorm: number;
}

async function reference(c: Case, param0: Float32Array, grads: Float32Array) {
  const inFile = path.join(tmp, `in-${c.schedule}.safetensors`);
  const outFile = path.join(tmp, `out-${c.schedule}.safetensors`);
  const meta = {
    lr: String(c.lr),
    beta1: '0.9',
    beta2: '0.999',
    eps: '1e-8',
    weight_decay: String(c.weightDecay),
    warmup_steps: String(c.warmup),
    total_steps: String(STEPS),
    schedule: c.schedule,
    max_grad_norm: String(c.maxGradNorm),
  };
  await writeSafetensors(inFile, { param0: tensor(param0, [P]), grads: tensor(grads, [STEPS, P]) }, meta);
  execFileSync(PYTHON, [REF, inFile, outFile], { stdio: 'pipe' });
  const out = await readSafetensors(outFile);
  return {
    params: out.tensors.params.toArray() as Float32Array,
    lrs: out.tensors.lrs.toArray() as Float64Array,
    norms: out.tensors.grad_norms.toArray() as Float32Array,
  };
}

const CASES: Case[] = [
  { schedule: 'cosine', lr: 1e-2, warmup: 3, weightDecay: 0.1, maxGradNorm: 1 },
  { schedule: 'linear', lr: 5e-3, warmup: 2, weightDecay: 0, maxGradNorm: 0.5 },
  { schedule: 'constant', lr: 2e-3, warmup: 0, weightDecay: 0.01, maxGradNorm: 0 },
];

for (const c of CASES) {
  t.test(`AdamW + ${c.schedule} schedule match torch.optim.AdamW over ${STEPS} steps`, async (t) => {
    const param0 = randn([P], { seed: 3 }).toArray() as Float32Array;
    // Gradients of varied size, so clipping is active on some steps and not on others.
    const grads = randn([STEPS, P], { seed: 4 }).toArray() as Float32Array;
    for (let s = 0; s < STEPS; s++) for (let i = 0; i < P; i++) grads[s * P + i] *= 0.05 + 0.1 * s;
    const ref = await reference(c, param0, grads);

    // Two tensors so the clip's norm is the global norm over parameters, as for a model.
    const a = tensor(param0.slice(0, 12), [3, 4]);
    const b = tensor(param0.slice(12), [P - 12]);
    const opt = trainAddon().Optimizer.create([a, b], { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: c.weightDecay });
    const schedule: LrSchedule = { kind: c.schedule, lr: c.lr, warmupSteps: c.warmup, totalSteps: STEPS };
    let worstParam = 0;
    let worstNorm = 0;
    let worstLr = 0;
    let moved = 0;
    for (let s = 0; s < STEPS; s++) {
      const g = grads.subarray(s * P, (s + 1) * P);
      const lr = learningRateAt(s, schedule);
      const r = await opt.step({ lr, maxGradNorm: c.maxGradNorm, grads: [tensor(g.slice(0, 12), [3, 4]), tensor(g.slice(12), [P - 12])] });
      t.equal(r.step, s + 1);
      worstLr = Math.max(worstLr, Math.abs(lr - ref.lrs[s]));
      worstNorm = Math.max(worstNorm, Math.abs(r.gradNorm - ref.norms[s]) / Math.max(1, ref.norms[s]));
      const now = [...(a.toArray() as Float32Array), ...(b.toArray() as Float32Array)];
      for (let i = 0; i < P; i++) {
        worstParam = Math.max(worstParam, Math.abs(now[i] - ref.params[s * P + i]));
        moved = Math.max(moved, Math.abs(now[i] - param0[i]));
      }
    }
    t.ok(worstLr < 1e-15, `learning rates equal (max diff ${worstLr})`);
    t.ok(worstNorm < 1e-6, `pre-clip grad norms within 1e-6 (max rel diff ${worstNorm})`);
    t.ok(worstParam < 1e-6, `parameters within 1e-6 at every step (max diff ${worstParam})`);
    t.ok(moved > 1e-3, `the parameters really moved (${moved})`);
    t.equal(opt.stepCount, STEPS);
  });
}

t.test('schedule: HF warm-up (first step lr 0), cosine to 0, ceil warm-up ratio', async (t) => {
  const s = { kind: 'cosine' as const, warmupSteps: 4, totalSteps: 20 };
  t.equal(lrFactor(0, s), 0);
  t.equal(lrFactor(2, s), 0.5);
  t.equal(lrFactor(4, s), 1);
  t.ok(Math.abs(lrFactor(12, s) - 0.5) < 1e-15, 'half-way through the decay');
  t.equal(lrFactor(20, s), 0);
  t.equal(lrFactor(10, { ...s, kind: 'linear' }), 10 / 16);
  t.equal(warmupStepsFor(100, 0.03), 3);
  t.equal(warmupStepsFor(10, 0.03), 1, 'HF rounds the warm-up up');
  t.equal(warmupStepsFor(10, 0.03, 0), 0, 'explicit steps win');
  t.throws(() => lrFactor(-1, s), { code: 'E_ARG' });
});

t.test('term weights: constant, or a linear warm-in over n steps', async (t) => {
  t.equal(termWeightAt(7, 0.5, { kind: 'constant' }), 0.5);
  t.equal(termWeightAt(0, 1, { kind: 'linear-warmin', steps: 4 }), 0.25);
  t.equal(termWeightAt(3, 1, { kind: 'linear-warmin', steps: 4 }), 1);
  t.equal(termWeightAt(50, 2, { kind: 'linear-warmin', steps: 4 }), 2);
});
