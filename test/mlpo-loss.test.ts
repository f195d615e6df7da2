/**
 * Issue 7, acceptance 1: mlpoLoss (the trainer's own C++ loss) and its gradients match a direct float64
 * autograd computation in Debian's python3-torch (test/reference/mlpo_ref.py) on random inputs with masks;
 * at θ = sft the loss is (j + j(j−1)/2)·log 2 per full sample.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors } from '../lib/model/safetensors';
import { randn, tensor } from '../lib/tensor';
import { mlpoLoss } from '../lib/train/mlpo';

const PYTHON = '/usr/bin/python3';
const REF = path.resolve(__dirname, 'reference', 'mlpo_ref.py');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-mlpo-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const B = 6;
const J = 4;
/** Valid rejected answers per sample: full, short, one, none (nothing to learn from), … */
const VALID = [4, 3, 1, 0, 2, 4];

function f64(seed: number, n: number, scale: number): Float64Array {
  return Float64Array.from(randn([n], { seed }).toArray() as Float32Array, (x) => -20 + scale * x);
}

const inputs = {
  policyChosen: f64(1, B, 5),
  policyRejected: f64(2, B * J, 5),
  referenceChosen: f64(3, B, 5),
  referenceRejected: f64(4, B * J, 5),
  mask: Uint8Array.from({ length: B * J }, (_, i) => (i % J < VALID[Math.floor(i / J)] ? 1 : 0)),
};

function tensors(x: typeof inputs) {
  return {
    policyChosen: tensor(x.policyChosen, [B]),
    policyRejected: tensor(x.policyRejected, [B, J]),
    referenceChosen: tensor(x.referenceChosen, [B]),
    referenceRejected: tensor(x.referenceRejected, [B, J]),
    mask: tensor(x.mask, [B, J], 'bool'),
  };
}

interface Options {
  gamma: number;
  lambdaExplicit: number;
  lambdaImplicit: number;
  pairWeighting: 'sum' | 'mean';
}

async function reference(name: string, o: Options) {
  const inFile = path.join(tmp, `in-${name}.safetensors`);
  const outFile = path.join(tmp, `out-${name}.safetensors`);
  await writeSafetensors(
    inFile,
    {
      policy_chosen: tensor(inputs.policyChosen, [B]),
      policy_rejected: tensor(inputs.policyRejected, [B, J]),
      ref_chosen: tensor(inputs.referenceChosen, [B]),
      ref_rejected: tensor(inputs.referenceRejected, [B, J]),
      mask: tensor(inputs.mask, [B, J], 'bool'),
    },
    { gamma: String(o.gamma), lambda_explicit: String(o.lambdaExplicit), lambda_implicit: String(o.lambdaImplicit), pair_weighting: o.pairWeighting },
  );
  execFileSync(PYTHON, [REF, inFile, outFile], { stdio: 'pipe' });
  const out = (await readSafetensors(outFile)).tensors;
  const scalar = (k: string) => (out[k].toArray() as Float64Array)[0];
  return {
    loss: scalar('loss'),
    explicit: scalar('loss_explicit'),
    implicit: scalar('loss_implicit'),
    accE: scalar('reward_acc_explicit'),
    accI: scalar('reward_acc_implicit'),
    gradChosen: out.grad_policy_chosen.toArray() as Float64Array,
    gradRejected: out.grad_policy_rejected.toArray() as Float64Array,
  };
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

const CASES: [string, Options][] = [
  ['paper (sum, λ 1/1)', { gamma: 0.1, lambdaExplicit: 1, lambdaImplicit: 1, pairWeighting: 'sum' }],
  ['mean pair weighting, γ 0.5', { gamma: 0.5, lambdaExplicit: 1, lambdaImplicit: 1, pairWeighting: 'mean' }],
  ['explicit only', { gamma: 0.1, lambdaExplicit: 1, lambdaImplicit: 0, pairWeighting: 'sum' }],
  ['implicit only, uneven λ', { gamma: 0.3, lambdaExplicit: 0, lambdaImplicit: 1.7, pairWeighting: 'sum' }],
];

for (const [name, o] of CASES) {
  t.test(`mlpoLoss = python3-torch float64 autograd: ${name}`, async (t) => {
    const ref = await reference(name.replace(/\W+/g, '-'), o);
    const r = await mlpoLoss(tensors(inputs), o);
    const gc = r.gradPolicyChosen.toArray() as Float64Array;
    const gr = r.gradPolicyRejected.toArray() as Float64Array;
    t.ok(Math.abs(r.loss - ref.loss) < 1e-6, `loss ${r.loss} vs ${ref.loss}`);
    t.ok(Math.abs(r.explicit - ref.explicit) < 1e-6, `explicit part ${r.explicit} vs ${ref.explicit}`);
    t.ok(Math.abs(r.implicit - ref.implicit) < 1e-6, `implicit part ${r.implicit} vs ${ref.implicit}`);
    t.ok(maxDiff(gc, ref.gradChosen) < 1e-6, `∂L/∂policy_chosen within 1e-6 (${maxDiff(gc, ref.gradChosen)})`);
    t.ok(maxDiff(gr, ref.gradRejected) < 1e-6, `∂L/∂policy_rejected within 1e-6 (${maxDiff(gr, ref.gradRejected)})`);
    t.equal(r.explicitAccuracy, ref.accE, 'explicit reward accuracy');
    t.equal(r.implicitAccuracy, ref.accI, 'implicit reward accuracy');
    for (let i = 0; i < B * J; i++) if (!inputs.mask[i]) t.equal(gr[i], 0, `masked entry ${i} gets no gradient`);
    t.ok(Math.abs(r.loss) > 0.1, 'a loss that is not trivially zero');
  });
}

t.test('at θ = sft (policy = reference) each sample costs (j + j(j−1)/2)·log 2', async (t) => {
  const same = { ...inputs, policyChosen: inputs.referenceChosen, policyRejected: inputs.referenceRejected };
  const r = await mlpoLoss(tensors(same), { gamma: 0.1 });
  const perSample = VALID.map((j) => (j + (j * (j - 1)) / 2) * Math.LN2);
  const expected = perSample.reduce((a, b) => a + b, 0) / B;
  t.ok(Math.abs(r.loss - expected) < 1e-12, `batch mean ${r.loss} = ${expected}`);
  t.equal(r.explicitAccuracy, 0, 'a zero margin is not a win');
  const full = await mlpoLoss(
    { ...tensors(same), mask: tensor(new Uint8Array(B * J).fill(1), [B, J], 'bool') },
    { gamma: 0.1 },
  );
  t.ok(Math.abs(full.loss - 10 * Math.LN2) < 1e-12, `j = 4 full lists: ${full.loss} = 10·log 2`);
  t.ok(Math.abs(full.explicit - 4 * Math.LN2) < 1e-12 && Math.abs(full.implicit - 6 * Math.LN2) < 1e-12, 'explicit 4·log 2, implicit 6·log 2');
});

t.test('bad inputs are typed errors', async (t) => {
  const x = tensors(inputs);
  await t.rejects(mlpoLoss({ ...x, referenceChosen: tensor(new Float64Array(B + 1), [B + 1]) }), { code: 'E_SHAPE' });
  await t.rejects(mlpoLoss(x, { gamma: 0 }), { code: 'E_ARG' });
  await t.rejects(mlpoLoss(x, { pairWeighting: 'max' as 'sum' }), { code: 'E_ARG' });
});
