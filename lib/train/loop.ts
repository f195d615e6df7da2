/**
 * The training engine shared by SFT and MLPO: data order, gradient accumulation, data parallelism, the
 * schedule, AdamW, metrics and resumable checkpoints. A task (sft.ts, mlpo.ts) only says how a micro-batch
 * runs forward and backward and what its metrics are.
 *
 * One optimizer step takes a global batch of batchPerDevice · gradAccum · worldSize samples, in an order
 * fixed by (seed, epoch) alone. Each rank runs its contiguous share in micro-batches; every backward is
 * scaled by 1 / (the whole step's tokens or samples, over all ranks), computed from the data before the
 * step, so the summed gradients (the all-reduce inside optimizer.step is a SUM) are exactly those of one
 * process with one big batch. Only rank 0 writes files.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HscrError } from '../errors';
import { Rng, mixSeed } from '../data/prng';
import type { VisionLanguageModel } from '../model/vlm';
import { adaptedModules, addLoraAdapters, loadAdapter, saveAdapter, saveModelFolder, ADAPTER_CONFIG } from './adapter';
import {
  FULL_WEIGHTS,
  identityDifference,
  latestCheckpoint,
  listCheckpoints,
  pruneCheckpoints,
  readRngState,
  readTrainerState,
  removeStaleTemps,
  writeCheckpoint,
  OPTIMIZER_FILE,
  type TrainerState,
} from './checkpoint';
import type { TrainConfig } from './config';
import { SINGLE_PROCESS, type DistContext } from './launcher';
import { METRICS_FILE, MetricsLog, trainProgress, type StepMetrics } from './metrics';
import { trainAddon, type NativeOptimizer } from './native';
import { learningRateAt, warmupStepsFor, type LrSchedule } from './schedule';
import { writeFileAtomicSync } from '../util/output';

export interface TrainingTask {
  /** Progress label and the name in messages ('sft', 'mlpo'). */
  readonly label: string;
  /** Training samples. */
  readonly size: number;
  /** What a resumed run must share with the checkpoint besides the engine settings (data hash, loss settings). */
  readonly identity: Record<string, unknown>;
  /** The names of the sums microStep returns, in a fixed order (they are all-reduced as one vector). */
  readonly sumKeys: readonly string[];
  /** The step's normaliser over the whole global batch: answer tokens (SFT) or samples (MLPO). */
  normaliser(indices: readonly number[]): number;
  /** Forward and backward of one micro-batch with loss scale `scale`; returns sums (keys: sumKeys). */
  microStep(model: VisionLanguageModel, indices: readonly number[], scale: number, step: number): Promise<Record<string, number>>;
  /** The step's metrics (TRL names) from the global sums. */
  metrics(sums: Record<string, number>, step: number): StepMetrics;
}

export interface RunOptions {
  dist?: DistContext;
  /** Continue from the newest checkpoint in the output folder (a fresh start when there is none). */
  resume?: boolean;
  /** Start over in an output folder that holds a run (its checkpoints and metrics are removed). */
  overwrite?: boolean;
  quiet?: boolean;
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Called on every rank after each step with the global metrics. */
  onStep?: (metrics: StepMetrics) => void;
  /** Called on rank 0 for notices (resumed from …); default: stderr unless quiet. */
  log?: (line: string) => void;
}

export interface StepPlan {
  globalBatch: number;
  stepsPerEpoch: number;
  totalSteps: number;
  warmupSteps: number;
}

export interface TrainResult {
  outputDir: string;
  /** Steps this run took (after a resume: the remaining ones). */
  steps: number;
  startStep: number;
  totalSteps: number;
  /** The last step's metrics. */
  lastMetrics: StepMetrics;
  seconds: number;
  samplesPerSecond: number;
}

export function planSteps(size: number, config: TrainConfig, worldSize: number): StepPlan {
  if (!Number.isInteger(size) || size < 1) throw new HscrError('the training set is empty', 'E_DATA', size);
  const globalBatch = config.batchPerDevice * config.gradAccum * worldSize;
  const stepsPerEpoch = Math.ceil(size / globalBatch);
  const totalSteps = config.maxSteps ?? Math.ceil(config.epochs * stepsPerEpoch);
  return { globalBatch, stepsPerEpoch, totalSteps, warmupSteps: warmupStepsFor(totalSteps, config.warmupRatio, config.warmupSteps) };
}

/** Epoch e's sample order: a Fisher–Yates shuffle seeded by (seed, e) only, so any step can be found again. */
export function epochOrder(size: number, seed: number, epoch: number): number[] {
  const order = Array.from({ length: size }, (_, i) => i);
  const rng = new Rng(mixSeed(seed, 0x5eed, epoch));
  for (let i = size - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** The samples of optimizer step s (0-based), all ranks together. */
export function stepIndices(step: number, size: number, plan: StepPlan, seed: number, orderOf = epochOrder): number[] {
  const epoch = Math.floor(step / plan.stepsPerEpoch);
  const within = step % plan.stepsPerEpoch;
  return orderOf(size, seed, epoch).slice(within * plan.globalBatch, (within + 1) * plan.globalBatch);
}

/** Rank r's contiguous share of a step's samples (a short last step leaves later ranks with fewer or none). */
export function rankShare(indices: readonly number[], rank: number, worldSize: number): number[] {
  const per = Math.ceil(indices.length / worldSize);
  return indices.slice(rank * per, (rank + 1) * per);
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The engine settings a resumed run must share with its checkpoint (anything that changes the trajectory). */
function engineIdentity(config: TrainConfig, plan: StepPlan): Record<string, unknown> {
  const { finetune, learningRate, lrSchedule, maxGradNorm, weightDecay, adamBeta1, adamBeta2, adamEps, seed } = config;
  return {
    finetune,
    lora: finetune === 'lora' ? config.lora : null,
    learningRate,
    lrSchedule,
    warmupSteps: plan.warmupSteps,
    totalSteps: plan.totalSteps,
    globalBatch: plan.globalBatch,
    maxGradNorm,
    weightDecay,
    adam: [adamBeta1, adamBeta2, adamEps],
    seed,
  };
}

function holdsRun(outDir: string): boolean {
  return listCheckpoints(outDir).length > 0 || fs.existsSync(path.join(outDir, METRICS_FILE));
}

/** An output folder that holds a run is never overwritten by accident (checked before any slow set-up). */
export function checkOutputDir(outDir: string, opts: Pick<RunOptions, 'resume' | 'overwrite'>): void {
  if (holdsRun(outDir) && !opts.resume && !opts.overwrite) {
    throw new HscrError(`${outDir} already holds a training run: pass --resume to continue it or --overwrite to start over`, 'E_ARG', outDir);
  }
}

function prepareOutputDir(outDir: string, opts: RunOptions): void {
  checkOutputDir(outDir, opts);
  const hasRun = holdsRun(outDir);
  if (hasRun && opts.overwrite && !opts.resume) {
    for (const c of listCheckpoints(outDir)) fs.rmSync(c.dir, { recursive: true, force: true });
    fs.rmSync(path.join(outDir, METRICS_FILE), { force: true });
  }
  fs.mkdirSync(outDir, { recursive: true });
  removeStaleTemps(outDir);
}

function setUpTrainable(model: VisionLanguageModel, config: TrainConfig): void {
  const addon = trainAddon();
  if (config.finetune === 'full') {
    addon.setTrainable(model.handle, 'full');
    return;
  }
  if (adaptedModules(model).length === 0) addLoraAdapters(model, config.lora, config.seed);
  addon.setTrainable(model.handle, 'lora');
}

/** Counts skipped (non-finite) steps; too many in a row end the run. */
class NonFiniteGuard {
  inARow = 0;
  total = 0;
  constructor(readonly limit: number, readonly label: string) {}

  /** Records one step; throws E_NONFINITE once `limit` steps in a row were skipped. */
  record(skipped: boolean, step: number, loss: number | undefined, gradNorm: number): void {
    if (!skipped) {
      this.inARow = 0;
      return;
    }
    this.inARow += 1;
    this.total += 1;
    if (this.inARow < this.limit) return;
    throw new HscrError(
      `${this.label}: ${this.inARow} optimizer steps in a row (steps ${step + 2 - this.inARow}–${step + 1}) had a non-finite loss or gradient ` +
        `(last loss ${loss}, gradient norm ${gradNorm}) and were skipped; the run stops (lower --lr, set --max-grad-norm, or raise --max-nonfinite-steps). ` +
        `Nothing non-finite was saved; checkpoints written before are intact.`,
      'E_NONFINITE',
      { step: step + 1, inARow: this.inARow, total: this.total },
    );
  }
}

async function writeWeights(model: VisionLanguageModel, config: TrainConfig, dir: string): Promise<void> {
  if (config.finetune === 'lora') return saveAdapter(model, dir, config.lora, path.resolve(config.modelDir));
  // Internal names: a checkpoint is read back only by hscr's own resume.
  const entries = model.parameters().map((p) => ({ name: p.name, key: p.name }));
  await model.handle.saveWeights(path.join(dir, FULL_WEIGHTS), entries, { format: 'pt' });
}

async function loadWeights(model: VisionLanguageModel, config: TrainConfig, dir: string): Promise<void> {
  if (config.finetune === 'lora') {
    await loadAdapter(model, dir, { allowNonFinite: config.allowNonFinite });
    return;
  }
  const file = path.join(dir, FULL_WEIGHTS);
  await model.handle.loadWeights(
    model.parameters().map((p) => ({ name: p.name, file, key: p.name })),
    { allowNonFinite: config.allowNonFinite },
  );
}

/** Every rank's CPU generator state, gathered on all ranks (rank 0 writes them into the checkpoint). */
async function gatherRngStates(dist: DistContext): Promise<Uint8Array[]> {
  const own = trainAddon().rngState().toArray() as Uint8Array;
  if (!dist.group) return [own];
  const packed = new Float64Array(own.length * dist.worldSize);
  own.forEach((b, i) => (packed[dist.rank * own.length + i] = b));
  const all = await dist.group.allreduce(packed);
  return Array.from({ length: dist.worldSize }, (_, r) => Uint8Array.from(all.subarray(r * own.length, (r + 1) * own.length)));
}

interface Resumed {
  startStep: number;
  checkpoint?: string;
}

async function restore(model: VisionLanguageModel, optimizer: NativeOptimizer, config: TrainConfig, identity: Record<string, unknown>, dist: DistContext, opts: RunOptions): Promise<Resumed> {
  const addon = trainAddon();
  const dir = opts.resume ? latestCheckpoint(config.outputDir) : undefined;
  if (!dir) {
    // Ranks draw different dropout masks, like torch's per-rank seeding.
    addon.manualSeed(mixSeed(config.seed, dist.rank));
    return { startStep: 0 };
  }
  const state = readTrainerState(dir);
  const difference = identityDifference(state.identity, identity);
  if (difference) throw new HscrError(`${dir} is from a run with other settings (${difference}); resume with the same settings`, 'E_CHECKPOINT', difference);
  await loadWeights(model, config, dir);
  await optimizer.load(path.join(dir, OPTIMIZER_FILE));
  const rng = state.worldSize === dist.worldSize ? await readRngState(dir, dist.rank) : undefined;
  if (rng) addon.setRngState(rng);
  else addon.manualSeed(mixSeed(config.seed, dist.rank, state.globalStep));
  return { startStep: state.globalStep, checkpoint: dir };
}

function addSums(into: Record<string, number>, more: Record<string, number>, keys: readonly string[]): void {
  for (const k of keys) into[k] = (into[k] ?? 0) + (more[k] ?? 0);
}

async function reduceSums(sums: Record<string, number>, keys: readonly string[], dist: DistContext): Promise<Record<string, number>> {
  if (!dist.group) return sums;
  const total = await dist.group.allreduce(Float64Array.from(keys, (k) => sums[k] ?? 0));
  return Object.fromEntries(keys.map((k, i) => [k, total[i]]));
}

/** Runs (or resumes) a training run to its end and writes the final weights into config.outputDir. */
export async function runTraining(model: VisionLanguageModel, task: TrainingTask, config: TrainConfig, opts: RunOptions = {}): Promise<TrainResult> {
  const dist = opts.dist ?? SINGLE_PROCESS;
  const isMain = dist.rank === 0;
  const log = opts.log ?? ((line: string) => (opts.quiet ? undefined : process.stderr.write(`${line}\n`)));
  const plan = planSteps(task.size, config, dist.worldSize);
  const identity = { ...engineIdentity(config, plan), ...task.identity };
  if (isMain) prepareOutputDir(config.outputDir, opts);
  if (dist.group) await dist.group.barrier();
  const addon = trainAddon();
  setUpTrainable(model, config);
  const optimizer = addon.Optimizer.create(model.handle, { beta1: config.adamBeta1, beta2: config.adamBeta2, eps: config.adamEps, weightDecay: config.weightDecay });
  const { startStep, checkpoint } = await restore(model, optimizer, config, identity, dist, opts);
  if (isMain && checkpoint) log(`${task.label}: resumed from ${checkpoint} (step ${startStep} of ${plan.totalSteps})`);
  if (isMain && opts.resume && !checkpoint) log(`${task.label}: no checkpoint in ${config.outputDir} yet, starting from step 0`);
  const metricsLog = isMain ? MetricsLog.open(path.join(config.outputDir, METRICS_FILE), startStep) : undefined;
  if (isMain) writeFileAtomicSync(path.join(config.outputDir, 'train_config.json'), `${JSON.stringify({ ...config, plan, worldSize: dist.worldSize, task: task.identity }, null, 2)}\n`);
  const progress = trainProgress({ label: task.label, totalSteps: plan.totalSteps, startStep, quiet: opts.quiet || !isMain, stream: opts.progressStream });
  const schedule: LrSchedule = { kind: config.lrSchedule, lr: config.learningRate, warmupSteps: plan.warmupSteps, totalSteps: plan.totalSteps };
  const started = Date.now();
  let samplesDone = 0;
  let lastMetrics: StepMetrics = {};
  const guard = new NonFiniteGuard(config.maxNonFiniteSteps, task.label);
  addon.setTraining(model.handle, true);
  try {
    for (let step = startStep; step < plan.totalSteps; step++) {
      const stepStart = Date.now();
      const indices = stepIndices(step, task.size, plan, config.seed);
      const scale = 1 / task.normaliser(indices);
      const local: Record<string, number> = {};
      for (const micro of chunks(rankShare(indices, dist.rank, dist.worldSize), config.batchPerDevice)) {
        addSums(local, await task.microStep(model, micro, scale, step), task.sumKeys);
      }
      const lr = learningRateAt(step, schedule);
      // Reduced before the step, so every rank sees the same sums and skips (or not) together.
      const sums = await reduceSums(local, task.sumKeys, dist);
      const lossFinite = task.sumKeys.every((k) => Number.isFinite(sums[k] ?? 0));
      const { gradNorm, skipped } = await optimizer.step({ lr, maxGradNorm: config.maxGradNorm, processGroup: dist.group, skip: !lossFinite });
      const seconds = Math.max(1e-9, (Date.now() - stepStart) / 1000);
      samplesDone += indices.length;
      lastMetrics = {
        step: step + 1,
        epoch: (step + 1) / plan.stepsPerEpoch,
        ...task.metrics(sums, step),
        learning_rate: lr,
        grad_norm: gradNorm,
        samples_per_second: indices.length / seconds,
        tokens_per_second: (sums.tokens ?? 0) / seconds,
        // 1 when this step's loss or gradient was NaN/Inf and the update was skipped; the run's count so far.
        nonfinite_skipped: skipped ? 1 : 0,
        nonfinite_steps: guard.total + (skipped ? 1 : 0),
      };
      metricsLog?.write(lastMetrics);
      opts.onStep?.(lastMetrics);
      guard.record(skipped, step, lastMetrics.loss, gradNorm);
      progress.tick();
      const done = step + 1;
      if (config.saveSteps > 0 && done % config.saveSteps === 0 && done < plan.totalSteps) {
        await saveCheckpoint(model, optimizer, config, plan, identity, dist, lr, lastMetrics, done);
      }
    }
  } finally {
    progress.stop();
    addon.setTraining(model.handle, false);
  }
  if (isMain) await writeFinal(model, config);
  if (dist.group) await dist.group.barrier();
  const seconds = (Date.now() - started) / 1000;
  return {
    outputDir: config.outputDir,
    steps: plan.totalSteps - startStep,
    startStep,
    totalSteps: plan.totalSteps,
    lastMetrics,
    seconds,
    samplesPerSecond: seconds > 0 ? samplesDone / seconds : 0,
  };
}

async function saveCheckpoint(
  model: VisionLanguageModel,
  optimizer: NativeOptimizer,
  config: TrainConfig,
  plan: StepPlan,
  identity: Record<string, unknown>,
  dist: DistContext,
  lastLr: number,
  lastMetrics: StepMetrics,
  globalStep: number,
): Promise<void> {
  const rngStates = await gatherRngStates(dist);
  if (dist.rank !== 0) return;
  // The loop's step count, not the optimizer's: skipped (non-finite) steps advance the first, not the second.
  const state: TrainerState = {
    version: 1,
    globalStep,
    epoch: globalStep / plan.stepsPerEpoch,
    stepsPerEpoch: plan.stepsPerEpoch,
    totalSteps: plan.totalSteps,
    lastLr,
    worldSize: dist.worldSize,
    identity,
    lastMetrics,
  };
  await writeCheckpoint(config.outputDir, { state, optimizer, rngStates, writeWeights: (dir) => writeWeights(model, config, dir) });
  pruneCheckpoints(config.outputDir, config.saveTotalLimit);
}

/** Where a run leaves its result: <out>/adapter (PEFT, LoRA runs) and/or <out>/model (a complete model folder). */
export function finalAdapterDir(outputDir: string): string {
  return path.join(outputDir, 'adapter');
}

export function finalModelDir(outputDir: string): string {
  return path.join(outputDir, 'model');
}

/** The run's result: the PEFT adapter (LoRA) or a complete model folder (full fine-tuning). */
async function writeFinal(model: VisionLanguageModel, config: TrainConfig): Promise<void> {
  if (config.finetune === 'lora') await saveAdapter(model, finalAdapterDir(config.outputDir), config.lora, path.resolve(config.modelDir));
  else await saveModelFolder(model, config.modelDir, finalModelDir(config.outputDir));
}

/** Whether a folder holds a finished LoRA run. */
export function hasAdapter(outputDir: string): boolean {
  return fs.existsSync(path.join(finalAdapterDir(outputDir), ADAPTER_CONFIG));
}
