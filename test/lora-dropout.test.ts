/**
 * Issue 11: LoRA dropout in the fused fp32 CPU path (native/fused.cpp dropoutDown, merged q/k/v and gate/up):
 * one mask per adapter on the input of A, drawn from a generator seeded by torch's manual seed, kept values
 * scaled by 1/(1 − p). Checked through the training step: the seed reproduces the step, another seed changes it,
 * train mode differs from eval mode, and with p → 1 every adapter's input is dropped, so the step's loss is
 * the base model's (adapters off).
 */
import t from 'tap';
import { VisionLanguageModel } from '../lib/model/vlm';
import { trainAddon } from '../lib/train/native';
import { tinyBatch, tinyConfig } from './helpers/tiny-model';

const train = trainAddon();
const batch = tinyBatch();

async function modelWithDropout(dropout: number): Promise<VisionLanguageModel> {
  const model = await VisionLanguageModel.create(tinyConfig(), { seed: 3 });
  train.addLora(model.handle, { r: 4, alpha: 8, dropout, seed: 1 });
  train.setTrainable(model.handle, 'lora');
  return model;
}

const sft = { loss: 'sft' as const, scale: 1 };
const loss = async (m: VisionLanguageModel) => (await train.forwardBackward(m.handle, batch, sft)).lossSum;

async function randomiseB(m: VisionLanguageModel): Promise<void> {
  // B = 0 at init would make the adapters' output zero whatever the mask. One sign-SGD AdamW step with a large rate moves B away from zero (A's gradient is 0 while B = 0).
  train.setTraining(m.handle, false);
  const opt = train.Optimizer.create(m.handle, { beta1: 0, beta2: 0, eps: 1e-8, weightDecay: 0 });
  await train.forwardBackward(m.handle, batch, sft);
  await opt.step({ lr: 0.05, maxGradNorm: 0 });
}

t.test('dropout follows the manual seed; train differs from eval', async (t) => {
  const m = await modelWithDropout(0.5);
  t.teardown(() => m.dispose());
  await randomiseB(m);
  const evalLoss = await loss(m);
  train.setTraining(m.handle, true);
  train.manualSeed(7);
  const a = await loss(m);
  train.manualSeed(7);
  const b = await loss(m);
  train.manualSeed(8);
  const c = await loss(m);
  t.equal(a, b, `same seed, same step (${a})`);
  t.not(a, c, `another seed, another mask (${a} vs ${c})`);
  t.not(a, evalLoss, `train mode applies dropout (${a} vs eval ${evalLoss})`);
});

t.test('p → 1 drops every adapter input: the loss is the base model’s', async (t) => {
  const m = await modelWithDropout(1 - 1e-12);
  t.teardown(() => m.dispose());
  await randomiseB(m);
  const adapted = await loss(m);
  train.setLoraEnabled(m.handle, false); // nothing trains then: the base loss from plain log-probs
  const base = -(await m.logprobs(batch)).sums.reduce((s, x) => s + x, 0);
  train.setLoraEnabled(m.handle, true);
  t.ok(Math.abs(adapted - base) > 1e-4, `the adapters change the model in eval mode (${adapted} vs base ${base})`);
  train.setTraining(m.handle, true);
  train.manualSeed(1);
  const dropped = await loss(m);
  t.ok(Math.abs(dropped - base) < 1e-5, `train mode with p → 1: ${dropped} vs base ${base}`);
});
