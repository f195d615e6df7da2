import t from 'tap';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { execFileSync } from 'child_process';
import { VisionLanguageModel, keptVisualTokens, type Batch } from '../lib/model/vlm';
import { readSafetensors, writeSafetensors } from '../lib/model/safetensors';
import { tensor } from '../lib/tensor';
import { IMAGE, tinyBatch, tinyConfig } from './helpers/tiny-model';

const PYTHON = '/usr/bin/python3';
const REF = path.resolve(__dirname, 'reference', 'llava_ref.py');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-forward-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The reference's input: input_ids = prompt + answer, labels on the answer, right padding. */
async function referenceLogprobs(modelDir: string, batch: Batch, visualKeep?: number[][], nVisual = 16): Promise<Float32Array[]> {
  const pixels = batch.pixels.toArray() as Float32Array;
  const per = 3 * 32 * 32;
  const T = Math.max(...batch.rows.map((r) => r.prompt.length + (r.answer?.length ?? 0)));
  const B = batch.rows.length;
  const ids = new BigInt64Array(B * T), mask = new BigInt64Array(B * T), labels = new BigInt64Array(B * T).fill(-100n);
  const px = new Float32Array(B * per);
  batch.rows.forEach((r, b) => {
    const seq = [...r.prompt, ...(r.answer ?? [])];
    seq.forEach((id, i) => {
      ids[b * T + i] = BigInt(id);
      mask[b * T + i] = 1n;
      if (i >= r.prompt.length) labels[b * T + i] = BigInt(id);
    });
    px.set(pixels.subarray(r.image * per, (r.image + 1) * per), b * per);
  });
  const inputs: Record<string, ReturnType<typeof tensor>> = {
    pixel_values: tensor(px, [B, 3, 32, 32]),
    input_ids: tensor(ids, [B, T]),
    attention_mask: tensor(mask, [B, T]),
    labels: tensor(labels, [B, T]),
  };
  if (visualKeep) {
    const keep = new Uint8Array(B * nVisual);
    visualKeep.forEach((k, b) => k.forEach((i) => (keep[b * nVisual + i] = 1)));
    inputs.visual_keep = tensor(keep, [B, nVisual], 'bool');
  }
  const inFile = path.join(tmp, `in-${Date.now()}.safetensors`), outFile = inFile.replace('in-', 'out-');
  await writeSafetensors(inFile, inputs);
  execFileSync(PYTHON, [REF, inFile, outFile, modelDir], { stdio: 'pipe' });
  const out = await readSafetensors(outFile);
  const lp = out.tensors.target_logprobs.toArray() as Float32Array;
  const counts = Array.from(out.tensors.target_count.toArray() as BigInt64Array, Number);
  const M = out.tensors.target_logprobs.shape[1];
  return counts.map((c, b) => lp.slice(b * M, b * M + c));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return a.length === b.length ? m : Infinity;
}

t.test('save → reload gives bit-identical log-probs, in both checkpoint layouts', async (t) => {
  const model = await VisionLanguageModel.create(tinyConfig(), { seed: 3 });
  const batch = tinyBatch();
  const before = await model.logprobs(batch);
  t.same(before.counts, [4, 7, 2]);
  t.ok(before.logprobs.every((x) => x < 0 && Number.isFinite(x)));
  for (const layout of ['llava-hf', 'llava-med'] as const) {
    const dir = path.join(tmp, `save-${layout}`);
    await model.save(dir, layout);
    const keys = Object.keys((await readSafetensors(path.join(dir, 'model.safetensors'))).tensors);
    t.ok(keys.some((k) => (layout === 'llava-med' ? k.startsWith('model.layers.') : k.startsWith('language_model.model.layers.'))), `${layout} key names`);
    const again = await VisionLanguageModel.load(dir);
    const after = await again.logprobs(batch);
    t.same(Array.from(after.logprobs), Array.from(before.logprobs), `${layout}: bit-identical`);
    again.dispose();
  }
  model.dispose();
});

t.test('log-probs agree with the independent Python implementation (fp32, 1e-4)', async (t) => {
  for (const [name, cfg] of [
    ['GQA + sliding window + untied head', tinyConfig()],
    ['MHA, tied embeddings, wide window, cls_patch, linear projector', { ...tinyConfig({ numKvHeads: 4, tieWordEmbeddings: true, slidingWindow: 4096 }), selectFeature: 'cls_patch' as const, projector: { type: 'linear' as const } }],
  ] as const) {
    const model = await VisionLanguageModel.create(cfg, { seed: 5 });
    const dir = path.join(tmp, `ref-${name.length}`);
    // transformers' Llava has no linear projector: that case goes through the LLaVA-Med layout.
    await model.save(dir, cfg.projector.type === 'linear' ? 'llava-med' : 'llava-hf');
    const batch = tinyBatch();
    const ours = await model.logprobs(batch);
    const theirs = await referenceLogprobs(dir, batch);
    const flat = Float32Array.from(theirs.flatMap((x) => Array.from(x)));
    const diff = maxAbsDiff(ours.logprobs, flat);
    t.ok(diff < 1e-4, `${name}: max |Δ| = ${diff.toExponential(2)}`);

    // HSCR's view i′: 70% of the visual tokens dropped after the projector.
    const n = cfg.selectFeature === 'cls_patch' ? 17 : 16;
    const seed = 9;
    const dropped = await model.logprobs(batch, { perturb: 'token', ratio: 0.7, seed });
    const keep = batch.rows.map((r) => keptVisualTokens(n, 0.7, seed + r.image));
    const ref = await referenceLogprobs(dir, batch, keep, n);
    const d2 = maxAbsDiff(dropped.logprobs, Float32Array.from(ref.flatMap((x) => Array.from(x))));
    t.ok(d2 < 1e-4, `${name}, token dropout: max |Δ| = ${d2.toExponential(2)}`);
    t.not(dropped.sums[0], ours.sums[0], 'dropping visual tokens changes the answer log-prob');
    model.dispose();
  }
});

t.test('token dropout keeps round((1 − r)·N) tokens, the same ones for the same seed', async (t) => {
  for (const [n, r] of [[576, 0.7], [16, 0.7], [64, 0.5], [10, 0.25], [7, 0.9]] as const) {
    const k = keptVisualTokens(n, r, 42);
    t.equal(k.length, Math.round((1 - r) * n), `N=${n}, r=${r}`);
    t.same(keptVisualTokens(n, r, 42), k, 'same seed, same tokens');
    t.ok(k.every((x, i) => x >= 0 && x < n && (i === 0 || x > k[i - 1])), 'sorted, distinct, in range');
  }
  t.notSame(keptVisualTokens(576, 0.7, 1), keptVisualTokens(576, 0.7, 2), 'another seed, other tokens');
  t.throws(() => keptVisualTokens(10, 1.5, 1), { code: 'E_ARG' });

  const model = await VisionLanguageModel.create(tinyConfig(), { seed: 3 });
  const batch = tinyBatch();
  const a = await model.logprobs(batch, { perturb: 'token', ratio: 0.7, seed: 4 });
  const b = await model.logprobs(batch, { perturb: 'token', ratio: 0.7, seed: 4 });
  const c = await model.logprobs(batch, { perturb: 'token', ratio: 0.7, seed: 5 });
  t.same(Array.from(a.logprobs), Array.from(b.logprobs));
  t.notSame(Array.from(a.logprobs), Array.from(c.logprobs));
  for (const kind of ['pixel', 'patch', 'latent'] as const) {
    const x = await model.logprobs(batch, { perturb: kind, ratio: 0.5, seed: 4 });
    const y = await model.logprobs(batch, { perturb: kind, ratio: 0.5, seed: 4 });
    const clean = await model.logprobs(batch);
    t.same(Array.from(x.logprobs), Array.from(y.logprobs), `${kind}: seeded`);
    t.ok(maxAbsDiff(x.logprobs, clean.logprobs) > 1e-6, `${kind}: changes the output`);
  }
  // Per-row views in one batch: the perturbed row equals the same row perturbed alone.
  const mixed = await model.logprobs({ pixels: batch.pixels, rows: [{ ...batch.rows[0], perturb: false }, { ...batch.rows[0], perturb: true }] }, { perturb: 'token', ratio: 0.7, seed: 4 });
  const alone = await model.logprobs({ pixels: batch.pixels, rows: [batch.rows[0]] }, { perturb: 'token', ratio: 0.7, seed: 4 });
  const clean = await model.logprobs({ pixels: batch.pixels, rows: [batch.rows[0]] });
  t.ok(Math.abs(mixed.sums[1] - alone.sums[0]) < 1e-5 && Math.abs(mixed.sums[0] - clean.sums[0]) < 1e-5, 'both views in one batch');
  model.dispose();
});

t.test('KV-cache generation equals step-by-step full re-computation (greedy)', async (t) => {
  const model = await VisionLanguageModel.create(tinyConfig({ slidingWindow: 9 }), { seed: 8 });
  const batch = tinyBatch();
  const rows = batch.rows.map((r) => ({ ...r, answer: [] }));
  const cached = await model.generate({ pixels: batch.pixels, rows }, { maxNewTokens: 24 });
  const full = await model.generate({ pixels: batch.pixels, rows }, { maxNewTokens: 24, useCache: false });
  t.same(cached, full);
  t.ok(cached.tokens.some((x) => x.length >= 10), 'long enough to pass the sliding window');
  const sampled = await model.generate({ pixels: batch.pixels, rows }, { maxNewTokens: 8, temperature: 1, topP: 0.9, seed: 3 });
  const again = await model.generate({ pixels: batch.pixels, rows }, { maxNewTokens: 8, temperature: 1, topP: 0.9, seed: 3 });
  t.same(sampled, again, 'sampling is seeded');
  t.notSame(sampled.tokens, cached.tokens, 'sampling differs from greedy');
  model.dispose();
});

t.test('bad batches are HscrErrors, not crashes', async (t) => {
  const model = await VisionLanguageModel.create(tinyConfig(), { seed: 1 });
  const { pixels } = tinyBatch();
  await t.rejects(model.logprobs({ pixels, rows: [{ image: 0, prompt: [1, 2, 3], answer: [4] }] }), { code: 'E_ARG' }, 'no image token');
  await t.rejects(model.logprobs({ pixels, rows: [{ image: 5, prompt: [1, IMAGE], answer: [4] }] }), { code: 'E_ARG' }, 'image index');
  await t.rejects(model.logprobs({ pixels, rows: [{ image: 0, prompt: [1, IMAGE], answer: [999] }] }), { code: 'E_ARG' }, 'token id');
  await t.rejects(model.logprobs({ pixels: tensor(new Float32Array(3 * 16 * 16), [1, 3, 16, 16]), rows: [{ image: 0, prompt: [1, IMAGE], answer: [4] }] }), { code: 'E_SHAPE' });
  await t.rejects(model.logprobs({ pixels, rows: [] }), { code: 'E_ARG' });
  await t.rejects(model.logprobs({ pixels, rows: [{ image: 0, prompt: [1, IMAGE], answer: [4] }] }, { perturb: 'blur' as never }), { code: 'E_ARG' });
  await t.rejects(model.generate({ pixels, rows: [{ image: 0, prompt: [1, IMAGE] }] }, { topP: 0 }), { code: 'E_ARG' });
  model.dispose();
  await t.rejects(model.logprobs({ pixels, rows: [{ image: 0, prompt: [1, IMAGE], answer: [4] }] }), { code: 'E_DISPOSED' });
});
