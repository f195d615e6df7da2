/**
 * Multi-level preference optimisation (paper §3.3) on ranked.jsonl. Each sample is y_w and its ranked
 * dispreferred answers y_l1 ≻ y_l2 ≻ …; all of them go through the model in ONE batched forward per
 * micro-batch, as rows of the same image (the native batch encodes each distinct image once), with the
 * prompt tokenised once per sample. The native loss (native/mlpo.cpp, also exported as mlpoLoss) gives
 * explicit terms y_w ≻ y_lj and implicit terms y_lj ≻ y_lm; binary DPO and the one-level ablations are
 * the same loss with one rejected answer or one λ at 0.
 *
 * The reference policy is the SFT model itself with adapters off. Its sequence log-probs are computed once
 * before training, in eval mode, and cached in a file keyed by the preference file's sha256 (and the
 * model's fingerprint); steps only read them.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HscrError, dataError } from '../errors';
import { readJsonl } from '../data/jsonl';
import { parseRankedRecord } from '../generate/types';
import { checkpointShards } from '../model/safetensors';
import { writeFileAtomic } from '../model/config';
import { disposeBundle, encodeRecord, loadModelBundle, type ModelBundle } from '../model/bundle';
import type { BatchRow, VisionLanguageModel } from '../model/vlm';
import { sequenceLength, visualTokens } from '../model/context';
import { folderFingerprint } from '../util/output';
import { tensor } from '../tensor';
import { adaptedModules, loadAdapter } from './adapter';
import { resolveMlpoConfig, type MlpoConfig, type MlpoConfigInput, type MlpoLossKind } from './config';
import { PixelCache, sha256File } from './data';
import { SINGLE_PROCESS, type DistContext } from './launcher';
import { runTraining, type RunOptions, type TrainingTask, type TrainResult } from './loop';
import type { StepMetrics } from './metrics';
import { trainAddon, type MlpoLossInputs, type MlpoLossOptions, type MlpoLossResult, type MlpoSums } from './native';
import { termWeightAt } from './schedule';
import { checkImageGeometry } from './sft';
import { openRun } from './open-run';

/** One ranked sample, tokenised. */
export interface PreferenceExample {
  id: string;
  /** Absolute image path. */
  image: string;
  promptIds: number[];
  chosenIds: number[];
  /** Every dispreferred answer of the record, in rank order (most similar to y_w first). */
  rejectedIds: number[][];
}

export interface LoadedPreferences {
  examples: PreferenceExample[];
  /** Records without any (non-blank) dispreferred answer (nothing to prefer y_w over), left out. */
  skippedEmpty: number;
  /** Blank dispreferred answers (a replacement that decodes to nothing), left out of their lists. */
  skippedBlank: number;
}

/**
 * Reads ranked.jsonl (rerank's output). Image paths are taken relative to the file's folder when not
 * absolute. Bad records and repeated ids are E_DATA naming file, line and field.
 */
export async function loadPreferences(bundle: ModelBundle, file: string): Promise<LoadedPreferences> {
  const examples: PreferenceExample[] = [];
  const seen = new Set<string>();
  let skippedEmpty = 0;
  let skippedBlank = 0;
  let index = 0;
  const dir = path.dirname(path.resolve(file));
  for await (const { line, value } of readJsonl(file)) {
    const record = parseRankedRecord(value, { file, line, index: index++ });
    if (seen.has(record.id)) throw dataError(file, line, 'id', 'repeats the id of an earlier record', record.id);
    seen.add(record.id);
    // A blank y_l is no answer at all: the chat template cannot even encode it, and it teaches nothing about the image.
    const rejected = record.rejected.map((r, i) => ({ text: r.text, field: `rejected[${i}].text` })).filter((r) => r.text.trim() !== '');
    skippedBlank += record.rejected.length - rejected.length;
    if (rejected.length === 0) {
      skippedEmpty++;
      continue;
    }
    const encode = (answer: string, field: string) => {
      try {
        return encodeRecord(bundle, { question: record.question, answer });
      } catch (e) {
        throw dataError(file, line, field, (e as Error).message, answer);
      }
    };
    const chosen = encode(record.chosen, 'chosen');
    const rejectedIds = rejected.map((r) => encode(r.text, r.field).answerIds);
    checkContext(bundle, file, line, record.id, chosen.promptIds, [chosen.answerIds, ...rejectedIds]);
    examples.push({ id: record.id, image: path.resolve(dir, record.image), promptIds: chosen.promptIds, chosenIds: chosen.answerIds, rejectedIds });
  }
  return { examples, skippedEmpty, skippedBlank };
}

/** Every answer of a sample must fit the model's context with its prompt and visual tokens (E_DATA otherwise). */
function checkContext(bundle: ModelBundle, file: string, line: number, id: string, promptIds: number[], answers: number[][]): void {
  const limit = bundle.model.config.text.maxPositionEmbeddings;
  const length = Math.max(...answers.map((answerIds) => sequenceLength(bundle, { promptIds, answerIds })));
  if (length > limit) {
    throw dataError(file, line, 'question', `record "${id}" is ${length} tokens long (prompt + ${visualTokens(bundle)} visual tokens + answer); the model's context (max_position_embeddings) is ${limit}`, length);
  }
}

/**
 * Which of a sample's ranked answers the loss uses: the first maxRejected (most similar first, the paper's j),
 * or for binary DPO the last one — the least similar, as `hscr rerank --mode binary` keeps.
 */
export function selectRejected(count: number, loss: MlpoLossKind, maxRejected: number): number[] {
  if (count === 0) return [];
  if (loss === 'dpo') return [count - 1];
  return Array.from({ length: Math.min(count, maxRejected) }, (_, i) => i);
}

// ---- reference log-probs ------------------------------------------------------------------------

/** Per sample: the reference sequence log-probs of [y_w, every y_l in rank order]. */
export type ReferenceLogps = Map<string, number[]>;

interface ReferenceCacheFile {
  version: 1;
  prefsSha256: string;
  model: string;
  logps: Record<string, number[]>;
}

/** Changes when the SFT model's files do (config, weight shards' sizes and times): a stale cache is never used. */
export async function modelFingerprint(modelDir: string): Promise<string> {
  const hash = createHash('sha256');
  hash.update(fs.readFileSync(path.join(modelDir, 'config.json')));
  for (const shard of await checkpointShards(modelDir)) {
    const st = fs.statSync(shard);
    hash.update(`${path.basename(shard)}:${st.size}:${st.mtimeMs}\n`);
  }
  return hash.digest('hex');
}

export function referenceCacheFile(cacheDir: string, prefsSha256: string): string {
  return path.join(cacheDir, `reference_logps-${prefsSha256.slice(0, 16)}.json`);
}

function readReferenceCache(file: string, prefsSha256: string, model: string, examples: PreferenceExample[]): ReferenceLogps | undefined {
  if (!fs.existsSync(file)) return undefined;
  let raw: ReferenceCacheFile;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8')) as ReferenceCacheFile;
  } catch {
    return undefined;
  }
  if (raw.version !== 1 || raw.prefsSha256 !== prefsSha256 || raw.model !== model) return undefined;
  const out: ReferenceLogps = new Map();
  for (const e of examples) {
    const v = raw.logps[e.id];
    if (!Array.isArray(v) || v.length !== 1 + e.rejectedIds.length || !v.every(Number.isFinite)) return undefined;
    out.set(e.id, v);
  }
  return out;
}

function rowsOf(e: PreferenceExample, image: number, which: number[] | 'all'): BatchRow[] {
  const rejected = which === 'all' ? e.rejectedIds : which.map((j) => e.rejectedIds[j]);
  return [e.chosenIds, ...rejected].map((answer) => ({ image, prompt: e.promptIds, answer }));
}

/** Sequence log-probs of every row of `examples` under the model as it is now (eval mode, no grad). */
async function sequenceLogps(model: VisionLanguageModel, pixels: PixelCache, examples: PreferenceExample[], batch: number): Promise<number[][]> {
  const out: number[][] = [];
  for (let i = 0; i < examples.length; i += batch) {
    const chunk = examples.slice(i, i + batch);
    const { pixels: px, index } = await pixels.batch(chunk.map((e) => e.image));
    try {
      const r = await model.logprobs({ pixels: px, rows: chunk.flatMap((e, k) => rowsOf(e, index[k], 'all')) });
      let row = 0;
      for (const e of chunk) {
        const n = 1 + e.rejectedIds.length;
        out.push(Array.from(r.sums.subarray(row, row + n)));
        row += n;
      }
    } finally {
      px.dispose();
    }
  }
  return out;
}

/** The reference policy's view: adapters off and eval mode for the duration of fn. */
async function asReference<T>(model: VisionLanguageModel, fn: () => Promise<T>): Promise<T> {
  const addon = trainAddon();
  const hasAdapters = adaptedModules(model).length > 0;
  if (hasAdapters) addon.setLoraEnabled(model.handle, false);
  addon.setTraining(model.handle, false);
  try {
    return await fn();
  } finally {
    if (hasAdapters) addon.setLoraEnabled(model.handle, true);
  }
}

export interface ReferenceOptions {
  cacheDir: string;
  prefsSha256: string;
  modelFingerprint: string;
  batch: number;
  dist?: DistContext;
  log?: (line: string) => void;
}

/**
 * The frozen SFT policy's log-probs for every sample, from the cache when it matches (same preference
 * file, same model), else computed once — sharded over the ranks, summed by all-reduce — and cached by rank 0.
 */
export async function referenceLogps(model: VisionLanguageModel, pixels: PixelCache, examples: PreferenceExample[], o: ReferenceOptions): Promise<{ logps: ReferenceLogps; cached: boolean; file: string }> {
  const dist = o.dist ?? SINGLE_PROCESS;
  const file = referenceCacheFile(o.cacheDir, o.prefsSha256);
  const cached = readReferenceCache(file, o.prefsSha256, o.modelFingerprint, examples);
  const everyoneHasIt = dist.group ? (await dist.group.allreduce(Float64Array.of(cached ? 1 : 0)))[0] === dist.worldSize : cached !== undefined;
  if (everyoneHasIt && cached) return { logps: cached, cached: true, file };
  const mineAt = examples.map((_, i) => i).filter((i) => i % dist.worldSize === dist.rank);
  const values = await asReference(model, () => sequenceLogps(model, pixels, mineAt.map((i) => examples[i]), o.batch));
  const offsets: number[] = [];
  let total = 0;
  for (const e of examples) {
    offsets.push(total);
    total += 1 + e.rejectedIds.length;
  }
  let packed: Float64Array = new Float64Array(total);
  mineAt.forEach((i, k) => packed.set(values[k], offsets[i]));
  if (dist.group) packed = await dist.group.allreduce(packed);
  const logps: ReferenceLogps = new Map(examples.map((e, i) => [e.id, Array.from(packed.subarray(offsets[i], offsets[i] + 1 + e.rejectedIds.length))]));
  if (dist.rank === 0) {
    const content: ReferenceCacheFile = { version: 1, prefsSha256: o.prefsSha256, model: o.modelFingerprint, logps: Object.fromEntries(logps) };
    fs.mkdirSync(o.cacheDir, { recursive: true });
    writeFileAtomic(file, `${JSON.stringify(content)}\n`);
  }
  return { logps, cached: false, file };
}

// ---- the task -----------------------------------------------------------------------------------

const MLPO_SUMS = [
  'lossSum',
  'explicitSum',
  'implicitSum',
  'samples',
  'tokens',
  'rewardChosenSum',
  'rewardRejectedSum',
  'rejected',
  'explicitPairs',
  'explicitCorrect',
  'explicitMarginSum',
  'implicitPairs',
  'implicitCorrect',
  'implicitMarginSum',
  'implicitRewardHigherSum',
  'implicitRewardLowerSum',
  'logpsChosenSum',
  'logpsRejectedSum',
] as const satisfies readonly (keyof MlpoSums)[];

const ratio = (a: number, b: number) => (b > 0 ? a / b : 0);

/** TRL's DPO metric names for the explicit level, the same under rewards_implicit/ for the implicit one. */
export function mlpoMetrics(s: Record<string, number>, lambdas: { explicit: number; implicit: number }): StepMetrics {
  return {
    loss: ratio(s.lossSum, s.samples),
    'loss/explicit': ratio(s.explicitSum, s.samples),
    'loss/implicit': ratio(s.implicitSum, s.samples),
    'rewards/chosen': ratio(s.rewardChosenSum, s.samples),
    'rewards/rejected': ratio(s.rewardRejectedSum, s.rejected),
    'rewards/margins': ratio(s.explicitMarginSum, s.explicitPairs),
    'rewards/accuracies': ratio(s.explicitCorrect, s.explicitPairs),
    'rewards_implicit/higher': ratio(s.implicitRewardHigherSum, s.implicitPairs),
    'rewards_implicit/lower': ratio(s.implicitRewardLowerSum, s.implicitPairs),
    'rewards_implicit/margins': ratio(s.implicitMarginSum, s.implicitPairs),
    'rewards_implicit/accuracies': ratio(s.implicitCorrect, s.implicitPairs),
    'logps/chosen': ratio(s.logpsChosenSum, s.samples),
    'logps/rejected': ratio(s.logpsRejectedSum, s.rejected),
    'lambda/explicit': lambdas.explicit,
    'lambda/implicit': lambdas.implicit,
    pairs_explicit: s.explicitPairs,
    pairs_implicit: s.implicitPairs,
    num_tokens: s.tokens,
  };
}

export function lambdasAt(step: number, config: MlpoConfig): { explicit: number; implicit: number } {
  return {
    explicit: termWeightAt(step, config.lambdaExplicit, config.explicitSchedule),
    implicit: termWeightAt(step, config.lambdaImplicit, config.implicitSchedule),
  };
}

export function createMlpoTask(
  bundle: ModelBundle,
  examples: PreferenceExample[],
  reference: ReferenceLogps,
  config: MlpoConfig,
  identity: { prefsSha256: string },
  pixels = new PixelCache(bundle.preprocessing, bundle.model.config.vision.imageSize),
): TrainingTask {
  checkImageGeometry(bundle);
  const addon = trainAddon();
  const selection = examples.map((e) => selectRejected(e.rejectedIds.length, config.loss, config.maxRejected));
  return {
    label: config.loss,
    size: examples.length,
    identity: {
      task: 'mlpo',
      data: identity.prefsSha256,
      samples: examples.length,
      loss: config.loss,
      gamma: config.gamma,
      lambdas: [config.lambdaExplicit, config.lambdaImplicit],
      schedules: [config.explicitSchedule, config.implicitSchedule],
      pairWeighting: config.pairWeighting,
      maxRejected: config.maxRejected,
    },
    sumKeys: MLPO_SUMS,
    normaliser: (indices) => indices.length,
    async microStep(model, indices, scale, step) {
      const chosen = indices.map((i) => examples[i]);
      const { pixels: px, index } = await pixels.batch(chosen.map((e) => e.image));
      const rows = chosen.flatMap((e, k) => rowsOf(e, index[k], selection[indices[k]]));
      const refs = chosen.flatMap((e, k) => {
        const all = reference.get(e.id)!;
        return [all[0], ...selection[indices[k]].map((j) => all[1 + j])];
      });
      const lambdas = lambdasAt(step, config);
      try {
        const sums = await addon.forwardBackward(
          model.handle,
          { pixels: px, rows },
          {
            loss: 'mlpo',
            scale,
            groups: indices.map((i) => selection[i].length),
            referenceLogps: Float64Array.from(refs),
            gamma: config.gamma,
            lambdaExplicit: lambdas.explicit,
            lambdaImplicit: lambdas.implicit,
            pairWeighting: config.pairWeighting,
          },
        );
        return Object.fromEntries(MLPO_SUMS.map((k) => [k, sums[k]]));
      } finally {
        px.dispose();
      }
    },
    metrics: (sums, step) => mlpoMetrics(sums, lambdasAt(step, config)),
  };
}

// ---- loss as a function, and the accuracy of a trained policy -----------------------------------

/**
 * The MLPO loss on sequence log-probs (the trainer's own C++ code): inputs policy/reference chosen [B] and
 * rejected [B, J] with a mask [B, J] for lists shorter than J (valid entries first). Returns the batch-mean
 * loss, its explicit and implicit parts, the reward accuracies and the gradients w.r.t. the policy inputs.
 */
export function mlpoLoss(inputs: MlpoLossInputs, options: MlpoLossOptions = {}): Promise<MlpoLossResult> {
  return trainAddon().mlpoLoss(inputs, options);
}

export interface PreferenceAccuracy {
  /** Share of pairs ordered right; null when the lists hold no such pair (e.g. single answers: no implicit pair). */
  explicit: number | null;
  implicit: number | null;
  explicitPairs: number;
  implicitPairs: number;
  loss: number;
  samples: number;
}

/**
 * Reward accuracies of the model as it is now (eval mode, adapters on) against the reference, over the
 * ranked lists the loss uses: the share of pairs y_w ≻ y_lj and y_lj ≻ y_lm (j < m) the policy orders right.
 */
export async function preferenceAccuracy(
  bundle: ModelBundle,
  examples: PreferenceExample[],
  reference: ReferenceLogps,
  config: Pick<MlpoConfig, 'loss' | 'maxRejected' | 'gamma' | 'pairWeighting'>,
  batch = 8,
): Promise<PreferenceAccuracy> {
  trainAddon().setTraining(bundle.model.handle, false);
  const pixels = new PixelCache(bundle.preprocessing, bundle.model.config.vision.imageSize);
  const policy = await sequenceLogps(bundle.model, pixels, examples, batch);
  const selection = examples.map((e) => selectRejected(e.rejectedIds.length, config.loss, config.maxRejected));
  const J = Math.max(1, ...selection.map((s) => s.length));
  const B = examples.length;
  const pc = new Float64Array(B), rc = new Float64Array(B), pr = new Float64Array(B * J), rr = new Float64Array(B * J);
  const mask = new Uint8Array(B * J);
  examples.forEach((e, b) => {
    const ref = reference.get(e.id)!;
    pc[b] = policy[b][0];
    rc[b] = ref[0];
    selection[b].forEach((j, k) => {
      pr[b * J + k] = policy[b][1 + j];
      rr[b * J + k] = ref[1 + j];
      mask[b * J + k] = 1;
    });
  });
  const r = await mlpoLoss(
    { policyChosen: tensor(pc, [B]), policyRejected: tensor(pr, [B, J]), referenceChosen: tensor(rc, [B]), referenceRejected: tensor(rr, [B, J]), mask: tensor(mask, [B, J], 'bool') },
    { gamma: config.gamma, pairWeighting: config.pairWeighting },
  );
  const explicitPairs = selection.reduce((n, s) => n + s.length, 0);
  const implicitPairs = selection.reduce((n, s) => n + (s.length * (s.length - 1)) / 2, 0);
  return {
    explicit: explicitPairs > 0 ? r.explicitAccuracy : null,
    implicit: implicitPairs > 0 ? r.implicitAccuracy : null,
    explicitPairs,
    implicitPairs,
    loss: r.loss,
    samples: B,
  };
}

export interface PreferenceFileAccuracy extends PreferenceAccuracy {
  referenceCached: boolean;
}

/**
 * Reward accuracies of a trained adapter on a preference file (the lists the loss used): loads the SFT model,
 * reads the reference log-probs (from the training run's cache when it is there) and adds the adapter.
 */
export async function preferenceFileAccuracy(
  modelDir: string,
  adapterDir: string,
  prefs: string,
  config: Pick<MlpoConfig, 'loss' | 'maxRejected' | 'gamma' | 'pairWeighting'> & { referenceCacheDir: string; batch?: number; device?: string },
): Promise<PreferenceFileAccuracy> {
  const bundle = await loadModelBundle(modelDir, { device: config.device });
  try {
    const { examples } = await loadPreferences(bundle, prefs);
    const pixels = new PixelCache(bundle.preprocessing, bundle.model.config.vision.imageSize);
    const ref = await referenceLogps(bundle.model, pixels, examples, {
      cacheDir: config.referenceCacheDir,
      prefsSha256: await sha256File(prefs),
      modelFingerprint: await modelFingerprint(modelDir),
      batch: config.batch ?? 8,
    });
    await loadAdapter(bundle.model, adapterDir);
    return { ...(await preferenceAccuracy(bundle, examples, ref.logps, config, config.batch)), referenceCached: ref.cached };
  } finally {
    disposeBundle(bundle);
  }
}

// ---- `hscr train` as a function -----------------------------------------------------------------

export interface MlpoRunOptions extends Omit<RunOptions, 'dist'> {
  config: MlpoConfigInput;
  /** ranked.jsonl from `hscr rerank`. */
  prefs: string;
  dist?: DistContext;
}

export interface MlpoRunResult extends TrainResult {
  config: MlpoConfig;
  samples: number;
  skippedEmpty: number;
  skippedBlank: number;
  referenceCached: boolean;
  referenceFile: string;
}

export async function runMlpo(o: MlpoRunOptions): Promise<MlpoRunResult> {
  const config = resolveMlpoConfig(o.config);
  const { dist, bundle, close } = await openRun(config, o, { flag: '--prefs', file: o.prefs }, 'hscr train');
  try {
    const { examples, skippedEmpty, skippedBlank } = await loadPreferences(bundle, o.prefs);
    if (examples.length === 0) throw new HscrError(`${o.prefs}: no sample has a dispreferred answer to train on`, 'E_DATA', o.prefs);
    const prefsSha256 = await sha256File(o.prefs);
    const pixels = new PixelCache(bundle.preprocessing, bundle.model.config.vision.imageSize);
    const ref = await referenceLogps(bundle.model, pixels, examples, {
      cacheDir: config.referenceCacheDir ?? config.outputDir,
      prefsSha256,
      modelFingerprint: await modelFingerprint(config.modelDir),
      batch: config.batchPerDevice,
      dist,
    });
    const base = createMlpoTask(bundle, examples, ref.logps, config, { prefsSha256 }, pixels);
    // A resume from another SFT model would not continue the same run.
    const task: TrainingTask = { ...base, identity: { ...base.identity, model: folderFingerprint(config.modelDir) } };
    const result = await runTraining(bundle.model, task, config, { ...o, dist });
    return { ...result, config, samples: examples.length, skippedEmpty, skippedBlank, referenceCached: ref.cached, referenceFile: ref.file };
  } finally {
    close();
  }
}
