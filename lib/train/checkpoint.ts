/**
 * Resumable checkpoints. A checkpoint is a folder checkpoint-<step> holding the trainable weights (PEFT
 * adapter, or the full weights), the AdamW moments, every rank's CPU RNG state and trainer_state.json
 * in Hugging Face's layout (global_step, epoch, max_steps, log_history from <out>/metrics.jsonl, …: what
 * transformers' TrainerState.load_from_json reads), beside hscr_state.json (schedule position, the settings
 * that must not change on resume, the data fingerprint).
 * It is written whole into a hidden temp folder and renamed into place, so a kill at any moment leaves
 * either the previous checkpoints or the new one, never half of one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HscrError } from '../errors';
import { writeFileAtomic } from '../model/config';
import { readSafetensors, writeSafetensors } from '../model/safetensors';
import { tensor, type Tensor } from '../tensor';
import type { NativeOptimizer } from './native';
import { METRICS_FILE } from './metrics';

export const TRAINER_STATE = 'trainer_state.json';
/** hscr's resume fields, kept out of trainer_state.json (transformers' TrainerState refuses unknown keys). */
export const HSCR_STATE = 'hscr_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const RNG_FILE = 'rng_state.safetensors';
export const FULL_WEIGHTS = 'model.safetensors';
const CHECKPOINT_DIR = /^checkpoint-(\d+)$/;
const TEMP_DIR = /^\.checkpoint-\d+\.(?:tmp|old)-\d+$/;

export interface TrainerState {
  version: 1;
  /** Optimizer steps done. */
  globalStep: number;
  /** Epochs done, fractional (HF's trainer_state.epoch). */
  epoch: number;
  stepsPerEpoch: number;
  totalSteps: number;
  /** The learning rate of the last step taken. */
  lastLr: number;
  worldSize: number;
  /** Settings a resumed run must share with this one (see loop.ts), compared key by key. */
  identity: Record<string, unknown>;
  /** The last step's metrics, for a look at a checkpoint without the metrics file. */
  lastMetrics: Record<string, number>;
}

export interface CheckpointParts {
  state: TrainerState;
  /** Writes the trainable weights into the folder. */
  writeWeights(dir: string): Promise<void>;
  optimizer: NativeOptimizer;
  /** One CPU generator state per rank (uint8). */
  rngStates: Uint8Array[];
}

function ioError(what: string, file: string, e: unknown): HscrError {
  return new HscrError(`${file}: cannot ${what} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'E_IO', file);
}

export function checkpointDir(outDir: string, step: number): string {
  return path.join(outDir, `checkpoint-${step}`);
}

/** Complete checkpoints in outDir (those with a trainer_state.json), oldest first. */
export function listCheckpoints(outDir: string): { step: number; dir: string }[] {
  if (!fs.existsSync(outDir)) return [];
  return fs
    .readdirSync(outDir)
    .map((name) => ({ m: CHECKPOINT_DIR.exec(name), name }))
    .filter(({ m, name }) => m !== null && fs.existsSync(path.join(outDir, name, TRAINER_STATE)))
    .map(({ m, name }) => ({ step: Number(m![1]), dir: path.join(outDir, name) }))
    .sort((a, b) => a.step - b.step);
}

export function latestCheckpoint(outDir: string): string | undefined {
  return listCheckpoints(outDir).at(-1)?.dir;
}

/** Temp folders a killed writer left behind; nothing in them was ever a checkpoint. */
export function removeStaleTemps(outDir: string): void {
  if (!fs.existsSync(outDir)) return;
  for (const name of fs.readdirSync(outDir)) if (TEMP_DIR.test(name)) fs.rmSync(path.join(outDir, name), { recursive: true, force: true });
}

async function writeRng(file: string, states: Uint8Array[]): Promise<void> {
  const tensors: Record<string, Tensor> = {};
  states.forEach((s, rank) => (tensors[`rank_${rank}`] = tensor(s, [s.length], 'uint8')));
  await writeSafetensors(file, tensors, { count: String(states.length) });
}

/** Writes checkpoint-<step> atomically; returns its folder. */
export async function writeCheckpoint(outDir: string, parts: CheckpointParts): Promise<string> {
  const step = parts.state.globalStep;
  const final = checkpointDir(outDir, step);
  const temp = path.join(outDir, `.checkpoint-${step}.tmp-${process.pid}`);
  fs.rmSync(temp, { recursive: true, force: true });
  fs.mkdirSync(temp, { recursive: true });
  try {
    await parts.writeWeights(temp);
    await parts.optimizer.save(path.join(temp, OPTIMIZER_FILE));
    await writeRng(path.join(temp, RNG_FILE), parts.rngStates);
    writeFileAtomic(path.join(temp, HSCR_STATE), `${JSON.stringify(hscrStateJson(parts.state), null, 2)}\n`);
    // Written last: a folder with trainer_state.json is a complete checkpoint.
    writeFileAtomic(path.join(temp, TRAINER_STATE), `${JSON.stringify(hfTrainerState(parts.state, logHistory(outDir, parts.state)), null, 2)}\n`);
    replaceDir(temp, final, outDir, step);
  } catch (e) {
    fs.rmSync(temp, { recursive: true, force: true });
    throw e instanceof HscrError ? e : ioError('write the checkpoint', final, e);
  }
  return final;
}

/** metrics.jsonl's lines up to this step, each with its epoch: transformers' log_history. */
function logHistory(outDir: string, state: TrainerState): Record<string, number>[] {
  let text = '';
  try {
    text = fs.readFileSync(path.join(outDir, METRICS_FILE), 'utf8');
  } catch {
    return [];
  }
  const history: Record<string, number>[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let entry: Record<string, number>;
    try {
      entry = JSON.parse(line) as Record<string, number>;
    } catch {
      continue; // a killed run's partial last line
    }
    if (typeof entry.step !== 'number' || entry.step > state.globalStep) continue;
    history.push({ ...entry, epoch: entry.step / state.stepsPerEpoch, step: entry.step });
  }
  return history;
}

/** trainer_state.json as transformers' Trainer writes it (TrainerState's fields, snake_case). */
function hfTrainerState(state: TrainerState, history: Record<string, number>[]): Record<string, unknown> {
  return {
    best_metric: null,
    best_model_checkpoint: null,
    epoch: state.epoch,
    eval_steps: null,
    global_step: state.globalStep,
    is_hyper_param_search: false,
    is_local_process_zero: true,
    is_world_process_zero: true,
    log_history: history,
    logging_steps: 1,
    max_steps: state.totalSteps,
    num_input_tokens_seen: 0,
    num_train_epochs: Math.ceil(state.totalSteps / Math.max(1, state.stepsPerEpoch)),
    save_steps: typeof state.identity.saveSteps === 'number' ? state.identity.saveSteps : 0,
    stateful_callbacks: {},
    total_flos: 0,
    train_batch_size: typeof state.identity.batchSize === 'number' ? state.identity.batchSize : null,
    trial_name: null,
    trial_params: null,
  };
}

function hscrStateJson(state: TrainerState): Record<string, unknown> {
  const { globalStep: _step, epoch: _epoch, ...rest } = state;
  return { ...rest, version: 2 };
}

function replaceDir(temp: string, final: string, outDir: string, step: number): void {
  if (!fs.existsSync(final)) return fs.renameSync(temp, final);
  const old = path.join(outDir, `.checkpoint-${step}.old-${process.pid}`);
  fs.renameSync(final, old);
  fs.renameSync(temp, final);
  fs.rmSync(old, { recursive: true, force: true });
}

/** Removes the oldest checkpoints beyond `keep` (0 = keep all). */
export function pruneCheckpoints(outDir: string, keep: number): void {
  if (keep <= 0) return;
  const all = listCheckpoints(outDir);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) fs.rmSync(c.dir, { recursive: true, force: true });
}

function stateError(file: string, what: string, value?: unknown): HscrError {
  return new HscrError(`${file}: ${what}`, 'E_CHECKPOINT', value);
}

export function readTrainerState(dir: string): TrainerState {
  const file = path.join(dir, TRAINER_STATE);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw stateError(file, `not a readable trainer state (${(e as Error).message})`);
  }
  const s = (fs.existsSync(path.join(dir, HSCR_STATE)) ? fromHfLayout(dir, file, raw) : raw) as Partial<TrainerState>;
  // version 1: one camelCase trainer_state.json (checkpoints written before the HF layout).
  if (s.version !== 1) throw stateError(file, 'unknown trainer state version', s.version);
  for (const key of ['globalStep', 'stepsPerEpoch', 'totalSteps', 'worldSize'] as const) {
    if (!Number.isInteger(s[key]) || (s[key] as number) < 0) throw stateError(file, `"${key}" must be an integer ≥ 0`, s[key]);
  }
  if (typeof s.identity !== 'object' || s.identity === null) throw stateError(file, '"identity" is missing', s.identity);
  return s as TrainerState;
}

/** trainer_state.json (HF) + hscr_state.json → the in-memory TrainerState. */
function fromHfLayout(dir: string, file: string, raw: unknown): Partial<TrainerState> {
  const hf = (raw ?? {}) as { global_step?: unknown; epoch?: unknown };
  const extrasFile = path.join(dir, HSCR_STATE);
  let extras: Record<string, unknown>;
  try {
    extras = JSON.parse(fs.readFileSync(extrasFile, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw stateError(extrasFile, `not readable (${(e as Error).message})`);
  }
  if (extras.version !== 2) throw stateError(extrasFile, 'unknown hscr state version', extras.version);
  if (typeof hf.epoch !== 'number') throw stateError(file, '"epoch" must be a number', hf.epoch);
  return { ...(extras as Partial<TrainerState>), version: 1, globalStep: hf.global_step as number, epoch: hf.epoch };
}

/** The CPU generator state this rank saved, or undefined when the checkpoint has none for it. */
export async function readRngState(dir: string, rank: number): Promise<Tensor | undefined> {
  const file = path.join(dir, RNG_FILE);
  const f = await readSafetensors(file);
  return f.tensors[`rank_${rank}`];
}

/**
 * The first setting that differs between a checkpoint and this run, as "key: checkpoint → now", or null.
 * Resuming with other settings would not continue the same run, so the caller refuses it.
 */
export function identityDifference(saved: Record<string, unknown>, now: Record<string, unknown>): string | null {
  for (const key of new Set([...Object.keys(saved), ...Object.keys(now)])) {
    const a = JSON.stringify(saved[key]);
    const b = JSON.stringify(now[key]);
    if (a !== b) return `${key}: ${a ?? 'unset'} in the checkpoint, ${b ?? 'unset'} now`;
  }
  return null;
}
