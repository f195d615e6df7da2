/**
 * The fused model path: both views of every row in one forward pass, the kernel applied natively. Checked
 * against two separate model.logprobs calls (full view, perturbed view) and against the standalone kernel
 * applied to the logits the fused path saw (returned only under debugLogits).
 */
import t from 'tap';
import { VisionLanguageModel } from '../lib/model/vlm';
import { contrastiveScores, modelContrastive, type ContrastiveBatch, type ModelContrastiveRow } from '../lib/generate/contrastive';
import { tensor } from '../lib/tensor';
import { tinyBatch, tinyConfig } from './helpers/tiny-model';

const OPTS = { beta: 0.9, n: 3, alpha: 0.1, candidates: 4, ratio: 0.7, seed: 5 };

function logSoftmaxAt(logits: Float32Array, V: number, row: number, token: number): number {
  const x = logits.subarray(row * V, (row + 1) * V);
  const max = Math.max(...x);
  let sum = 0;
  for (const v of x) sum += Math.exp(v - max);
  return x[token] - max - Math.log(sum);
}

function perRow(flat: Float32Array, counts: number[]): number[][] {
  let off = 0;
  return counts.map((c) => Array.from(flat.subarray(off, (off += c))));
}

async function setup() {
  const model = await VisionLanguageModel.create(tinyConfig(), { seed: 3 });
  const batch = tinyBatch() as ContrastiveBatch;
  return { model, batch };
}

t.test('shifts and target scores equal two separate model.logprobs passes and the debug logits', async (t) => {
  const { model, batch } = await setup();
  t.teardown(() => model.dispose());
  const V = model.config.text.vocabSize;
  for (const perturb of ['token', 'patch'] as const) {
    const rows = await modelContrastive(model, batch, { ...OPTS, perturb, debugLogits: true });
    const full = await model.logprobs(batch);
    const drop = await model.logprobs(batch, { perturb, ratio: OPTS.ratio, seed: OPTS.seed });
    const lpFull = perRow(full.logprobs, full.counts);
    const lpDrop = perRow(drop.logprobs, drop.counts);
    rows.forEach((row, b) => {
      const answer = Array.from(batch.rows[b].answer);
      const lf = row.logitsFull!.toArray() as Float32Array;
      const ld = row.logitsDrop!.toArray() as Float32Array;
      t.same(row.logitsFull!.shape, [answer.length, V], `${perturb} row ${b}: one logit row per answer token`);
      answer.forEach((y, i) => {
        t.ok(Math.abs(logSoftmaxAt(lf, V, i, y) - lpFull[b][i]) < 1e-4, `${perturb} row ${b} token ${i}: full view = model.logprobs`);
        t.ok(Math.abs(logSoftmaxAt(ld, V, i, y) - lpDrop[b][i]) < 1e-4, `${perturb} row ${b} token ${i}: dropped view = perturbed model.logprobs`);
        t.ok(Math.abs(row.tokenShifts[i] - (lpFull[b][i] - lpDrop[b][i])) < 1e-4, `${perturb} row ${b} token ${i}: shift`);
        const expected = (1 + OPTS.beta) * lf[i * V + y] - OPTS.beta * ld[i * V + y];
        t.ok(Math.abs(row.targetContrastive[i] - expected) < 1e-5, `${perturb} row ${b} token ${i}: target contrastive`);
      });
      t.notOk(lpFull[b].every((x, i) => Math.abs(x - lpDrop[b][i]) < 1e-6), `${perturb} row ${b}: the two views differ`);
    });
  }
});

/** The fused rows' debug logits stacked into [B, T, V] (padding rows have no target), through the standalone op. */
async function standalone(rows: ModelContrastiveRow[], batch: ContrastiveBatch, eligible: number[][]) {
  const V = rows[0].logitsFull!.shape[1];
  const T = Math.max(...batch.rows.map((r) => r.answer.length));
  const B = rows.length;
  const full = new Float32Array(B * T * V), drop = new Float32Array(B * T * V);
  const targets = new BigInt64Array(B * T).fill(-1n), flags = new Uint8Array(B * T);
  rows.forEach((row, b) => {
    full.set(row.logitsFull!.toArray() as Float32Array, b * T * V);
    drop.set(row.logitsDrop!.toArray() as Float32Array, b * T * V);
    Array.from(batch.rows[b].answer).forEach((y, i) => {
      targets[b * T + i] = BigInt(y);
      flags[b * T + i] = eligible[b][i];
    });
  });
  return contrastiveScores(tensor(full, [B, T, V]), tensor(drop, [B, T, V]), tensor(targets, [B, T]), tensor(flags, [B, T], 'bool'), OPTS);
}

t.test('the fused results equal the standalone kernel on the same logits; eligible masks are honoured', async (t) => {
  const { model, batch } = await setup();
  t.teardown(() => model.dispose());
  const eos = model.config.text.eosTokenId;
  const defaults = batch.rows.map((r) => Array.from(r.answer, (y) => (y === eos || y === model.config.text.bosTokenId ? 0 : 1)));
  const fused = await modelContrastive(model, batch, { ...OPTS, debugLogits: true });
  const alone = await standalone(fused, batch, defaults);
  fused.forEach((row, b) => {
    t.same(row.positions, alone[b].positions, `row ${b}: positions`);
    t.same(row.candidates, alone[b].candidates, `row ${b}: candidates`);
    t.ok(row.scores.flat().every((s, i) => Math.abs(s - alone[b].scores.flat()[i]) < 1e-5), `row ${b}: scores`);
    const last = batch.rows[b].answer.length - 1;
    t.notOk(row.positions.includes(last), `row ${b}: the final EOS is never sensitive by default`);
    t.ok(row.positions.length === Math.min(OPTS.n, last), `row ${b}: n positions, or every eligible one`);
  });

  const only = [[0, 1, 0, 0], [1, 0, 0, 0, 0, 1, 0], [1, 0]];
  const masked = await modelContrastive(model, { ...batch, rows: batch.rows.map((r, b) => ({ ...r, eligible: only[b] })) }, OPTS);
  masked.forEach((row, b) => t.same([...row.positions].sort(), only[b].flatMap((f, i) => (f ? [i] : [])), `row ${b}: exactly the eligible positions`));
  t.ok(fused.every((row) => row.logitsFull !== undefined) && masked.every((row) => row.logitsFull === undefined), 'logits only on request');
});

t.test("views 'split' (one decoder batch per view) gives the joint batch's results", async (t) => {
  const { model, batch } = await setup();
  t.teardown(() => model.dispose());
  for (const perturb of ['token', 'latent'] as const) {
    const joint = await modelContrastive(model, batch, { ...OPTS, perturb });
    const split = await modelContrastive(model, batch, { ...OPTS, perturb, views: 'split' });
    split.forEach((row, b) => {
      t.same(row.positions, joint[b].positions, `${perturb} row ${b}: positions`);
      t.same(row.candidates, joint[b].candidates, `${perturb} row ${b}: candidates`);
      t.ok(row.tokenShifts.every((x, i) => Math.abs(x - joint[b].tokenShifts[i]) < 1e-4), `${perturb} row ${b}: shifts`);
    });
  }
  await t.rejects(modelContrastive(model, batch, { ...OPTS, views: 'both' as 'split' }), { code: 'E_ARG' });
});

t.test('bad options and masks are typed errors', async (t) => {
  const { model, batch } = await setup();
  t.teardown(() => model.dispose());
  const rows = batch.rows.map((r, b) => (b === 1 ? { ...r, eligible: [1, 0] } : r));
  await t.rejects(modelContrastive(model, { ...batch, rows }, OPTS), { code: 'E_ARG', message: /rows\[1\]\.eligible has 2 entries for 7/ });
  const twos = batch.rows.map((r) => ({ ...r, eligible: Array.from(r.answer, () => 2) }));
  await t.rejects(modelContrastive(model, { ...batch, rows: twos }, OPTS), { code: 'E_ARG', value: '2' });
  await t.rejects(modelContrastive(model, batch, { ...OPTS, perturb: 'none' as 'token' }), { code: 'E_ARG' });
  await t.rejects(modelContrastive(model, batch, { ...OPTS, ratio: 1.5 }), { code: 'E_ARG' });
  model.dispose();
  await t.rejects(modelContrastive(model, batch, OPTS), { code: 'E_DISPOSED' });
});
