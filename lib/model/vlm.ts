/**
 * The VLM as TypeScript sees it: a handle on the native model plus its config. Weights never leave native
 * memory; calls take token ids and a pixel tensor, and return log-probs or generated ids.
 */
import fs from 'fs';
import path from 'path';
import { HscrError } from '../errors';
import { native, type DType, type Tensor } from '../native';
import { readModelConfig, writeModelConfig, type Architecture, type ModelConfig } from './config';
import { detectLayout, expectedParameters, fromInternalKey, planCheckpointLoad, type CheckpointLayout } from './keys';
import { checkpointShards, safetensorsKeys } from './safetensors';

export type PerturbKind = 'none' | 'token' | 'pixel' | 'patch' | 'latent';

export interface BatchRow {
  /** Index into the batch's pixels (rows may share an image: it is encoded once). */
  image: number;
  /** Prompt ids with the image placeholder (config.imageTokenIndex) exactly once. */
  prompt: number[] | Int32Array;
  /** Teacher-forced answer ids (logprobs), or a forced prefix (generate). */
  answer?: number[] | Int32Array;
  /** Whether this row sees the perturbed view (default: when the call names a perturbation). */
  perturb?: boolean;
  /** This row's perturbation seed (default: options.seed + image). */
  seed?: number;
}

export interface Batch {
  pixels: Tensor;
  rows: BatchRow[];
}

export interface PerturbOptions {
  perturb?: PerturbKind;
  ratio?: number;
  seed?: number;
}

export interface LogprobResult {
  /** log p of every answer token, rows concatenated. */
  logprobs: Float32Array;
  counts: number[];
  /** Per-row sums: the sequence log-probability. */
  sums: Float64Array;
}

export interface GenerateOptions extends PerturbOptions {
  maxNewTokens?: number;
  /** 0 = greedy. */
  temperature?: number;
  topP?: number;
  /** Off only to check the KV cache against full re-computation. */
  useCache?: boolean;
}

export interface GenerateResult {
  tokens: number[][];
  /** Stopped on EOS (false: ran into maxNewTokens). */
  finished: boolean[];
}

export interface ParameterInfo {
  name: string;
  shape: number[];
  dtype: DType;
  trainable: boolean;
}

/** The native Model class (see native/model.cpp). */
export interface NativeModel {
  readonly device: string;
  readonly dtype: DType;
  readonly disposed: boolean;
  parameters(): ParameterInfo[];
  /** NaN/Inf in a tensor is an E_CHECKPOINT naming it unless allowNonFinite; an integer tensor for a float weight an E_DTYPE. */
  loadWeights(entries: { name: string; file: string; key: string }[], options?: { allowNonFinite?: boolean }): Promise<void>;
  /** A NaN/Inf weight is an E_NONFINITE naming it (nothing written) unless allowNonFinite. */
  saveWeights(file: string, entries: { name: string; key: string }[], metadata?: Record<string, string>, options?: { allowNonFinite?: boolean }): Promise<void>;
  logprobs(batch: Batch, options?: PerturbOptions): Promise<LogprobResult>;
  generate(batch: Batch, options?: GenerateOptions): Promise<GenerateResult>;
  dispose(): void;
}

interface ModelAddon {
  Model: { create(config: ModelConfig, options?: { seed?: number; device?: string; dtype?: DType; memoryCheck?: boolean; maxMemoryBytes?: number }): Promise<NativeModel> };
  keptVisualTokens(n: number, ratio: number, seed: number): number[];
}

export function modelAddon(): ModelAddon {
  return native() as unknown as ModelAddon;
}

export interface ModelOptions {
  device?: string;
  dtype?: DType;
  /**
   * Refuse a model whose weights alone (parameters × dtype bytes) exceed the memory available now
   * (MemAvailable, or the room under a cgroup limit). Default true; the environment variable
   * HSCR_MEMORY_CHECK=0 turns it off for the CLI.
   */
  memoryCheck?: boolean;
  /** The budget for that check in bytes, instead of the measured available memory. */
  maxMemoryBytes?: number;
  /** Load checkpoints whose tensors hold NaN/Inf (default: an E_CHECKPOINT naming the tensor). */
  allowNonFinite?: boolean;
}

/** The memory check's default: on, unless HSCR_MEMORY_CHECK is 0/false/off. */
export function memoryCheckDefault(env: NodeJS.ProcessEnv = process.env): boolean {
  return !/^(0|false|off|no)$/i.test(env.HSCR_MEMORY_CHECK ?? '');
}

const FLOAT_DTYPES = new Set(['float32', 'float64', 'bfloat16', 'float16']);

interface HeaderEntry {
  name: string;
  shape: number[];
  dtype: string;
  file: string;
}

async function headerEntries(dir: string): Promise<HeaderEntry[]> {
  const out: HeaderEntry[] = [];
  for (const file of await checkpointShards(dir)) {
    for (const e of await safetensorsKeys(file)) out.push({ name: e.name, shape: e.shape, dtype: e.dtype, file });
  }
  return out;
}

/** The config's headline sizes, for messages about a config that does not fit its checkpoint. */
function describeSizes(cfg: ModelConfig): string {
  const t = cfg.text;
  const v = cfg.vision;
  return `text hidden_size ${t.hiddenSize}, ${t.numLayers} layers, vocab ${t.vocabSize}; vision hidden_size ${v.hiddenSize}, ${v.numLayers} layers, image ${v.imageSize}/${v.patchSize}`;
}

export class VisionLanguageModel {
  private constructor(
    readonly config: ModelConfig,
    readonly handle: NativeModel,
  ) {}

  /** A randomly initialised model (N(0, 0.02) weights), deterministic for a seed. */
  static async create(config: ModelConfig, options: ModelOptions & { seed?: number } = {}): Promise<VisionLanguageModel> {
    if (typeof config !== 'object' || config === null) throw new HscrError('config must be a ModelConfig object', 'E_ARG', config);
    if (typeof options !== 'object' || options === null) throw new HscrError('options must be an object', 'E_ARG', options);
    const { seed, device, dtype, maxMemoryBytes } = options;
    const memoryCheck = options.memoryCheck ?? memoryCheckDefault();
    return new VisionLanguageModel(config, await modelAddon().Model.create(config, { seed, device, dtype, memoryCheck, maxMemoryBytes }));
  }

  /**
   * Loads config.json + safetensors weights in any supported layout (transformers old/new, LLaVA-Med).
   * Everything that can be checked without the weights is checked before the model is allocated: every
   * tensor's name, shape and dtype in the checkpoint headers against the shapes the config implies
   * (E_CHECKPOINT / E_DTYPE naming the tensor and both shapes), then the memory the weights need (E_CONFIG).
   */
  static async load(dir: string, options: ModelOptions & { visionTowerDir?: string } = {}): Promise<VisionLanguageModel> {
    if (typeof dir !== 'string' || dir === '') throw new HscrError('model folder must be a non-empty string', 'E_ARG', dir);
    const config = readModelConfig(dir, { visionTowerDir: options.visionTowerDir });
    const plan = await VisionLanguageModel.planLoad(dir, config, options.visionTowerDir);
    const model = await VisionLanguageModel.create(config, options);
    try {
      await model.handle.loadWeights([...plan].map(([name, { file, key }]) => ({ name, file, key })), { allowNonFinite: options.allowNonFinite === true });
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  }

  /** Which checkpoint tensor fills which parameter, from the headers and the config alone (nothing allocated). */
  private static async planLoad(dir: string, config: ModelConfig, visionTowerDir?: string) {
    const entries = await headerEntries(dir);
    const layout = detectLayout(entries.map((e) => e.name));
    const towerDir = visionTowerDir ?? separateVisionTower(dir, layout, entries.map((e) => e.name));
    const extra = towerDir ? await headerEntries(towerDir) : [];
    let plan: ReturnType<typeof planCheckpointLoad>;
    try {
      plan = planCheckpointLoad(layout, entries, expectedParameters(config), {
        towerEntries: extra.length ? extra : undefined,
        projector: config.projector.type,
      });
    } catch (e) {
      if (!(e instanceof HscrError)) throw e;
      throw new HscrError(`${path.join(dir, 'config.json')} (${describeSizes(config)}) does not describe the checkpoint in ${dir}: ${e.message}`, e.code, e.value);
    }
    const byKey = new Map([...entries, ...extra].map((e) => [`${e.file}\0${e.name}`, e]));
    for (const [name, { file, key }] of plan) {
      const entry = byKey.get(`${file}\0${key}`);
      if (entry && !FLOAT_DTYPES.has(entry.dtype)) {
        throw new HscrError(`${file}: tensor "${key}" is stored as ${entry.dtype} but ${name} is a floating-point weight (F32, F16, BF16 or F64 expected)`, 'E_DTYPE', key);
      }
    }
    return plan;
  }

  /** Writes config.json and model.safetensors in the given layout (default: transformers, old key names). */
  async save(dir: string, layout: Architecture = 'llava-hf'): Promise<void> {
    fs.mkdirSync(dir, { recursive: true });
    const keyLayout: CheckpointLayout = layout === 'llava-med' ? 'llava-med' : 'hf-old';
    const entries = this.handle.parameters().map((p) => ({
      name: p.name,
      key: fromInternalKey(keyLayout, p.name, this.config.projector.type),
    }));
    await this.handle.saveWeights(path.join(dir, 'model.safetensors'), entries, { format: 'pt' });
    writeModelConfig(dir, this.config, layout);
  }

  parameters(): ParameterInfo[] {
    return this.handle.parameters();
  }

  logprobs(batch: Batch, options: PerturbOptions = {}): Promise<LogprobResult> {
    return this.handle.logprobs(batch, options);
  }

  generate(batch: Batch, options: GenerateOptions = {}): Promise<GenerateResult> {
    return this.handle.generate(batch, options);
  }

  dispose(): void {
    this.handle.dispose();
  }
}

/** The indices of the visual tokens a `token` perturbation keeps for a seed (sorted). */
export function keptVisualTokens(n: number, ratio: number, seed: number): number[] {
  return modelAddon().keptVisualTokens(n, ratio, seed);
}

function separateVisionTower(dir: string, layout: CheckpointLayout, keys: string[]): string | undefined {
  if (layout !== 'llava-med' || keys.some((k) => k.includes('vision_tower'))) return undefined;
  const candidate = path.join(dir, 'vision_tower');
  if (fs.existsSync(candidate)) return candidate;
  throw new HscrError(
    `${dir}: the checkpoint has no vision tower weights and there is no ${candidate} folder (pass visionTowerDir)`,
    'E_CHECKPOINT',
    dir,
  );
}
