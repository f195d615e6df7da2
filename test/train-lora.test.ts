/**
 * Issue 4, acceptance 1: LoRA leaves the base model's output exactly unchanged at init; after training,
 * merged and unmerged models give the same log-probs within 1e-5; adapters off = the base model (the
 * reference policy, no second copy); a saved PEFT adapter reloads to identical outputs, from and onto
 * either checkpoint layout; a merged model folder reproduces the adapter model.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { batchOf, disposeBundle, loadModelBundle, type ModelBundle } from '../lib/model/bundle';
import { safetensorsKeys } from '../lib/model/safetensors';
import { VisionLanguageModel, type Batch } from '../lib/model/vlm';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, addLoraAdapters, adaptedModules, loadAdapter, saveAdapter, saveModelFolder } from '../lib/train/adapter';
import { resolveSftConfig } from '../lib/train/config';
import { runTraining } from '../lib/train/loop';
import { trainAddon } from '../lib/train/native';
import { createSftTask, encodeSftExamples } from '../lib/train/sft';
import { makePhantomData, makeTinyModelDir } from './helpers/train-fixture';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-lora-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const addon = trainAddon();

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

async function logprobs(model: VisionLanguageModel, batch: Batch): Promise<Float32Array> {
  addon.setTraining(model.handle, false);
  return (await model.logprobs(batch)).logprobs;
}

const LORA = { r: 4, alpha: 8, dropout: 0.1, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], scope: 'language_model' as const };

let bundle: ModelBundle;
let batch: Batch;
let base: Float32Array;
const hfDir = path.join(tmp, 'model-hf');
const medDir = path.join(tmp, 'model-med');

t.before(async () => {
  await makeTinyModelDir(hfDir, 1, 'llava-hf');
  const { file, records } = await makePhantomData(path.join(tmp, 'data'), 12);
  bundle = await loadModelBundle(hfDir);
  // The same weights in LLaVA-Med's layout (model.layers.*, model.mm_projector.*).
  await bundle.model.save(medDir, 'llava-med');
  batch = await batchOf(bundle, records.slice(0, 4));
  base = await logprobs(bundle.model, batch);
  const modules = addLoraAdapters(bundle.model, LORA, 7);
  t.equal(modules.length, 2 * 7, 'q,k,v,o,gate,up,down in both decoder layers');
  t.same(await logprobs(bundle.model, batch), base, 'at init (B = 0) the output equals the base model’s exactly');
  const examples = encodeSftExamples(bundle, records, file);
  const config = resolveSftConfig({ modelDir: hfDir, outputDir: path.join(tmp, 'run'), learningRate: 5e-2, maxSteps: 4, batchPerDevice: 6, saveSteps: 0, lora: LORA, warmupRatio: 0 });
  await runTraining(bundle.model, createSftTask(bundle, examples, 'fixture'), config, { quiet: true });
});
t.teardown(() => disposeBundle(bundle));

t.test('after training: adapters off = base exactly; merged = unmerged within 1e-5', async (t) => {
  const trained = await logprobs(bundle.model, batch);
  t.ok(maxDiff(trained, base) > 1e-2, `training changed the output (${maxDiff(trained, base)})`);
  addon.setLoraEnabled(bundle.model.handle, false);
  t.same(await logprobs(bundle.model, batch), base, 'adapters disabled: exactly the base (reference) model');
  addon.setLoraEnabled(bundle.model.handle, true);
  t.same(await logprobs(bundle.model, batch), trained, 'adapters on again: the trained model');

  // On a copy: W + s·BA − s·BA is the base weight only to rounding, and later tests compare bit for bit.
  const dir = path.join(tmp, 'adapter-for-merge');
  await saveAdapter(bundle.model, dir, LORA, hfDir);
  const copy = await VisionLanguageModel.load(hfDir);
  await loadAdapter(copy, dir);
  addon.mergeLora(copy.handle, true);
  const merged = await logprobs(copy, batch);
  addon.mergeLora(copy.handle, false);
  t.ok(maxDiff(merged, trained) < 1e-5, `merged vs unmerged: ${maxDiff(merged, trained)}`);
  t.ok(maxDiff(await logprobs(copy, batch), trained) < 1e-5, `unmerged again: ${maxDiff(await logprobs(copy, batch), trained)}`);
  copy.dispose();
});

t.test('a saved PEFT adapter reloads to identical outputs, onto either layout', async (t) => {
  const trained = await logprobs(bundle.model, batch);
  const dir = path.join(tmp, 'adapter-hf');
  await saveAdapter(bundle.model, dir, LORA, hfDir);
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, ADAPTER_CONFIG), 'utf8'));
  t.match(cfg, { peft_type: 'LORA', r: 4, lora_alpha: 8, lora_dropout: 0.1, task_type: 'CAUSAL_LM', bias: 'none' });
  t.equal(cfg.target_modules, '(?!.*vision_tower).*\\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)', 'a PEFT regex that spares the vision tower');
  t.same(Object.keys(cfg).filter((k) => k.startsWith('hscr')), [], 'PEFT-clean: no hscr keys in adapter_config.json');
  t.notOk(path.isAbsolute(cfg.base_model_name_or_path), `base_model_name_or_path is not a machine path: ${cfg.base_model_name_or_path}`);
  t.equal(path.resolve(dir, cfg.base_model_name_or_path), path.resolve(hfDir), 'relative to the adapter folder');
  const extras = JSON.parse(fs.readFileSync(path.join(dir, 'hscr_adapter.json'), 'utf8'));
  t.same(extras, { scope: LORA.scope, targets: LORA.targets, base_model_path: path.resolve(hfDir) });
  const keys = (await safetensorsKeys(path.join(dir, ADAPTER_WEIGHTS))).map((k) => k.name);
  t.ok(keys.includes('base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_A.weight'), 'transformers spelling');
  t.ok(keys.includes('base_model.model.language_model.model.layers.1.mlp.down_proj.lora_B.weight'));
  t.equal(keys.length, 28);

  for (const dirOf of [hfDir, medDir]) {
    const fresh = await VisionLanguageModel.load(dirOf);
    await loadAdapter(fresh, dir);
    t.same(await logprobs(fresh, batch), trained, `identical after reload onto the ${path.basename(dirOf)} checkpoint`);
    fresh.dispose();
  }

  // Saved from the LLaVA-Med-layout model: LLaVA-Med's spelling, loadable back onto the transformers one.
  const med = await VisionLanguageModel.load(medDir);
  await loadAdapter(med, dir);
  const medAdapter = path.join(tmp, 'adapter-med');
  await saveAdapter(med, medAdapter, LORA, medDir);
  med.dispose();
  const medKeys = (await safetensorsKeys(path.join(medAdapter, ADAPTER_WEIGHTS))).map((k) => k.name);
  t.ok(medKeys.includes('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'), 'LLaVA-Med spelling');
  const hf = await VisionLanguageModel.load(hfDir);
  await loadAdapter(hf, medAdapter);
  t.same(await logprobs(hf, batch), trained, 'LLaVA-Med adapter onto the transformers-layout model');
  hf.dispose();
});

t.test('a merged model folder reproduces the adapter model', async (t) => {
  const trained = await logprobs(bundle.model, batch);
  const out = path.join(tmp, 'merged');
  await saveModelFolder(bundle.model, hfDir, out);
  t.equal(adaptedModules(bundle.model).length, 14, 'the live model keeps its adapters');
  t.ok(fs.existsSync(path.join(out, 'tokenizer.json')) && fs.existsSync(path.join(out, 'preprocessor_config.json')), 'tokenizer and preprocessor copied');
  const merged = await loadModelBundle(out);
  t.ok(maxDiff(await logprobs(merged.model, batch), trained) < 1e-5, 'within 1e-5');
  disposeBundle(merged);
  t.ok(maxDiff(await logprobs(bundle.model, batch), trained) < 1e-5, 'the live model is unmerged again');
});

t.test('adapters that do not fit are E_CHECKPOINT, and the model is left as it was', async (t) => {
  const good = path.join(tmp, 'adapter-hf');
  const copy = (name: string, edit: (cfg: Record<string, unknown>) => void) => {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(path.join(good, ADAPTER_WEIGHTS), path.join(dir, ADAPTER_WEIGHTS));
    const cfg = JSON.parse(fs.readFileSync(path.join(good, ADAPTER_CONFIG), 'utf8'));
    edit(cfg);
    fs.writeFileSync(path.join(dir, ADAPTER_CONFIG), JSON.stringify(cfg));
    return dir;
  };
  const model = await VisionLanguageModel.load(hfDir);
  await t.rejects(loadAdapter(model, copy('rslora', (c) => (c.use_rslora = true))), { code: 'E_CHECKPOINT' });
  await t.rejects(loadAdapter(model, copy('pattern', (c) => (c.rank_pattern = { q_proj: 8 }))), { code: 'E_CHECKPOINT' });
  await t.rejects(loadAdapter(model, path.join(tmp, 'data')), { code: 'E_CHECKPOINT' });
  t.equal(adaptedModules(model).length, 0, 'nothing was added by the refused loads');
  addLoraAdapters(model, { ...LORA, targets: ['q_proj'] }, 1);
  await t.rejects(loadAdapter(model, good), { code: 'E_CHECKPOINT', message: /other modules/ });
  model.dispose();
});
