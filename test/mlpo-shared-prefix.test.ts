/**
 * Issue 11: the MLPO step's shared-prefix path (image + prompt through the decoder once per sample, the
 * answers over its cached keys/values) computes what the full-sequence path computes: the same sequence
 * log-probs, loss and LoRA gradients (through the prefix), on ragged prompts and answers, groups of
 * different sizes, a one-token answer and a sliding window shorter than the sequences.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors } from '../lib/model/safetensors';
import { VisionLanguageModel, type Batch } from '../lib/model/vlm';
import type { Tensor } from '../lib/native';
import { randn } from '../lib/tensor';
import { addLoraAdapters, ADAPTER_WEIGHTS, loadAdapter, saveAdapter } from '../lib/train/adapter';
import { DEFAULT_LORA_TARGETS } from '../lib/train/config';
import { trainAddon } from '../lib/train/native';
import { IMAGE, tinyConfig } from './helpers/tiny-model';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-shared-prefix-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const train = trainAddon();
const LORA = { r: 4, alpha: 8, dropout: 0, targets: [...DEFAULT_LORA_TARGETS], scope: 'language_model' as const };

// Sample 0: chosen + 3 rejected (one of a single token); sample 1 (another image, a shorter prompt): chosen + 1.
const batch: Batch = {
  pixels: randn([2, 3, 32, 32], { seed: 3 }),
  rows: [
    { image: 0, prompt: [1, 5, 6, IMAGE, 7, 8, 9], answer: [10, 11, 12, 2] },
    { image: 0, prompt: [1, 5, 6, IMAGE, 7, 8, 9], answer: [10, 30, 12, 13, 14, 2] },
    { image: 0, prompt: [1, 5, 6, IMAGE, 7, 8, 9], answer: [40] },
    { image: 0, prompt: [1, 5, 6, IMAGE, 7, 8, 9], answer: [41, 42, 2] },
    { image: 1, prompt: [1, IMAGE, 13], answer: [14, 15, 16, 17, 18, 19, 2] },
    { image: 1, prompt: [1, IMAGE, 13], answer: [14, 15, 50, 2] },
  ],
};
const groups = [3, 1];

async function adaptedModel(adapterDir: string): Promise<VisionLanguageModel> {
  const model = await VisionLanguageModel.create(tinyConfig(), { seed: 5 });
  await loadAdapter(model, adapterDir);
  train.setTrainable(model.handle, 'lora');
  return model;
}

async function loraValues(model: VisionLanguageModel, dir: string): Promise<Map<string, Float32Array>> {
  await saveAdapter(model, dir, LORA);
  const f = await readSafetensors(path.join(dir, ADAPTER_WEIGHTS));
  return new Map(Object.entries(f.tensors).map(([k, v]) => [k, v.toArray() as Float32Array]));
}

t.test('shared prefix = full sequences: log-probs, loss and LoRA gradients', async (t) => {
  // An adapter with B ≠ 0, so the policy differs from the reference and LoRA acts on the prefix.
  const seedModel = await VisionLanguageModel.create(tinyConfig(), { seed: 5 });
  addLoraAdapters(seedModel, LORA, 0);
  const adapterDir = path.join(tmp, 'adapter');
  await saveAdapter(seedModel, adapterDir, LORA);
  seedModel.dispose();
  const file = path.join(adapterDir, ADAPTER_WEIGHTS);
  const f = await readSafetensors(file);
  const tensors: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(f.tensors)) tensors[k] = k.includes('lora_B') ? randn(v.shape, { seed: k.length }) : v;
  await writeSafetensors(file, tensors, f.metadata);

  const shared = await adaptedModel(adapterDir);
  const full = await adaptedModel(adapterDir);
  t.teardown(() => {
    shared.dispose();
    full.dispose();
  });
  t.ok(tinyConfig().text.slidingWindow! < 16 + 6, 'the sliding window is shorter than the sequences');
  const reference = Float64Array.from(batch.rows.map((_, i) => -20 - i));
  const spec = (sharedPrefix: boolean) => ({
    loss: 'mlpo' as const, scale: 0.5, groups, referenceLogps: reference, gamma: 0.1, lambdaExplicit: 1, lambdaImplicit: 1, pairWeighting: 'sum' as const, sharedPrefix,
  });
  const a = await train.forwardBackward(shared.handle, batch, spec(true));
  const b = await train.forwardBackward(full.handle, batch, spec(false));
  const plain = (await full.logprobs(batch)).sums;
  t.equal(a.tokens, b.tokens, 'same number of answer tokens');
  for (let i = 0; i < batch.rows.length; i++) {
    t.ok(Math.abs(a.sequenceLogps[i] - b.sequenceLogps[i]) < 1e-4, `row ${i}: log p ${a.sequenceLogps[i]} vs ${b.sequenceLogps[i]}`);
    t.ok(Math.abs(a.sequenceLogps[i] - plain[i]) < 1e-4, `row ${i}: and model.logprobs ${plain[i]}`);
  }
  t.ok(Math.abs(a.lossSum - b.lossSum) < 1e-5, `loss ${a.lossSum} vs ${b.lossSum}`);
  t.ok(a.lossSum > 0.1 && Math.abs(a.explicitMarginSum) > 1e-3, 'the loss is not the trivial θ = reference value');

  // One AdamW step with eps = 1 and lr = 1: Δp = g / (|g| + 1) to first order, i.e. the gradient itself.
  const before = await loraValues(shared, path.join(tmp, 'before'));
  const opt = (m: VisionLanguageModel) => train.Optimizer.create(m.handle, { beta1: 0, beta2: 0, eps: 1, weightDecay: 0 });
  const ga = await opt(shared).step({ lr: 1, maxGradNorm: 0 });
  const gb = await opt(full).step({ lr: 1, maxGradNorm: 0 });
  t.ok(ga.gradNorm > 1e-3, `a gradient reaches the adapters (|g| = ${ga.gradNorm})`);
  t.ok(Math.abs(ga.gradNorm - gb.gradNorm) <= 1e-4 * gb.gradNorm, `gradient norm ${ga.gradNorm} vs ${gb.gradNorm}`);
  const afterA = await loraValues(shared, path.join(tmp, 'a'));
  const afterB = await loraValues(full, path.join(tmp, 'b'));
  let worst = 0, moved = 0;
  for (const [k, va] of afterA) {
    const vb = afterB.get(k)!, v0 = before.get(k)!;
    for (let i = 0; i < va.length; i++) {
      worst = Math.max(worst, Math.abs(va[i] - v0[i] - (vb[i] - v0[i])));
      moved = Math.max(moved, Math.abs(va[i] - v0[i]));
    }
  }
  t.ok(moved > 1e-3, `the step moves the adapters (max ${moved})`);
  // fp32 sums in another order: agreement to 1e-4 of the largest step (B ~ N(0, 1) makes activations large).
  t.ok(worst < 1e-4 * moved, `per-parameter gradient steps agree (max difference ${worst})`);
});
