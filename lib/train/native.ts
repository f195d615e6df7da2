/**
 * Typed view of the addon's training core (native/train.cpp, optimizer.cpp, mlpo.cpp, distributed.cpp).
 * Only lib/train talks to these; everything else goes through the trainer.
 */
import { native, type Tensor } from '../native';
import type { Batch, NativeModel } from '../model/vlm';

export interface LoraSpec {
  r: number;
  alpha: number;
  dropout: number;
  targets?: string[];
  scope?: 'language_model' | 'all';
  seed: number;
}

export interface SftSums {
  lossSum: number;
  tokens: number;
  samples: number;
}

/** Per-step sums of the MLPO forward/backward (native names); sums, so micro-batches and ranks add up. */
export interface MlpoSums {
  lossSum: number;
  explicitSum: number;
  implicitSum: number;
  samples: number;
  tokens: number;
  rewardChosenSum: number;
  rewardRejectedSum: number;
  rejected: number;
  explicitPairs: number;
  explicitCorrect: number;
  explicitMarginSum: number;
  implicitPairs: number;
  implicitCorrect: number;
  implicitMarginSum: number;
  implicitRewardHigherSum: number;
  implicitRewardLowerSum: number;
  logpsChosenSum: number;
  logpsRejectedSum: number;
  sequenceLogps: Float64Array;
}

export interface SftSpec {
  loss: 'sft';
  scale: number;
}

export interface MlpoSpec {
  loss: 'mlpo';
  scale: number;
  groups: number[];
  referenceLogps: Float64Array;
  gamma: number;
  lambdaExplicit: number;
  lambdaImplicit: number;
  pairWeighting: 'sum' | 'mean';
  /**
   * Rows of a sample share image and prompt: run that prefix once and the answers over its cached
   * keys/values (default true; false = every row a full sequence, the cross-check path).
   */
  sharedPrefix?: boolean;
}

export interface NativeOptimizer {
  /**
   * One AdamW update, skipped (no change but zeroed gradients) when `skip` is set or the global gradient
   * norm is NaN/Inf; E_NONFINITE when the update itself leaves a weight NaN/Inf.
   */
  step(o: { lr: number; maxGradNorm: number; processGroup?: NativeProcessGroup; grads?: Tensor[]; skip?: boolean }): Promise<{ gradNorm: number; step: number; skipped: boolean }>;
  save(file: string): Promise<void>;
  load(file: string): Promise<void>;
  readonly stepCount: number;
  parameterNames(): string[];
}

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export interface ProcessGroupOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  backend: 'gloo' | 'nccl';
  timeoutMs?: number;
}

export interface NativeProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: string;
  allreduce(values: Float64Array): Promise<Float64Array>;
  barrier(): Promise<void>;
  broadcastParameters(model: NativeModel): Promise<void>;
  destroy(): void;
}

export interface MlpoLossInputs {
  policyChosen: Tensor;
  policyRejected: Tensor;
  referenceChosen: Tensor;
  referenceRejected: Tensor;
  mask: Tensor;
}

export interface MlpoLossOptions {
  gamma?: number;
  lambdaExplicit?: number;
  lambdaImplicit?: number;
  pairWeighting?: 'sum' | 'mean';
}

export interface MlpoLossResult {
  /** Batch mean of λE·E + λI·I. */
  loss: number;
  /** Batch means of the unweighted levels. */
  explicit: number;
  implicit: number;
  explicitAccuracy: number;
  implicitAccuracy: number;
  gradPolicyChosen: Tensor;
  gradPolicyRejected: Tensor;
  rewardChosen: Tensor;
  rewardRejected: Tensor;
}

export interface TrainAddon {
  addLora(model: NativeModel, spec: LoraSpec): string[];
  setTrainable(model: NativeModel, mode: 'lora' | 'full' | 'none'): number;
  setLoraEnabled(model: NativeModel, enabled: boolean): void;
  mergeLora(model: NativeModel, merge: boolean): void;
  setTraining(model: NativeModel, training: boolean): void;
  forwardBackward(model: NativeModel, batch: Batch, spec: SftSpec): Promise<SftSums>;
  forwardBackward(model: NativeModel, batch: Batch, spec: MlpoSpec): Promise<MlpoSums>;
  Optimizer: { create(target: NativeModel | Tensor[], options: AdamWOptions): NativeOptimizer };
  ProcessGroup: { create(options: ProcessGroupOptions): Promise<NativeProcessGroup> };
  mlpoLoss(inputs: MlpoLossInputs, options: MlpoLossOptions): Promise<MlpoLossResult>;
  rngState(): Tensor;
  setRngState(state: Tensor): void;
  manualSeed(seed: number): void;
}

export function trainAddon(): TrainAddon {
  return native() as unknown as TrainAddon;
}
