/**
 * LoRA adapters in PEFT's format: adapter_config.json + adapter_model.safetensors with keys
 * "base_model.model.<module>.lora_{A,B}.weight", the module spelled as in the base checkpoint's layout
 * (LLaVA-Med: model.layers.0.self_attn.q_proj; transformers: language_model.model.layers.0.…). An adapter
 * saved from a model in one layout loads onto the same model loaded from the other, since both map onto
 * hscr's internal names. Also: the merged/full model folder a run hands on to the next stage.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HscrError } from '../errors';
import { readJsonObject, writeFileAtomic, writeModelConfig, type Architecture } from '../model/config';
import { detectLayout, fromInternalKey, toInternalKey, type CheckpointLayout } from '../model/keys';
import { safetensorsKeys } from '../model/safetensors';
import type { VisionLanguageModel } from '../model/vlm';
import type { LoraConfig } from './config';
import { trainAddon } from './native';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
const PEFT_PREFIX = 'base_model.model.';
const LORA_PARAM = /^(.+)\.lora_(A|B)\.weight$/;
/** PEFT writes no adapter name for the default adapter; older versions did (".default"). */
const PEFT_KEY = /^base_model\.model\.(.+)\.lora_(A|B)(?:\.default)?\.weight$/;

/** What an adapter folder says about itself. */
export interface AdapterInfo {
  lora: LoraConfig;
  /** Adapted modules, internal names. */
  modules: string[];
  baseModel: string | null;
}

function isLoraParameter(name: string): boolean {
  return LORA_PARAM.test(name);
}

/** The modules of `model` that carry adapters (internal names, registration order). */
export function adaptedModules(model: VisionLanguageModel): string[] {
  const out: string[] = [];
  for (const p of model.parameters()) {
    const m = LORA_PARAM.exec(p.name);
    if (m && m[2] === 'A') out.push(m[1]);
  }
  return out;
}

/** Adds fresh adapters (B = 0, so outputs are unchanged) and returns the adapted modules. */
export function addLoraAdapters(model: VisionLanguageModel, lora: LoraConfig, seed: number): string[] {
  return trainAddon().addLora(model.handle, { r: lora.r, alpha: lora.alpha, dropout: lora.dropout, targets: lora.targets, scope: lora.scope, seed });
}

function keyLayoutOf(architecture: Architecture): CheckpointLayout {
  return architecture === 'llava-med' ? 'llava-med' : 'hf-old';
}

/** "base_model.model.<module>.lora_A.weight" with the module spelled as the checkpoint layout spells it. */
export function peftKey(layout: CheckpointLayout, module: string, part: 'A' | 'B'): string {
  const spelled = fromInternalKey(layout, `${module}.weight`).slice(0, -'.weight'.length);
  return `${PEFT_PREFIX}${spelled}.lora_${part}.weight`;
}

/**
 * PEFT matches a string target_modules with re.fullmatch on module names: this one picks the targets
 * outside the vision tower (a plain list would also hit CLIP's q/k/v_proj).
 */
function peftTargetModules(lora: LoraConfig): string | string[] {
  if (lora.scope === 'all') return [...lora.targets];
  return `(?!.*vision_tower).*\\.(${lora.targets.join('|')})`;
}

function adapterConfigJson(lora: LoraConfig, baseModel: string | null): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: lora.alpha,
    lora_dropout: lora.dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r: lora.r,
    rank_pattern: {},
    revision: null,
    target_modules: peftTargetModules(lora),
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: false,
  };
}

/** hscr's extras, kept out of adapter_config.json so that file is exactly what PEFT writes and reads. */
export const ADAPTER_EXTRAS = 'hscr_adapter.json';

/**
 * What goes in base_model_name_or_path: the base model's own `_name_or_path` (a hub id such as
 * "microsoft/llava-med-v1.5-mistral-7b") when its config.json has one, else the base folder relative to the
 * adapter folder (never an absolute path of the machine that trained it).
 */
export function neutralBaseModel(adapterDir: string, baseModel: string | null): string | null {
  if (baseModel === null) return null;
  try {
    const cfg = JSON.parse(fs.readFileSync(path.join(baseModel, 'config.json'), 'utf8')) as { _name_or_path?: unknown };
    if (typeof cfg._name_or_path === 'string' && cfg._name_or_path !== '' && !path.isAbsolute(cfg._name_or_path)) return cfg._name_or_path;
  } catch {
    /* not a folder with a config: fall back to the relative path */
  }
  return path.relative(path.resolve(adapterDir), path.resolve(baseModel)) || '.';
}

function adapterExtrasJson(lora: LoraConfig, baseModel: string | null): Record<string, unknown> {
  return {
    // hscr's own reading of target_modules, so a reload needs no regex.
    scope: lora.scope,
    targets: lora.targets,
    // Where the base model was when the adapter was written (hscr resolves base_model_name_or_path against it).
    base_model_path: baseModel === null ? null : path.resolve(baseModel),
  };
}

/** Writes the adapters of `model` into `dir` (weights first, then the config that makes the folder an adapter). */
export async function saveAdapter(model: VisionLanguageModel, dir: string, lora: LoraConfig, baseModel: string | null = null): Promise<void> {
  const modules = adaptedModules(model);
  if (modules.length === 0) throw new HscrError('the model has no LoRA adapters to save', 'E_ARG');
  const layout = keyLayoutOf(model.config.architecture);
  const entries = modules.flatMap((m) => (['A', 'B'] as const).map((part) => ({ name: `${m}.lora_${part}.weight`, key: peftKey(layout, m, part) })));
  fs.mkdirSync(dir, { recursive: true });
  await model.handle.saveWeights(path.join(dir, ADAPTER_WEIGHTS), entries, { format: 'pt' });
  writeFileAtomic(path.join(dir, ADAPTER_EXTRAS), `${JSON.stringify(adapterExtrasJson(lora, baseModel), null, 2)}\n`);
  writeFileAtomic(path.join(dir, ADAPTER_CONFIG), `${JSON.stringify(adapterConfigJson(lora, neutralBaseModel(dir, baseModel)), null, 2)}\n`);
}

function checkpointError(file: string, what: string, value?: unknown): HscrError {
  return new HscrError(`${file}: ${what}`, 'E_CHECKPOINT', value);
}

function numberField(file: string, raw: Record<string, unknown>, key: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw checkpointError(file, `"${key}" must be a number`, raw[key]);
  return v;
}

/** Refuses PEFT features the native LoRA does not implement, rather than loading them wrongly. */
function checkSupported(file: string, raw: Record<string, unknown>): void {
  if (raw.peft_type !== undefined && raw.peft_type !== 'LORA') throw checkpointError(file, 'only LORA adapters are supported', raw.peft_type);
  for (const key of ['use_rslora', 'use_dora', 'fan_in_fan_out']) if (raw[key] === true) throw checkpointError(file, `"${key}": true is not supported`, raw[key]);
  for (const key of ['rank_pattern', 'alpha_pattern']) {
    const v = raw[key];
    if (v && typeof v === 'object' && Object.keys(v).length > 0) throw checkpointError(file, `per-module "${key}" is not supported`, v);
  }
  if (raw.modules_to_save !== undefined && raw.modules_to_save !== null && !(Array.isArray(raw.modules_to_save) && raw.modules_to_save.length === 0)) {
    throw checkpointError(file, '"modules_to_save" (fully trained extra modules) is not supported', raw.modules_to_save);
  }
  if (raw.bias !== undefined && raw.bias !== 'none') throw checkpointError(file, 'only bias "none" is supported', raw.bias);
}

interface AdapterTensors {
  /** internal module → its two keys */
  modules: Map<string, { A?: string; B?: string }>;
  file: string;
}

async function readAdapterTensors(file: string): Promise<AdapterTensors> {
  const header = await safetensorsKeys(file);
  const notFloat = header.find((e) => !['float32', 'float64', 'bfloat16', 'float16'].includes(e.dtype));
  if (notFloat) throw new HscrError(`${file}: tensor "${notFloat.name}" is stored as ${notFloat.dtype} but LoRA weights are floating point`, 'E_DTYPE', notFloat.name);
  const keys = header.map((e) => e.name);
  const parsed = keys.map((key) => {
    const m = PEFT_KEY.exec(key);
    if (!m) throw checkpointError(file, `"${key}" is not a PEFT LoRA key (base_model.model.<module>.lora_A|B.weight)`, key);
    return { key, module: m[1], part: m[2] as 'A' | 'B' };
  });
  if (parsed.length === 0) throw checkpointError(file, 'holds no tensors');
  const layout = detectLayout(parsed.map((p) => `${p.module}.weight`));
  const modules = new Map<string, { A?: string; B?: string }>();
  for (const p of parsed) {
    const internal = toInternalKey(layout, `${p.module}.weight`);
    if (internal === null) throw checkpointError(file, `"${p.key}" names no adaptable module`, p.key);
    const module = internal.slice(0, -'.weight'.length);
    const slot = modules.get(module) ?? {};
    if (slot[p.part]) throw checkpointError(file, `holds lora_${p.part} of ${module} twice`, p.key);
    slot[p.part] = p.key;
    modules.set(module, slot);
  }
  for (const [module, slot] of modules) if (!slot.A || !slot.B) throw checkpointError(file, `${module} has lora_A or lora_B missing`, module);
  return { modules, file };
}

/** Reads adapter_config.json: r, alpha, dropout and (hscr's fields, else the module names) targets and scope. */
export function readAdapterConfig(dir: string, modules: string[]): { lora: LoraConfig; baseModel: string | null } {
  const file = path.join(dir, ADAPTER_CONFIG);
  if (!fs.existsSync(file)) throw new HscrError(`${dir} is not an adapter folder (no ${ADAPTER_CONFIG})`, 'E_CHECKPOINT', dir);
  const raw = readJsonObject(file, 'E_CHECKPOINT');
  checkSupported(file, raw);
  const r = numberField(file, raw, 'r');
  const targets = [...new Set(modules.map((m) => m.slice(m.lastIndexOf('.') + 1)))];
  const scope = modules.every((m) => m.startsWith('language_model.')) ? 'language_model' : 'all';
  const lora: LoraConfig = { r, alpha: numberField(file, raw, 'lora_alpha', 8), dropout: numberField(file, raw, 'lora_dropout', 0), targets, scope };
  return { lora, baseModel: baseModelOf(dir, raw) };
}

/** The base model: hscr_adapter.json's path when there is one, else PEFT's base_model_name_or_path as written. */
function baseModelOf(dir: string, raw: Record<string, unknown>): string | null {
  try {
    const extras = JSON.parse(fs.readFileSync(path.join(dir, ADAPTER_EXTRAS), 'utf8')) as { base_model_path?: unknown };
    if (typeof extras.base_model_path === 'string') return extras.base_model_path;
  } catch {
    /* a PEFT folder from elsewhere has no extras */
  }
  return typeof raw.base_model_name_or_path === 'string' ? raw.base_model_name_or_path : null;
}

/**
 * Loads an adapter folder onto `model`: adds adapters of the folder's shape first when the model has none
 * (r, alpha, dropout from adapter_config.json), or loads into the ones it has when they cover the same
 * modules. E_CHECKPOINT when the folder does not fit the model.
 */
export async function loadAdapter(model: VisionLanguageModel, dir: string, options: { allowNonFinite?: boolean } = {}): Promise<AdapterInfo> {
  if (typeof dir !== 'string' || dir === '') throw new HscrError('adapter folder must be a non-empty string', 'E_ARG', dir);
  if (!fs.existsSync(path.join(dir, ADAPTER_CONFIG)) || !fs.existsSync(path.join(dir, ADAPTER_WEIGHTS))) {
    throw new HscrError(`${dir} is not an adapter folder (needs ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS})`, 'E_CHECKPOINT', dir);
  }
  const tensors = await readAdapterTensors(path.join(dir, ADAPTER_WEIGHTS));
  const wanted = [...tensors.modules.keys()];
  const { lora, baseModel } = readAdapterConfig(dir, wanted);
  let present = adaptedModules(model);
  if (present.length === 0) present = addLoraAdapters(model, lora, 0);
  const missing = wanted.filter((m) => !present.includes(m));
  const extra = present.filter((m) => !tensors.modules.has(m));
  if (missing.length || extra.length) {
    throw checkpointError(
      tensors.file,
      `the adapter covers other modules than the model's adapters (${missing.length} not in the model, e.g. ${missing[0] ?? '-'}; ${extra.length} not in the file, e.g. ${extra[0] ?? '-'})`,
      missing[0] ?? extra[0],
    );
  }
  const entries = wanted.flatMap((m) => {
    const slot = tensors.modules.get(m)!;
    return [
      { name: `${m}.lora_A.weight`, file: tensors.file, key: slot.A! },
      { name: `${m}.lora_B.weight`, file: tensors.file, key: slot.B! },
    ];
  });
  await model.handle.loadWeights(entries, { allowNonFinite: options.allowNonFinite === true });
  return { lora, modules: present, baseModel };
}

const MODEL_SIDE_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'preprocessor_config.json', 'generation_config.json'];

/**
 * A standalone model folder from `model`'s current weights (adapters merged in, then taken out again):
 * config.json and model.safetensors in the base layout, the tokenizer and preprocessor files copied from
 * `baseDir`. What `hscr train --model` takes as its SFT model.
 */
export async function saveModelFolder(model: VisionLanguageModel, baseDir: string, outDir: string): Promise<void> {
  const addon = trainAddon();
  const hasAdapters = adaptedModules(model).length > 0;
  const layout = model.config.architecture;
  const keyLayout = keyLayoutOf(layout);
  const entries = model
    .parameters()
    .filter((p) => !isLoraParameter(p.name))
    .map((p) => ({ name: p.name, key: fromInternalKey(keyLayout, p.name, model.config.projector.type) }));
  fs.mkdirSync(outDir, { recursive: true });
  if (hasAdapters) addon.mergeLora(model.handle, true);
  try {
    await model.handle.saveWeights(path.join(outDir, 'model.safetensors'), entries, { format: 'pt' });
  } finally {
    if (hasAdapters) addon.mergeLora(model.handle, false);
  }
  writeModelConfig(outDir, model.config, layout);
  for (const name of MODEL_SIDE_FILES) {
    const from = path.join(baseDir, name);
    if (fs.existsSync(from)) copyFileAtomic(from, path.join(outDir, name));
  }
}

function copyFileAtomic(from: string, to: string): void {
  const tmp = `${to}.tmp-${process.pid}`;
  try {
    fs.copyFileSync(from, tmp);
    fs.renameSync(tmp, to);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new HscrError(`${to}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'E_IO', to);
  }
}

/** loadAdapter without the report: the shape lib/model/predictor.ts's `loadAdapter` option takes. */
export async function applyAdapter(model: VisionLanguageModel, dir: string, options: { allowNonFinite?: boolean } = {}): Promise<void> {
  await loadAdapter(model, dir, options);
}
