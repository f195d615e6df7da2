/**
 * config.json for the two checkpoint layouts users have, normalised into one ModelConfig:
 * (a) transformers' LlavaForConditionalGeneration (nested vision_config / text_config) and
 * (b) LLaVA-Med 1.5's LlavaMistralForCausalLM (flat Mistral keys + mm_* keys, CLIP config beside it).
 * Missing keys take the defaults transformers would give them, so a config that loads in transformers
 * loads here with the same numbers.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HscrError } from '../errors';

export type Architecture = 'llava-hf' | 'llava-med';
export type TemplateName = 'mistral_instruct' | 'vicuna_v1';
export type ProjectorType = 'mlp2x_gelu' | 'linear';
export type SelectFeature = 'patch' | 'cls_patch';
export type VisionAct = 'quick_gelu' | 'gelu';

export interface VisionConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  imageSize: number;
  patchSize: number;
  numChannels: number;
  layerNormEps: number;
  hiddenAct: VisionAct;
}

export interface TextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  slidingWindow: number | null;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  bosTokenId: number;
  eosTokenId: number;
  /** null when config.json has none (Mistral/Llama ship without one); batching then pads with the tokenizer's padId. */
  padTokenId: number | null;
}

export interface ModelConfig {
  architecture: Architecture;
  vision: VisionConfig;
  projector: { type: ProjectorType };
  text: TextConfig;
  /** Index into the vision tower's hidden states (0 = embeddings, -1 = last layer); LLaVA uses -2. */
  selectLayer: number;
  selectFeature: SelectFeature;
  /** The id spliced into prompts where <image> stands; replaced by the projected visual tokens. */
  imageTokenIndex: number;
  template: TemplateName;
}

export interface ReadModelConfigOptions {
  /** LLaVA-Med layout only: the CLIP folder, when it is not <dir>/<basename of mm_vision_tower> or <dir>/vision_tower. */
  visionTowerDir?: string;
}

/** LLaVA's IMAGE_TOKEN_INDEX (llava/constants.py): a placeholder outside every vocabulary. */
export const LLAVA_IMAGE_TOKEN_INDEX = -200;

type Json = Record<string, unknown>;
type TextFamily = 'mistral' | 'llama';

// transformers' CLIPVisionConfig defaults.
const CLIP_VISION_DEFAULTS: Json = {
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  image_size: 224,
  patch_size: 32,
  num_channels: 3,
  layer_norm_eps: 1e-5,
  hidden_act: 'quick_gelu',
};
// LlavaConfig builds CLIP ViT-L/14-336 when vision_config is absent.
const LLAVA_DEFAULT_VISION: Json = {
  ...CLIP_VISION_DEFAULTS,
  hidden_size: 1024,
  intermediate_size: 4096,
  num_hidden_layers: 24,
  num_attention_heads: 16,
  image_size: 336,
  patch_size: 14,
};
// LlamaConfig / MistralConfig defaults (head_dim and num_key_value_heads derived when null).
const TEXT_DEFAULTS: Record<TextFamily, Json> = {
  llama: {
    vocab_size: 32000,
    hidden_size: 4096,
    intermediate_size: 11008,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: null,
    head_dim: null,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: false,
    max_position_embeddings: 2048,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: null,
  },
  mistral: {
    vocab_size: 32000,
    hidden_size: 4096,
    intermediate_size: 14336,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: null,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    sliding_window: 4096,
    tie_word_embeddings: false,
    max_position_embeddings: 4096 * 32,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: null,
  },
};
const TEXT_FAMILY: Record<string, TextFamily> = {
  llama: 'llama',
  mistral: 'mistral',
  llava: 'llama',
  llava_llama: 'llama',
  llava_mistral: 'mistral',
};

export function configError(file: string, field: string, what: string, value?: unknown): HscrError {
  return new HscrError(`${file}: field "${field}" ${what}`, 'E_CONFIG', value);
}

/** Typed reads of one JSON object; every complaint names the file and the dotted field. */
class Fields {
  constructor(
    readonly file: string,
    readonly raw: Json,
    readonly prefix: string,
    readonly defaults: Json = {},
  ) {}

  where(key: string): string {
    return this.prefix + key;
  }

  fail(key: string, what: string, value?: unknown): HscrError {
    return configError(this.file, this.where(key), what, value);
  }

  /** The value as written (null included: an explicit null is transformers' None), else the default. */
  get(key: string): unknown {
    const v = this.raw[key];
    return v === undefined ? this.defaults[key] : v;
  }

  /** Like get(), but a null in the file also falls back to the default (for keys where None means "default"). */
  value(key: string): unknown {
    const v = this.raw[key];
    return v === undefined || v === null ? this.defaults[key] : v;
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  int(key: string, min = 1): number {
    const v = this.value(key);
    if (v === undefined || v === null) throw this.fail(key, 'is missing');
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      throw this.fail(key, `must be an integer ≥ ${min}`, v);
    }
    return v;
  }

  /** An integer that may be negative (selected layers, token ids). */
  anyInt(key: string): number {
    return this.int(key, Number.MIN_SAFE_INTEGER);
  }

  nullableInt(key: string, min: number): number | null {
    const v = this.get(key);
    return v === undefined || v === null ? null : this.int(key, min);
  }

  positive(key: string): number {
    const v = this.value(key);
    if (v === undefined || v === null) throw this.fail(key, 'is missing');
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw this.fail(key, 'must be a positive number', v);
    return v;
  }

  bool(key: string): boolean {
    const v = this.value(key);
    if (typeof v !== 'boolean') throw this.fail(key, v === undefined ? 'is missing' : 'must be true or false', v);
    return v;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    const v = this.value(key);
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      throw this.fail(key, v === undefined ? 'is missing' : `must be one of ${allowed.map((a) => `"${a}"`).join(', ')}`, v);
    }
    return v as T;
  }

  object(key: string): Json | undefined {
    const v = this.raw[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) throw this.fail(key, 'must be a JSON object', v);
    return v as Json;
  }

  child(key: string, defaults: Json): Fields {
    return new Fields(this.file, this.object(key) ?? {}, `${this.where(key)}.`, defaults);
  }

  /** A field hscr cannot honour: it must be absent or hold the one value hscr implements. */
  requireAbsentOr(key: string, accepted: unknown, why: string): void {
    const v = this.raw[key];
    if (v === undefined || v === null || v === accepted) return;
    throw this.fail(key, why, v);
  }
}

export function readJsonObject(file: string, errorCode: 'E_CONFIG' | 'E_CHECKPOINT' = 'E_CONFIG'): Json {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new HscrError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'E_IO', file);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new HscrError(`${file}: not valid JSON (${(e as Error).message})`, errorCode, file);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HscrError(`${file}: must hold a JSON object`, errorCode, value);
  }
  return value as Json;
}

// ---- reading ------------------------------------------------------------------------------------

function detectArchitecture(raw: Json, file: string): Architecture {
  const archs = Array.isArray(raw.architectures) ? raw.architectures.filter((a): a is string => typeof a === 'string') : [];
  if (archs.includes('LlavaForConditionalGeneration') || raw.text_config !== undefined) return 'llava-hf';
  if (archs.some((a) => /^Llava(Mistral|Llama)ForCausalLM$/.test(a)) || raw.mm_vision_tower !== undefined) return 'llava-med';
  if (raw.hidden_size !== undefined) return 'llava-med';
  if (raw.model_type === 'llava') return 'llava-hf';
  throw configError(
    file,
    'architectures',
    'names neither LlavaForConditionalGeneration (transformers) nor LlavaMistralForCausalLM / LlavaLlamaForCausalLM (LLaVA-Med), and the keys do not tell',
    raw.architectures,
  );
}

function parseVision(f: Fields): VisionConfig {
  const modelType = f.get('model_type');
  if (modelType !== undefined && modelType !== 'clip_vision_model' && modelType !== 'clip') {
    throw f.fail('model_type', 'must be "clip_vision_model" (only CLIP vision towers are implemented)', modelType);
  }
  const vision: VisionConfig = {
    hiddenSize: f.int('hidden_size'),
    intermediateSize: f.int('intermediate_size'),
    numLayers: f.int('num_hidden_layers'),
    numHeads: f.int('num_attention_heads'),
    imageSize: f.int('image_size'),
    patchSize: f.int('patch_size'),
    numChannels: f.int('num_channels'),
    layerNormEps: f.positive('layer_norm_eps'),
    hiddenAct: f.oneOf('hidden_act', ['quick_gelu', 'gelu'] as const),
  };
  if (vision.hiddenSize % vision.numHeads !== 0) {
    throw f.fail('num_attention_heads', `must divide hidden_size ${vision.hiddenSize}`, vision.numHeads);
  }
  if (vision.imageSize % vision.patchSize !== 0) {
    throw f.fail('patch_size', `must divide image_size ${vision.imageSize}`, vision.patchSize);
  }
  return vision;
}

function textFamily(f: Fields, key: string, fallback: string): TextFamily {
  const modelType = f.has(key) ? f.get(key) : fallback;
  const family = typeof modelType === 'string' ? TEXT_FAMILY[modelType] : undefined;
  if (!family) {
    throw f.fail(key, `must name a Llama or Mistral text model (${Object.keys(TEXT_FAMILY).join(', ')})`, modelType);
  }
  return family;
}

/** eos_token_id may be a list in newer configs; the first entry is the one generation stops on by default. */
function tokenId(f: Fields, key: string): number {
  const v = f.get(key);
  if (Array.isArray(v) && v.length > 0) return new Fields(f.file, { [key]: v[0] }, f.prefix).int(key, 0);
  return f.int(key, 0);
}

function parseText(f: Fields, family: TextFamily, tieFallback: boolean): TextConfig {
  f.requireAbsentOr('hidden_act', 'silu', 'must be "silu" (the only Llama/Mistral MLP activation implemented)');
  f.requireAbsentOr('rope_scaling', undefined, 'is not supported (plain RoPE only): remove it or use an unscaled checkpoint');
  f.requireAbsentOr('attention_bias', false, 'must be false: attention projections without bias are implemented');
  f.requireAbsentOr('mlp_bias', false, 'must be false: MLP projections without bias are implemented');
  const hiddenSize = f.int('hidden_size');
  const numHeads = f.int('num_attention_heads');
  const kv = f.get('num_key_value_heads');
  const numKvHeads = kv === undefined || kv === null ? numHeads : f.int('num_key_value_heads');
  if (numHeads % numKvHeads !== 0) {
    throw f.fail('num_key_value_heads', `must divide num_attention_heads ${numHeads}`, numKvHeads);
  }
  const hd = f.get('head_dim');
  const headDim = hd === undefined || hd === null ? hiddenSize / numHeads : f.int('head_dim');
  if (!Number.isInteger(headDim)) throw f.fail('num_attention_heads', `must divide hidden_size ${hiddenSize} when head_dim is not given`, numHeads);
  const tie = f.has('tie_word_embeddings') ? f.bool('tie_word_embeddings') : tieFallback;
  return {
    vocabSize: f.int('vocab_size'),
    hiddenSize,
    intermediateSize: f.int('intermediate_size'),
    numLayers: f.int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: f.positive('rms_norm_eps'),
    ropeTheta: f.positive('rope_theta'),
    // LlamaConfig has no sliding window: transformers ignores the key there, and so does hscr.
    slidingWindow: family === 'mistral' ? f.nullableInt('sliding_window', 1) : null,
    tieWordEmbeddings: tie,
    maxPositionEmbeddings: f.int('max_position_embeddings'),
    bosTokenId: tokenId(f, 'bos_token_id'),
    eosTokenId: tokenId(f, 'eos_token_id'),
    padTokenId: f.nullableInt('pad_token_id', 0),
  };
}

/** vision_feature_layer is an int, or a list for multi-layer features (not implemented: one layer only). */
function selectLayer(f: Fields, key: string): number {
  const v = f.get(key);
  if (Array.isArray(v)) {
    if (v.length !== 1) throw f.fail(key, 'must be one layer (multi-layer visual features are not implemented)', v);
    return new Fields(f.file, { [key]: v[0] }, f.prefix).anyInt(key);
  }
  return f.anyInt(key);
}

function template(f: Fields, family: TextFamily): TemplateName {
  if (f.has('hscr_template')) return f.oneOf('hscr_template', ['mistral_instruct', 'vicuna_v1'] as const);
  return family === 'mistral' ? 'mistral_instruct' : 'vicuna_v1';
}

function parseHf(raw: Json, file: string): ModelConfig {
  const top = new Fields(file, raw, '', {
    image_token_index: 32000,
    projector_hidden_act: 'gelu',
    vision_feature_layer: -2,
    vision_feature_select_strategy: 'default',
    hscr_projector_type: 'mlp2x_gelu',
  });
  top.requireAbsentOr('projector_hidden_act', 'gelu', 'must be "gelu" (the LLaVA projector activation)');
  top.requireAbsentOr('multimodal_projector_bias', true, 'must be true: projector linears with bias are implemented');
  const vision = parseVision(top.child('vision_config', top.has('vision_config') ? CLIP_VISION_DEFAULTS : LLAVA_DEFAULT_VISION));
  const textRaw = top.child('text_config', {});
  const family = textFamily(textRaw, 'model_type', 'llama');
  const textFields = top.child('text_config', TEXT_DEFAULTS[family]);
  const topTie = top.has('tie_word_embeddings') ? top.bool('tie_word_embeddings') : false;
  const text = parseText(textFields, family, topTie);
  if (!textFields.has('pad_token_id') && top.has('pad_token_id')) text.padTokenId = top.int('pad_token_id', 0);
  const imageTokenIndex = top.has('image_token_index') || !top.has('image_token_id') ? top.anyInt('image_token_index') : top.anyInt('image_token_id');
  const strategy = top.oneOf('vision_feature_select_strategy', ['default', 'full'] as const);
  return {
    architecture: 'llava-hf',
    vision,
    projector: { type: top.oneOf('hscr_projector_type', ['mlp2x_gelu', 'linear'] as const) },
    text,
    selectLayer: selectLayer(top, 'vision_feature_layer'),
    selectFeature: strategy === 'full' ? 'cls_patch' : 'patch',
    imageTokenIndex,
    template: template(top, family),
  };
}

/**
 * Where LLaVA-Med's separate CLIP folder is: the option, else <dir>/<basename of mm_vision_tower>, else
 * <dir>/vision_tower; null when none of them has a config.json. The checkpoint loader uses the same answer.
 */
export function findVisionTowerDir(dir: string, raw: Json, options: ReadModelConfigOptions = {}): string | null {
  if (options.visionTowerDir !== undefined) return options.visionTowerDir;
  const candidates: string[] = [];
  if (typeof raw.mm_vision_tower === 'string' && raw.mm_vision_tower !== '') {
    candidates.push(path.join(dir, path.basename(raw.mm_vision_tower)));
  }
  candidates.push(path.join(dir, 'vision_tower'));
  return candidates.find((c) => fs.existsSync(path.join(c, 'config.json'))) ?? null;
}

function llavaMedVision(dir: string, raw: Json, file: string, options: ReadModelConfigOptions): VisionConfig {
  const top = new Fields(file, raw, '');
  if (top.has('vision_config')) return parseVision(top.child('vision_config', CLIP_VISION_DEFAULTS));
  const towerDir = findVisionTowerDir(dir, raw, options);
  if (towerDir === null) {
    throw configError(
      file,
      'mm_vision_tower',
      `names a CLIP folder that is not here: no vision_config in config.json and no config.json in ${dir}/<basename of mm_vision_tower> or ${dir}/vision_tower (pass visionTowerDir)`,
      raw.mm_vision_tower,
    );
  }
  const towerFile = path.join(towerDir, 'config.json');
  const tower = readJsonObject(towerFile);
  // A CLIPModel config nests the vision part; a CLIPVisionModel config is flat.
  const source = new Fields(towerFile, tower, '');
  return parseVision(source.has('vision_config') ? source.child('vision_config', CLIP_VISION_DEFAULTS) : new Fields(towerFile, tower, '', CLIP_VISION_DEFAULTS));
}

function parseLlavaMed(dir: string, raw: Json, file: string, options: ReadModelConfigOptions): ModelConfig {
  const modelTypeFields = new Fields(file, raw, '');
  const family = textFamily(modelTypeFields, 'model_type', 'llava_mistral');
  const top = new Fields(file, raw, '', {
    ...TEXT_DEFAULTS[family],
    mm_vision_select_layer: -2,
    mm_vision_select_feature: 'patch',
    mm_projector_type: 'linear', // LLaVA's build_vision_projector default
    image_token_index: LLAVA_IMAGE_TOKEN_INDEX,
  });
  top.requireAbsentOr('mm_use_im_start_end', false, 'must be false: <im_start>/<im_end> image markers are not implemented');
  top.requireAbsentOr('mm_patch_merge_type', 'flat', 'must be "flat" (LLaVA-1.5 style; anyres/spatial merging is not implemented)');
  const vision = llavaMedVision(dir, raw, file, options);
  if (top.has('mm_hidden_size') && top.int('mm_hidden_size') !== vision.hiddenSize) {
    throw top.fail('mm_hidden_size', `must equal the vision tower's hidden_size ${vision.hiddenSize}`, raw.mm_hidden_size);
  }
  return {
    architecture: 'llava-med',
    vision,
    projector: { type: top.oneOf('mm_projector_type', ['mlp2x_gelu', 'linear'] as const) },
    text: parseText(top, family, false),
    selectLayer: top.anyInt('mm_vision_select_layer'),
    selectFeature: top.oneOf('mm_vision_select_feature', ['patch', 'cls_patch'] as const),
    imageTokenIndex: top.anyInt('image_token_index'),
    template: template(top, family),
  };
}

function checkSelectLayer(cfg: ModelConfig, file: string): void {
  const n = cfg.vision.numLayers;
  if (cfg.selectLayer < -(n + 1) || cfg.selectLayer > n) {
    const field = cfg.architecture === 'llava-hf' ? 'vision_feature_layer' : 'mm_vision_select_layer';
    throw configError(file, field, `must index one of the ${n + 1} hidden states of a ${n}-layer vision tower (−${n + 1}…${n})`, cfg.selectLayer);
  }
}

/** Parses <dir>/config.json in either layout. Bad or missing fields: E_CONFIG naming the file and field. */
export function readModelConfig(dir: string, options: ReadModelConfigOptions = {}): ModelConfig {
  const file = path.join(dir, 'config.json');
  const raw = readJsonObject(file);
  const architecture = detectArchitecture(raw, file);
  const cfg = architecture === 'llava-hf' ? parseHf(raw, file) : parseLlavaMed(dir, raw, file, options);
  checkSelectLayer(cfg, file);
  return cfg;
}

// ---- writing ------------------------------------------------------------------------------------

function visionJson(v: VisionConfig): Json {
  return {
    model_type: 'clip_vision_model',
    hidden_size: v.hiddenSize,
    intermediate_size: v.intermediateSize,
    num_hidden_layers: v.numLayers,
    num_attention_heads: v.numHeads,
    image_size: v.imageSize,
    patch_size: v.patchSize,
    num_channels: v.numChannels,
    layer_norm_eps: v.layerNormEps,
    hidden_act: v.hiddenAct,
  };
}

/** Mistral when a sliding window must survive (LlamaConfig drops it) or the template is Mistral's. */
function familyFor(cfg: ModelConfig): TextFamily {
  return cfg.text.slidingWindow !== null || cfg.template === 'mistral_instruct' ? 'mistral' : 'llama';
}

function textJson(t: TextConfig, family: TextFamily): Json {
  return {
    vocab_size: t.vocabSize,
    hidden_size: t.hiddenSize,
    intermediate_size: t.intermediateSize,
    num_hidden_layers: t.numLayers,
    num_attention_heads: t.numHeads,
    num_key_value_heads: t.numKvHeads,
    head_dim: t.headDim,
    hidden_act: 'silu',
    rms_norm_eps: t.rmsNormEps,
    rope_theta: t.ropeTheta,
    ...(family === 'mistral' ? { sliding_window: t.slidingWindow } : {}),
    tie_word_embeddings: t.tieWordEmbeddings,
    max_position_embeddings: t.maxPositionEmbeddings,
    bos_token_id: t.bosTokenId,
    eos_token_id: t.eosTokenId,
    pad_token_id: t.padTokenId,
  };
}

function hfJson(cfg: ModelConfig): Json {
  const family = familyFor(cfg);
  return {
    architectures: ['LlavaForConditionalGeneration'],
    model_type: 'llava',
    image_token_index: cfg.imageTokenIndex,
    projector_hidden_act: 'gelu',
    multimodal_projector_bias: true,
    vision_feature_layer: cfg.selectLayer,
    vision_feature_select_strategy: cfg.selectFeature === 'cls_patch' ? 'full' : 'default',
    tie_word_embeddings: cfg.text.tieWordEmbeddings,
    hscr_template: cfg.template,
    hscr_projector_type: cfg.projector.type,
    vision_config: visionJson(cfg.vision),
    text_config: { model_type: family, ...textJson(cfg.text, family) },
  };
}

function llavaMedJson(cfg: ModelConfig): Json {
  const family = familyFor(cfg);
  return {
    architectures: [family === 'mistral' ? 'LlavaMistralForCausalLM' : 'LlavaLlamaForCausalLM'],
    model_type: family === 'mistral' ? 'llava_mistral' : 'llava_llama',
    ...textJson(cfg.text, family),
    mm_vision_tower: 'vision_tower',
    mm_hidden_size: cfg.vision.hiddenSize,
    mm_projector_type: cfg.projector.type,
    mm_vision_select_layer: cfg.selectLayer,
    mm_vision_select_feature: cfg.selectFeature,
    mm_use_im_start_end: false,
    mm_use_im_patch_token: false,
    mm_patch_merge_type: 'flat',
    image_aspect_ratio: 'pad',
    use_mm_proj: true,
    ...(cfg.imageTokenIndex !== LLAVA_IMAGE_TOKEN_INDEX ? { image_token_index: cfg.imageTokenIndex } : {}),
    hscr_template: cfg.template,
    vision_config: visionJson(cfg.vision),
  };
}

/** The first path where two JSON-like values differ, or null when they are equal. */
function firstDifference(a: unknown, b: unknown, where: string): string | null {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return Object.is(a, b) ? null : where;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    const d = firstDifference((a as Json)[key], (b as Json)[key], `${where}.${key}`);
    if (d !== null) return d;
  }
  return null;
}

/** Writes a file whole or not at all: a crash mid-write leaves the previous file in place. */
export function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new HscrError(`${file}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'E_IO', file);
  }
}

/**
 * Writes <dir>/config.json in the given layout. readModelConfig reads it back to `cfg` with
 * `architecture` set to the layout. The config is validated (through a re-parse) before anything is written.
 */
export function writeModelConfig(dir: string, cfg: ModelConfig, layout: Architecture): void {
  if (layout !== 'llava-hf' && layout !== 'llava-med') {
    throw new HscrError(`layout must be "llava-hf" or "llava-med"`, 'E_ARG', layout);
  }
  const json = layout === 'llava-hf' ? hfJson(cfg) : llavaMedJson(cfg);
  const file = path.join(dir, 'config.json');
  let reparsed: ModelConfig;
  try {
    reparsed = layout === 'llava-hf' ? parseHf(json, file) : parseLlavaMed(dir, json, file, {});
    checkSelectLayer(reparsed, file);
  } catch (e) {
    if (e instanceof HscrError && e.code === 'E_CONFIG') throw new HscrError(`not a valid ModelConfig: ${e.message}`, 'E_ARG', e.value);
    throw e;
  }
  const difference = firstDifference({ ...cfg, architecture: layout }, reparsed, 'cfg');
  if (difference !== null) throw new HscrError(`not a valid ModelConfig: ${difference} would not survive config.json`, 'E_ARG', cfg);
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomic(file, `${JSON.stringify(json, null, 2)}\n`);
}
