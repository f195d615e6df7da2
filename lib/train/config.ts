/**
 * Training configuration, kept apart from the trainer as TRL keeps its SFTConfig/DPOConfig apart from the
 * Trainer: plain data, every default from HSCR_DEFAULTS (paper §4.1), validated once by resolve*Config so
 * the engine never meets a half-filled or out-of-range value.
 */
import { HSCR_DEFAULTS } from '../config';
import { HscrError } from '../errors';

export type FinetuneMode = 'lora' | 'full';
export type LrScheduleKind = 'cosine' | 'linear' | 'constant';
export type LoraScope = 'language_model' | 'all';

/** PEFT's default LLaVA targets: the decoder's attention and MLP projections. */
export const DEFAULT_LORA_TARGETS: readonly string[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

export interface LoraConfig {
  r: number;
  alpha: number;
  dropout: number;
  /** Last parts of module names (default DEFAULT_LORA_TARGETS). */
  targets: string[];
  /** 'language_model' keeps the vision tower and projector free of adapters (LLaVA's usual LoRA). */
  scope: LoraScope;
}

export interface TrainConfig {
  /** The base model folder (for MLPO: the SFT model, which is also the frozen reference). */
  modelDir: string;
  outputDir: string;
  finetune: FinetuneMode;
  lora: LoraConfig;
  learningRate: number;
  lrSchedule: LrScheduleKind;
  /** Share of the optimizer steps spent warming up (HF: ceil(ratio · total)); ignored when warmupSteps is set. */
  warmupRatio: number;
  warmupSteps?: number;
  epochs: number;
  /** Stops after this many optimizer steps (overrides epochs for the schedule's length too, as HF's max_steps). */
  maxSteps?: number;
  /** Samples per micro-batch on each rank. */
  batchPerDevice: number;
  gradAccum: number;
  /** Global-norm clip; 0 = off. */
  maxGradNorm: number;
  weightDecay: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEps: number;
  seed: number;
  /** A checkpoint every this many optimizer steps; 0 = none before the end. */
  saveSteps: number;
  /** Checkpoints kept (oldest removed first); 0 = keep all. */
  saveTotalLimit: number;
  device: string;
  /**
   * A step whose loss or gradient norm is NaN/Inf is skipped (no update) and counted; this many skipped
   * steps in a row stop the run with an E_NONFINITE (HscrError). Not a paper setting: 5 lets a rare bad
   * batch pass while a diverged run (every step NaN from then on) stops within a few steps.
   */
  maxNonFiniteSteps: number;
  /** Load a base model, adapter or checkpoint whose tensors hold NaN/Inf (default: E_CHECKPOINT naming the tensor). */
  allowNonFinite: boolean;
}

export type MlpoLossKind = 'mlpo' | 'explicit' | 'implicit' | 'dpo';
export const MLPO_LOSS_KINDS: readonly MlpoLossKind[] = ['mlpo', 'explicit', 'implicit', 'dpo'];

/**
 * How a term weight moves over the optimizer steps: constant, or a linear warm-in that reaches the
 * weight at step `steps` (weight · min(1, (s+1)/steps) on the 0-based step s).
 */
export type TermSchedule = { kind: 'constant' } | { kind: 'linear-warmin'; steps: number };

export interface MlpoConfig extends TrainConfig {
  /** mlpo = explicit + implicit (§3.3); explicit / implicit = one level only (Table 4); dpo = one rejected, explicit only. */
  loss: MlpoLossKind;
  gamma: number;
  lambdaExplicit: number;
  lambdaImplicit: number;
  explicitSchedule: TermSchedule;
  implicitSchedule: TermSchedule;
  pairWeighting: 'sum' | 'mean';
  /** Ranked dispreferred answers used per sample (the paper's j); dpo always uses one. */
  maxRejected: number;
  /** Where reference log-probs are cached (default the output folder). */
  referenceCacheDir?: string;
}

const D = HSCR_DEFAULTS;

function loraDefaults(): LoraConfig {
  return { r: D.loraR, alpha: D.loraAlpha, dropout: D.loraDropout, targets: [...DEFAULT_LORA_TARGETS], scope: 'language_model' };
}

/** Everything but the two folders; the paper's §4.1 settings except the lr (SFT uses LLaVA's, see HSCR_DEFAULTS). */
function engineDefaults(): Omit<TrainConfig, 'modelDir' | 'outputDir'> {
  return {
    finetune: 'lora',
    lora: loraDefaults(),
    learningRate: D.lr,
    lrSchedule: D.schedule,
    warmupRatio: D.warmupRatio,
    epochs: D.epochs,
    batchPerDevice: D.batchPerDevice,
    gradAccum: D.gradAccum,
    maxGradNorm: D.maxGradNorm,
    weightDecay: D.weightDecay,
    // torch.optim.AdamW's defaults (the paper's HF Trainer passes them through).
    adamBeta1: 0.9,
    adamBeta2: 0.999,
    adamEps: 1e-8,
    seed: 42,
    saveSteps: 500,
    saveTotalLimit: 2,
    device: 'cpu',
    maxNonFiniteSteps: 5,
    allowNonFinite: false,
  };
}

export type TrainConfigInput = Partial<Omit<TrainConfig, 'lora'>> & { lora?: Partial<LoraConfig>; modelDir: string; outputDir: string };
export type MlpoConfigInput = Partial<Omit<MlpoConfig, 'lora'>> & { lora?: Partial<LoraConfig>; modelDir: string; outputDir: string };

function bad(field: string, what: string, value: unknown): HscrError {
  return new HscrError(`training config: ${field} ${what}`, 'E_ARG', value);
}

function positiveInt(field: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw bad(field, 'must be a positive integer', v);
}

function nonNegativeInt(field: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw bad(field, 'must be an integer ≥ 0', v);
}

function finiteAtLeast(field: string, v: number, lo: number): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo) throw bad(field, `must be a number ≥ ${lo}`, v);
}

function inUnit(field: string, v: number): void {
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) throw bad(field, 'must be in [0, 1)', v);
}

function checkLora(l: LoraConfig): void {
  positiveInt('lora.r', l.r);
  if (!(l.alpha > 0)) throw bad('lora.alpha', 'must be > 0', l.alpha);
  inUnit('lora.dropout', l.dropout);
  if (!Array.isArray(l.targets) || l.targets.length === 0 || !l.targets.every((t) => typeof t === 'string' && /^[A-Za-z0-9_]+$/.test(t))) {
    throw bad('lora.targets', 'must be a non-empty list of module names (e.g. q_proj)', l.targets);
  }
  if (l.scope !== 'language_model' && l.scope !== 'all') throw bad('lora.scope', "must be 'language_model' or 'all'", l.scope);
}

function checkTrain(c: TrainConfig): void {
  for (const f of ['modelDir', 'outputDir'] as const) if (typeof c[f] !== 'string' || c[f] === '') throw bad(f, 'must be a folder path', c[f]);
  if (c.finetune !== 'lora' && c.finetune !== 'full') throw bad('finetune', "must be 'lora' or 'full'", c.finetune);
  checkLora(c.lora);
  if (!(c.learningRate > 0) || !Number.isFinite(c.learningRate)) throw bad('learningRate', 'must be a positive number', c.learningRate);
  if (!['cosine', 'linear', 'constant'].includes(c.lrSchedule)) throw bad('lrSchedule', 'must be cosine, linear or constant', c.lrSchedule);
  if (!(c.warmupRatio >= 0 && c.warmupRatio <= 1)) throw bad('warmupRatio', 'must be in [0, 1]', c.warmupRatio);
  if (c.warmupSteps !== undefined) nonNegativeInt('warmupSteps', c.warmupSteps);
  if (!(c.epochs > 0) || !Number.isFinite(c.epochs)) throw bad('epochs', 'must be a positive number', c.epochs);
  if (c.maxSteps !== undefined) positiveInt('maxSteps', c.maxSteps);
  positiveInt('batchPerDevice', c.batchPerDevice);
  positiveInt('gradAccum', c.gradAccum);
  finiteAtLeast('maxGradNorm', c.maxGradNorm, 0);
  finiteAtLeast('weightDecay', c.weightDecay, 0);
  inUnit('adamBeta1', c.adamBeta1);
  inUnit('adamBeta2', c.adamBeta2);
  if (!(c.adamEps > 0)) throw bad('adamEps', 'must be > 0', c.adamEps);
  if (!Number.isInteger(c.seed) || c.seed < 0 || c.seed > 0xffffffff) throw bad('seed', 'must be an integer in [0, 2^32)', c.seed);
  nonNegativeInt('saveSteps', c.saveSteps);
  nonNegativeInt('saveTotalLimit', c.saveTotalLimit);
  if (typeof c.device !== 'string' || !/^(cpu|cuda(:\d+)?)$/.test(c.device)) throw bad('device', 'must be cpu, cuda or cuda:N', c.device);
  positiveInt('maxNonFiniteSteps', c.maxNonFiniteSteps);
  if (typeof c.allowNonFinite !== 'boolean') throw bad('allowNonFinite', 'must be true or false', c.allowNonFinite);
}

function checkSchedule(field: string, s: TermSchedule): void {
  if (s.kind === 'constant') return;
  if (s.kind === 'linear-warmin') return positiveInt(`${field}.steps`, s.steps);
  throw bad(field, "kind must be 'constant' or 'linear-warmin'", s);
}

function checkMlpo(c: MlpoConfig): void {
  if (!MLPO_LOSS_KINDS.includes(c.loss)) throw bad('loss', `must be one of ${MLPO_LOSS_KINDS.join(', ')}`, c.loss);
  if (!(c.gamma > 0) || !Number.isFinite(c.gamma)) throw bad('gamma', 'must be a positive number', c.gamma);
  finiteAtLeast('lambdaExplicit', c.lambdaExplicit, 0);
  finiteAtLeast('lambdaImplicit', c.lambdaImplicit, 0);
  checkSchedule('explicitSchedule', c.explicitSchedule);
  checkSchedule('implicitSchedule', c.implicitSchedule);
  if (c.pairWeighting !== 'sum' && c.pairWeighting !== 'mean') throw bad('pairWeighting', "must be 'sum' or 'mean'", c.pairWeighting);
  positiveInt('maxRejected', c.maxRejected);
}

function withLora(input: { lora?: Partial<LoraConfig> }): LoraConfig {
  return { ...loraDefaults(), ...stripUndefined(input.lora ?? {}) };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** SFT settings: the engine defaults with LLaVA's fine-tuning lr (the paper's 5e-7 is for MLPO on top of SFT). */
export function resolveSftConfig(input: TrainConfigInput): TrainConfig {
  if (typeof input !== 'object' || input === null) throw bad('(the whole config)', 'must be an object', input);
  const c: TrainConfig = { ...engineDefaults(), learningRate: D.sftLr, ...stripUndefined(input), lora: withLora(input) } as TrainConfig;
  checkTrain(c);
  return c;
}

/**
 * MLPO settings. The loss kind fixes what the λ's cannot express on their own: explicit-only / implicit-only
 * zero the other level, dpo keeps one rejected answer and no implicit level.
 */
export function resolveMlpoConfig(input: MlpoConfigInput): MlpoConfig {
  if (typeof input !== 'object' || input === null) throw bad('(the whole config)', 'must be an object', input);
  const base: MlpoConfig = {
    ...engineDefaults(),
    loss: 'mlpo',
    gamma: D.gamma,
    lambdaExplicit: D.lambdaExplicit,
    lambdaImplicit: D.lambdaImplicit,
    explicitSchedule: { kind: 'constant' },
    implicitSchedule: { kind: 'constant' },
    pairWeighting: D.pairWeighting,
    maxRejected: D.j,
    ...stripUndefined(input),
    lora: withLora(input),
  } as MlpoConfig;
  checkTrain(base);
  checkMlpo(base);
  if (base.loss === 'explicit') return { ...base, lambdaImplicit: 0 };
  if (base.loss === 'implicit') return { ...base, lambdaExplicit: 0 };
  if (base.loss === 'dpo') return { ...base, lambdaImplicit: 0, maxRejected: 1 };
  return base;
}
