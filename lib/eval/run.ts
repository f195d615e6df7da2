/**
 * The evaluation runner: batched prediction, streamed to predictions.jsonl (a killed run keeps every
 * finished batch, and the next run with the same outDir resumes), then scoring, results.json and the
 * paper-style table.
 */
import * as path from 'node:path';
import sharp from 'sharp';
import { HscrError } from '../errors';
import type { AnswerType, VqaRecord } from '../data/types';
import { openResumableJsonl } from '../util/jsonl-writer';
import { lockOutput, writeFileAtomic, type OutputLock } from '../util/output';
import { hallucinationRate, type HallucinationReport } from './hallucination';
import { DEFAULT_VARIANT, checkVariant, scorePredictions, type GroupSummary, type MetricVariant, type ScoreReport } from './metrics';
import { loadPredictions } from './predictions';
import { resultsTable } from './table';

export interface PredictInput {
  id: string;
  /** Absolute image path. */
  image: string;
  question: string;
}

/** Answers a batch of questions, one string per input, in order. */
export type Predictor = (batch: PredictInput[]) => Promise<string[]>;

export interface EvaluateOptions {
  batchSize: number;
  variant?: MetricVariant;
  /** Gets predictions.jsonl and results.json (unless the two paths below are given). */
  outDir: string;
  /** Default <outDir>/results.json. */
  resultsFile?: string;
  /** Default: beside the results, <results name>.predictions.jsonl, or <outDir>/predictions.jsonl. */
  predictionsFile?: string;
  /** Called after each batch with items done (including those of an earlier run) and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Every question is asked about this image instead of its own (the blank run of image reliance). */
  imageOverride?: string;
  /** Method name in the table (default 'hscr'). */
  name?: string;
  /**
   * What makes the predictions (model, adapter, data hashes, settings): kept beside predictions.jsonl; a
   * resume whose fingerprint differs is refused (E_DATA) instead of mixing two models' answers in one table.
   */
  fingerprint?: Record<string, unknown>;
  /** Start over: predictions already written (and their fingerprint) are removed first. */
  overwrite?: boolean;
  /** Take the results file's lock (default true; false when the caller holds it). */
  lock?: boolean;
}

export interface PredictionLine {
  id: string;
  dataset: string;
  answer_type: AnswerType;
  question: string;
  answer: string;
  prediction: string;
}

export interface EvaluationResult {
  variant: MetricVariant;
  datasets: Record<string, GroupSummary>;
  overall: GroupSummary;
  /** Phantom description records only; absent when there are none. */
  hallucination?: HallucinationReport;
  /** Items predicted by this run, and by an earlier run that was resumed. */
  predicted: number;
  resumed: number;
  seconds: number;
  samplesPerSecond: number | null;
  /** Records whose prediction is empty or blank (a model that learned nothing answers ""). */
  emptyPredictions: number;
  table: string;
  predictionsFile: string;
  resultsFile: string;
}

function checkOptions(records: VqaRecord[], opts: EvaluateOptions): void {
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new HscrError(`batchSize must be a positive integer, got ${opts.batchSize}`, 'E_ARG', opts.batchSize);
  checkVariant(opts.variant ?? DEFAULT_VARIANT);
  const seen = new Set<string>();
  for (const r of records) {
    if (seen.has(r.id)) throw new HscrError(`records hold id "${r.id}" twice; predictions are paired by id`, 'E_ARG', r.id);
    seen.add(r.id);
  }
}

async function predictBatch(predict: Predictor, batch: VqaRecord[], imageOverride: string | undefined): Promise<string[]> {
  const answers = await predict(batch.map((r) => ({ id: r.id, image: imageOverride ?? r.image, question: r.question })));
  if (!Array.isArray(answers) || answers.length !== batch.length) {
    throw new HscrError(`predictor returned ${Array.isArray(answers) ? answers.length : typeof answers} answers for ${batch.length} questions`, 'E_ARG', answers);
  }
  const bad = answers.findIndex((a) => typeof a !== 'string');
  if (bad !== -1) throw new HscrError(`predictor answer ${bad} for id "${batch[bad].id}" is not a string`, 'E_ARG', answers[bad]);
  return answers;
}

/** Runs the predictor on the records not yet in predictions.jsonl; returns how many it predicted. */
async function predictAll(records: VqaRecord[], predict: Predictor, opts: EvaluateOptions, file: string): Promise<{ predicted: number; resumed: number }> {
  const known = new Set(records.map((r) => r.id));
  const fingerprint = { command: 'eval', inputs: { ...(opts.fingerprint ?? {}), image: opts.imageOverride === undefined ? 'own' : 'blank' } };
  const out = await openResumableJsonl<PredictionLine>(file, { fingerprint, overwrite: opts.overwrite, knownIds: known });
  const pending = records.filter((r) => !out.done.has(r.id));
  const resumed = records.length - pending.length;
  let done = resumed;
  try {
    for (let i = 0; i < pending.length; i += opts.batchSize) {
      const batch = pending.slice(i, i + opts.batchSize);
      const answers = await predictBatch(predict, batch, opts.imageOverride);
      await Promise.all(batch.map((r, j) => out.write({ id: r.id, dataset: r.dataset ?? 'default', answer_type: r.answer_type, question: r.question, answer: r.answer, prediction: answers[j] })));
      done += batch.length;
      opts.onProgress?.(done, records.length);
    }
  } finally {
    await out.close();
  }
  return { predicted: pending.length, resumed };
}

function outputFiles(opts: EvaluateOptions): { resultsFile: string; predictionsFile: string } {
  const outDir = path.resolve(opts.outDir);
  if (!opts.resultsFile) return { resultsFile: path.join(outDir, 'results.json'), predictionsFile: path.resolve(opts.predictionsFile ?? path.join(outDir, 'predictions.jsonl')) };
  const resultsFile = path.resolve(opts.resultsFile);
  return { resultsFile, predictionsFile: path.resolve(opts.predictionsFile ?? siblingFile(resultsFile, '.predictions.jsonl')) };
}

/** results.json → results.predictions.jsonl, beside it. */
export function siblingFile(file: string, suffix: string): string {
  const ext = path.extname(file);
  return path.join(path.dirname(file), path.basename(file, ext) + suffix);
}

function hasDescriptions(records: VqaRecord[]): boolean {
  return records.some((r) => r.family === 'description' && r.scene !== undefined);
}

/**
 * Evaluates a predictor on records: writes outDir/predictions.jsonl (streamed, resumable) and
 * outDir/results.json, and returns the scores with a Markdown table like the paper's Table 1.
 */
export async function evaluate(records: VqaRecord[], predict: Predictor, opts: EvaluateOptions): Promise<EvaluationResult> {
  checkOptions(records, opts);
  const { resultsFile } = outputFiles(opts);
  const lock = opts.lock === false ? undefined : lockOutput(resultsFile, 'hscr eval');
  try {
    return await evaluateLocked(records, predict, opts);
  } finally {
    lock?.release();
  }
}

async function evaluateLocked(records: VqaRecord[], predict: Predictor, opts: EvaluateOptions): Promise<EvaluationResult> {
  const variant = opts.variant ?? DEFAULT_VARIANT;
  const { resultsFile, predictionsFile } = outputFiles(opts);
  const started = Date.now();
  const { predicted, resumed } = await predictAll(records, predict, opts, predictionsFile);
  const seconds = (Date.now() - started) / 1000;
  const predictions = await loadPredictions(predictionsFile);
  const report: ScoreReport = scorePredictions(records, predictions, variant);
  const hallucination = hasDescriptions(records) ? hallucinationRate(records, predictions) : undefined;
  const table = resultsTable([{ name: opts.name ?? 'hscr', datasets: report.datasets }]);
  const result: EvaluationResult = {
    variant,
    datasets: report.datasets,
    overall: report.overall,
    ...(hallucination ? { hallucination } : {}),
    predicted,
    resumed,
    seconds,
    samplesPerSecond: predicted > 0 && seconds > 0 ? predicted / seconds : null,
    emptyPredictions: report.items.filter((i) => i.prediction.trim() === '').length,
    table,
    predictionsFile,
    resultsFile,
  };
  await writeFileAtomic(resultsFile, JSON.stringify(result, null, 2) + '\n');
  return result;
}

/** A uniform grey square PNG: the "blank image" of image reliance. */
export async function writeBlankImage(file: string, size = 64, level = 0): Promise<string> {
  const png = await sharp({ create: { width: size, height: size, channels: 3, background: { r: level, g: level, b: level } } })
    .png()
    .toBuffer();
  await writeFileAtomic(path.resolve(file), png);
  return path.resolve(file);
}

export interface RelianceDelta {
  /** Closed accuracy with the real image minus with the blank one; null where a side has no such question. */
  closed: number | null;
  /** The same for the open score (recall for the field variants). */
  open: number | null;
}

export interface ImageRelianceResult {
  real: EvaluationResult;
  blank: EvaluationResult;
  datasets: Record<string, RelianceDelta>;
  overall: RelianceDelta;
  relianceFile: string;
}

const diff = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : a - b);

export function relianceOf(real: GroupSummary, blank: GroupSummary): RelianceDelta {
  return { closed: diff(real.closed.accuracy, blank.closed.accuracy), open: diff(real.open.score, blank.open.score) };
}

/**
 * Image reliance: the same evaluation with every image replaced by a blank one; the difference is how much
 * the answers depend on the picture. With results file R.json (default <outDir>/results.json) it writes
 * R.json and R.predictions.jsonl (real images), R.blank.json, R.blank.predictions.jsonl, R.blank.png and
 * R.reliance.json.
 */
export async function evaluateImageReliance(records: VqaRecord[], predict: Predictor, opts: EvaluateOptions & { blankSize?: number }): Promise<ImageRelianceResult> {
  const resultsFile = path.resolve(opts.resultsFile ?? path.join(opts.outDir, 'results.json'));
  checkOptions(records, opts);
  const lock: OutputLock | undefined = opts.lock === false ? undefined : lockOutput(resultsFile, 'hscr eval --image-reliance');
  try {
    return await relianceLocked(records, predict, opts, resultsFile);
  } finally {
    lock?.release();
  }
}

async function relianceLocked(records: VqaRecord[], predict: Predictor, opts: EvaluateOptions & { blankSize?: number }, resultsFile: string): Promise<ImageRelianceResult> {
  const real = await evaluate(records, predict, { ...opts, resultsFile, predictionsFile: undefined, imageOverride: undefined, lock: false });
  const blankImage = await writeBlankImage(siblingFile(resultsFile, '.blank.png'), opts.blankSize ?? 64);
  const blank = await evaluate(records, predict, { ...opts, resultsFile: siblingFile(resultsFile, '.blank.json'), predictionsFile: undefined, imageOverride: blankImage, name: `${opts.name ?? 'hscr'} (blank image)`, lock: false });
  const datasets: Record<string, RelianceDelta> = {};
  for (const d of Object.keys(real.datasets)) datasets[d] = relianceOf(real.datasets[d], blank.datasets[d]);
  const result: ImageRelianceResult = { real, blank, datasets, overall: relianceOf(real.overall, blank.overall), relianceFile: siblingFile(resultsFile, '.reliance.json') };
  await writeFileAtomic(result.relianceFile, JSON.stringify({ variant: real.variant, datasets, overall: result.overall }, null, 2) + '\n');
  return result;
}
