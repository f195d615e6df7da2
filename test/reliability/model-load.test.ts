/**
 * Issue 13, failures 1, 3 (loading) and 8 (native/library parts): a model folder is checked against its
 * checkpoint headers before anything is allocated; a memory budget refuses what cannot fit; integer tensors
 * for float weights, NaN/Inf weights and NaN pixels are coded errors naming the tensor or image; float16 on
 * CPU is refused up front. Every case runs on a 60k-parameter model folder (test/helpers/train-fixture).
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { HscrError } from '../../lib/errors';
import { readModelConfig } from '../../lib/model/config';
import { fromInternalKey } from '../../lib/model/keys';
import { parameterCount } from '../../lib/model/presets';
import { readSafetensors, writeSafetensors } from '../../lib/model/safetensors';
import { VisionLanguageModel, memoryCheckDefault, type Batch } from '../../lib/model/vlm';
import { tensor, type Tensor } from '../../lib/tensor';
import { addLoraAdapters, loadAdapter, saveAdapter } from '../../lib/train/adapter';
import { resolveSftConfig } from '../../lib/train/config';
import { makeTinyModelDir } from '../helpers/train-fixture';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-rel-load-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const base = path.join(tmp, 'base');
const ready = makeTinyModelDir(base, 7);

/** A copy of the base folder whose config.json and/or weights a test then edits. */
async function copyOfBase(name: string): Promise<string> {
  await ready;
  const dir = path.join(tmp, name);
  fs.cpSync(base, dir, { recursive: true });
  return dir;
}

function editConfig(dir: string, edit: (c: Record<string, any>) => void): void {
  const file = path.join(dir, 'config.json');
  const c = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(c);
  fs.writeFileSync(file, JSON.stringify(c));
}

/** Rewrites a safetensors file with one tensor replaced (same name, header order kept). */
async function replaceTensor(file: string, key: string, make: (old: Tensor) => Tensor): Promise<void> {
  const f = await readSafetensors(file);
  const tensors: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(f.tensors)) tensors[k] = k === key ? make(v) : v;
  await writeSafetensors(file, tensors, f.metadata);
}

function withNaN(old: Tensor, at = 5, value = NaN): Tensor {
  const data = Float32Array.from(old.toArray() as Float32Array);
  data[at] = value;
  return tensor(data, old.shape);
}

function tinyBatch(cfg: { vision: { imageSize: number } }, imageToken: number, pixels?: Float32Array): Batch {
  const s = cfg.vision.imageSize;
  const px = pixels ?? new Float32Array(2 * 3 * s * s).map((_, i) => Math.sin(i));
  return {
    pixels: tensor(px, [2, 3, s, s]),
    rows: [
      { image: 0, prompt: [1, 5, imageToken, 6], answer: [7, 8, 2] },
      { image: 1, prompt: [1, imageToken, 9], answer: [10, 2] },
    ],
  };
}

t.test('failure 1: a config.json without text_config is refused from the checkpoint header, before the 7B default is allocated', async (t) => {
  const dir = await copyOfBase('no-text-config');
  editConfig(dir, (c) => delete c.text_config);
  const rss = process.memoryUsage().rss;
  const started = Date.now();
  const err = (await VisionLanguageModel.load(dir).then(
    () => null,
    (e) => e,
  )) as HscrError | null;
  t.ok(err, 'the load fails');
  t.equal(err?.code, 'E_CHECKPOINT');
  t.match(err?.message, /config\.json \(text hidden_size 4096, 32 layers, vocab 32000/, 'names config.json and the sizes it implied (transformers defaults)');
  t.match(err?.message, /embed_tokens\.weight" in .*model\.safetensors has shape \[\d+, 64\], the config implies \[32000, 4096\]/, 'names the tensor, its shape and the implied one');
  const grownMiB = (process.memoryUsage().rss - rss) / 2 ** 20;
  t.ok(grownMiB < 300, `memory grew ${grownMiB.toFixed(0)} MiB (the 7B model would need 26 GiB)`);
  t.ok(Date.now() - started < 10_000, 'refused within seconds');
});

t.test('failure 1: hidden_size 65536 in text_config is refused naming the key and both shapes', async (t) => {
  const dir = await copyOfBase('wide');
  editConfig(dir, (c) => {
    c.text_config.hidden_size = 65536;
  });
  const rss = process.memoryUsage().rss;
  await t.rejects(VisionLanguageModel.load(dir), { code: 'E_CHECKPOINT', message: /hidden_size 65536.*has shape \[\d+, 64\], the config implies \[\d+, 65536\]/ });
  t.ok(process.memoryUsage().rss - rss < 300 * 2 ** 20, 'nothing of the 65536-wide model was allocated');
});

t.test('failure 1: the memory budget (parameters × dtype bytes) is exact, overridable and refuses absurd configs', async (t) => {
  const dir = await copyOfBase('budget');
  const cfg = readModelConfig(dir);
  const bytes = parameterCount(cfg) * 4;
  const ok = await VisionLanguageModel.create(cfg, { maxMemoryBytes: bytes });
  t.equal(ok.parameters().reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0) * 4, bytes, 'the budget counts exactly the bytes of the weights');
  ok.dispose();
  await t.rejects(VisionLanguageModel.create(cfg, { maxMemoryBytes: bytes - 1 }), {
    code: 'E_CONFIG',
    message: new RegExp(`model of ${parameterCount(cfg)} parameters: .* of float32 weights, more than the .* of maxMemoryBytes`),
  }, 'one byte short is refused');
  const bf16 = await VisionLanguageModel.create(cfg, { maxMemoryBytes: bytes / 2, dtype: 'bfloat16' });
  t.equal(bf16.handle.dtype, 'bfloat16', 'bfloat16 weights need half the bytes');
  bf16.dispose();
  const forced = await VisionLanguageModel.create(cfg, { maxMemoryBytes: 1, memoryCheck: false });
  t.ok(forced, 'memoryCheck: false overrides the budget');
  forced.dispose();
  // 65536-wide text model: ~600 G parameters; refused against the memory this machine has.
  const huge = { ...cfg, text: { ...cfg.text, hiddenSize: 65536, intermediateSize: 4 * 65536, numHeads: 64, numKvHeads: 64, headDim: 1024, numLayers: 32 } };
  await t.rejects(VisionLanguageModel.create(huge), { code: 'E_CONFIG', message: /available memory \(MemAvailable \/ cgroup limit\)/ });
  const overflow = { ...cfg, text: { ...cfg.text, vocabSize: 2 ** 52, hiddenSize: 2 ** 40 } };
  await t.rejects(VisionLanguageModel.create(overflow, { memoryCheck: false }), { code: 'E_CONFIG', message: /63 bits/ }, 'sizes whose product overflows');
  t.equal(memoryCheckDefault({ HSCR_MEMORY_CHECK: '0' }), false, 'HSCR_MEMORY_CHECK=0 turns it off for the CLI');
  t.equal(memoryCheckDefault({}), true);
});

t.test('failure 8: an I32 tensor declared for a float weight is an E_DTYPE naming it (TS plan and native load)', async (t) => {
  const dir = await copyOfBase('int-weight');
  const file = path.join(dir, 'model.safetensors');
  const name = 'language_model.model.layers.0.self_attn.q_proj.weight';
  const key = fromInternalKey('hf-old', name);
  await replaceTensor(file, key, (old) => old.to('int32'));
  await t.rejects(VisionLanguageModel.load(dir), { code: 'E_DTYPE', message: new RegExp(`"${key.replace(/\./g, '\\.')}" is stored as int32 .* floating-point weight`) });
  // The native loader checks on its own too (a caller that skips the TS plan).
  const model = await VisionLanguageModel.create(readModelConfig(dir));
  await t.rejects(model.handle.loadWeights([{ name, file, key }]), { code: 'E_DTYPE', message: /is stored as I32/ });
  model.dispose();
});

t.test('failure 3: a checkpoint with NaN planted in it is refused naming the tensor, unless allowed; NaN weights are never written', async (t) => {
  const dir = await copyOfBase('nan-weight');
  const file = path.join(dir, 'model.safetensors');
  const key = Object.keys((await readSafetensors(file)).tensors).find((k) => k.endsWith('mlp.down_proj.weight'))!;
  await replaceTensor(file, key, (old) => withNaN(old, 5));
  await t.rejects(VisionLanguageModel.load(dir), { code: 'E_CHECKPOINT', message: new RegExp(`${key.replace(/\./g, '\\.')} holds 1 non-finite value of \\d+ \\(first at flat index 5: nan\\).*allowNonFinite`) });
  await replaceTensor(file, key, (old) => withNaN(withNaN(old, 5, 1), 7, -Infinity));
  await t.rejects(VisionLanguageModel.load(dir), { code: 'E_CHECKPOINT', message: /first at flat index 7: -inf/ }, '-Inf too');

  const model = await VisionLanguageModel.load(dir, { allowNonFinite: true });
  t.pass('allowNonFinite loads it');
  const out = path.join(tmp, 'nan-saved');
  await t.rejects(model.save(out), { code: 'E_NONFINITE', message: /refusing to write .*model\.safetensors: parameter .*down_proj\.weight holds 1 non-finite/ });
  t.notOk(fs.existsSync(path.join(out, 'model.safetensors')), 'no weights file written');
  t.notOk(fs.existsSync(path.join(out, 'config.json')), 'nor its config');
  model.dispose();
});

t.test('failure 3: a refused checkpoint leaves the loaded weights untouched', async (t) => {
  const good = await copyOfBase('untouched');
  const bad = await copyOfBase('untouched-bad');
  const file = path.join(bad, 'model.safetensors');
  const keys = Object.keys((await readSafetensors(file)).tensors);
  await replaceTensor(file, keys[keys.length - 1], (old) => withNaN(old, 0));
  const model = await VisionLanguageModel.load(good);
  const batch = tinyBatch(model.config, model.config.imageTokenIndex);
  const before = await model.logprobs(batch);
  const entries = model.parameters().map((p) => ({ name: p.name, file, key: fromInternalKey('hf-old', p.name, model.config.projector.type) }));
  await t.rejects(VisionLanguageModel.load(bad), { code: 'E_CHECKPOINT' });
  await t.rejects(model.handle.loadWeights(entries), { code: 'E_CHECKPOINT' });
  const after = await model.logprobs(batch);
  t.same(Array.from(after.logprobs), Array.from(before.logprobs), 'log-probs identical: nothing was half-loaded');
  batch.pixels.dispose();
  model.dispose();
});

t.test('failure 3: an adapter with NaN is refused naming the tensor; an integer adapter is an E_DTYPE', async (t) => {
  const dir = await copyOfBase('adapter-base');
  const model = await VisionLanguageModel.load(dir);
  const lora = resolveSftConfig({ modelDir: dir, outputDir: tmp }).lora;
  addLoraAdapters(model, lora, 3);
  const adapterDir = path.join(tmp, 'adapter');
  await saveAdapter(model, adapterDir, lora);
  model.dispose();
  const file = path.join(adapterDir, 'adapter_model.safetensors');
  const key = Object.keys((await readSafetensors(file)).tensors).find((k) => k.endsWith('lora_A.weight'))!;
  await replaceTensor(file, key, (old) => withNaN(old, 3, Infinity));
  const fresh = await VisionLanguageModel.load(dir);
  await t.rejects(loadAdapter(fresh, adapterDir), { code: 'E_CHECKPOINT', message: new RegExp(`${key.replace(/\./g, '\\.')} holds 1 non-finite value .*: inf`) });
  fresh.dispose();
  const allowed = await VisionLanguageModel.load(dir);
  await loadAdapter(allowed, adapterDir, { allowNonFinite: true });
  t.pass('allowNonFinite loads it');
  allowed.dispose();
  await replaceTensor(file, key, (old) => old.to('int32'));
  const again = await VisionLanguageModel.load(dir);
  await t.rejects(loadAdapter(again, adapterDir), { code: 'E_DTYPE', message: /stored as int32 but LoRA weights are floating point/ });
  again.dispose();
});

t.test('failure 8: NaN pixels, pixels of the wrong size and float16 on CPU are coded errors, not null log-probs', async (t) => {
  const dir = await copyOfBase('pixels');
  const model = await VisionLanguageModel.load(dir);
  const s = model.config.vision.imageSize;
  const px = new Float32Array(2 * 3 * s * s).fill(0.1);
  px[3 * s * s + 17] = NaN;
  const nanBatch = tinyBatch(model.config, model.config.imageTokenIndex, px);
  await t.rejects(model.logprobs(nanBatch), { code: 'E_DATA', message: /batch\.pixels holds 1 non-finite value .*in image 1/ });
  await t.rejects(model.generate(nanBatch, { maxNewTokens: 2 }), { code: 'E_DATA' });
  const wrong: Batch = { pixels: tensor(new Float32Array(3 * 8 * 8), [1, 3, 8, 8]), rows: [{ image: 0, prompt: [1, model.config.imageTokenIndex], answer: [2] }] };
  await t.rejects(model.logprobs(wrong), { code: 'E_SHAPE', message: new RegExp(`\\[images, 3, ${s}, ${s}\\]`) });
  const tooLong = tinyBatch(model.config, model.config.imageTokenIndex);
  await t.rejects(model.generate(tooLong, { maxNewTokens: 2 ** 40 }), { code: 'E_ARG', message: /exceed the model's context/ }, 'a maxNewTokens past the context');
  model.dispose();
  await t.rejects(VisionLanguageModel.load(dir, { dtype: 'float16' }), { code: 'E_DTYPE', message: /float16 needs a CUDA device/ });
  const bf16 = await VisionLanguageModel.load(dir, { dtype: 'bfloat16' });
  const r = await bf16.logprobs(tooLong);
  t.ok(r.logprobs.every(Number.isFinite), 'bfloat16 runs on CPU, so it stays allowed');
  bf16.dispose();
});
