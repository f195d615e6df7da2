/**
 * The VLM as TypeScript sees it: a handle on the native model plus its config. Weights never leave native
 * memory; calls take token ids and a pixel tensor, and return log-probs or generated ids.
 */
import fs from 'fs';
import path from 'path';
import { HscrError } from '../errors';
import { native, type DType, type Tensor } from '../native';
import { readModelConfig, writeModelConfig, type Architecture, type ModelConfig } from './config';
import { detectLayout, fromInternalKey, planCheckpointLoad, type CheckpointLayout } from './keys';
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
  loadWeights(entries: { name: string; file: string; key: string }[]): Promise<void>;
  saveWeights(file: string, entries: { name: string; key: string }[], metadata?: Record<string, string>): Promise<void>;
  logprobs(batch: Batch, options?: PerturbOptions): Promise<LogprobResult>;
  generate(batch: Batch, options?: GenerateOptions): Promise<GenerateResult>;
  dispose(): void;
}

interface ModelAddon {
  Model: { create(config: ModelConfig, options?: { seed?: number; device?: string; dtype?: DType }): Promise<NativeModel> };
  keptVisualTokens(n: number, ratio: number, seed: number): number[];
}

export function modelAddon(): ModelAddon {
  return native() as unknown as ModelAddon;
}

export interface ModelOptions {
  device?: string;
  dtype?: DType;
}

export class VisionLanguageModel {
  private constructor(
    readonly config: ModelConfig,
    readonly handle: NativeModel,
  ) {}

  /** A randomly initialised model (N(0, 0.02) weights), deterministic for a seed. */
  static async create(config: ModelConfig, options: ModelOptions & { seed?: number } = {}): Promise<VisionLanguageModel> {
    return new VisionLanguageModel(config, await modelAddon().Model.create(config, options));
  }

  /** Loads config.json + safetensors weights in any supported layout (transformers old/new, LLaVA-Med). */
  static async load(dir: string, options: ModelOptions & { visionTowerDir?: string } = {}): Promise<VisionLanguageModel> {
    const config = readModelConfig(dir, { visionTowerDir: options.visionTowerDir });
    const model = await VisionLanguageModel.create(config, options);
    try {
      await model.loadWeightsFrom(dir, options.visionTowerDir);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  }

  private async loadWeightsFrom(dir: string, visionTowerDir?: string): Promise<void> {
    const entries: { name: string; shape: number[]; file: string }[] = [];
    for (const file of await checkpointShards(dir)) {
      for (const e of await safetensorsKeys(file)) entries.push({ name: e.name, shape: e.shape, file });
    }
    const layout = detectLayout(entries.map((e) => e.name));
    const extra: { name: string; shape: number[]; file: string }[] = [];
    const towerDir = visionTowerDir ?? separateVisionTower(dir, layout, entries.map((e) => e.name));
    if (towerDir) {
      for (const file of await checkpointShards(towerDir)) {
        for (const e of await safetensorsKeys(file)) extra.push({ name: e.name, shape: e.shape, file });
      }
    }
    const expected = this.handle.parameters().map((p) => ({ name: p.name, shape: p.shape }));
    const plan = planCheckpointLoad(layout, entries, expected, {
      towerEntries: extra.length ? extra : undefined,
      projector: this.config.projector.type,
    });
    await this.handle.loadWeights([...plan].map(([name, { file, key }]) => ({ name, file, key })));
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
