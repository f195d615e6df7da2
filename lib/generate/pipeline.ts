/**
 * `hscr generate`: HSCR's preference data (paper §3.1). For each {id, image, question, answer} record the
 * SFT model is teacher-forced on the answer y_w under both views (sharing one image encoding); the native
 * kernel finds the n sensitive positions and their replacement candidates; buildDispreferred turns them
 * into k dispreferred answers of growing wrongness. One prefs.jsonl line per sample, streamed through the
 * resumable writer (ids already in the output are skipped).
 */
import * as path from 'node:path';
import { HSCR_DEFAULTS } from '../config';
import { loadDataset, recordLine, type DataFormat } from '../data/loaders';
import type { SkipCount, VqaRecord } from '../data/types';
import { mixSeed } from '../data/prng';
import { HscrError, dataError } from '../errors';
import { disposeBundle, encodeRecord, loadBatchImages, loadModelBundle, type LoadBundleOptions, type ModelBundle } from '../model/bundle';
import type { HscrTokenizer } from '../model/tokenizer';
import { fitToContext } from '../model/context';
import { openResumableJsonl, type TruncatedTail } from '../util/jsonl-writer';
import { checkInputFile, checkInputFolder, checkOutputFile, folderFingerprint, lockOutput, sha256FileSync } from '../util/output';
import { createProgress } from '../util/progress';
import { modelContrastive, toKernelOutput, type ContrastiveBatchRow, type ModelContrastiveOptions, type ModelContrastiveRow } from './contrastive';
import { buildDispreferred, type ReplacementSchedule } from './dispreferred';
import type { Candidate, PrefRecord } from './types';

/** 'ranked': k answers of growing wrongness (MLPO); 'binary': only the most replaced one (the DPO baseline). */
export type GenerateMode = 'ranked' | 'binary';

export interface GenerateOptions extends Omit<ModelContrastiveOptions, 'debugLogits'> {
  /** Dispreferred answers per sample (default HSCR_DEFAULTS.k). */
  k?: number;
  schedule?: ReplacementSchedule;
  mode?: GenerateMode;
  /** Samples per forward pass (each runs twice, once per view). */
  batchSize?: number;
  /** The first `limit` records of the input are used (default HSCR_DEFAULTS.samples). */
  limit?: number;
  /** Keep only sensitive positions whose shift is > 0 (default HSCR_DEFAULTS.positiveShiftsOnly). */
  positiveShiftsOnly?: boolean;
  quiet?: boolean;
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Shorten questions that do not fit the model's context (default: E_DATA naming file, line and length). */
  truncate?: boolean;
  /** Start over: prefs already in the output (and their fingerprint) are removed first. */
  overwrite?: boolean;
  /** What made the model and data (hashes), recorded with the settings beside the output. */
  fingerprint?: Record<string, unknown>;
  /** Take the output's lock (default true; false when the caller holds it). */
  lock?: boolean;
}

export interface GenerateCounts {
  /** Records the loader returned. */
  records: number;
  /** Of those, the ones within the limit. */
  selected: number;
  /** Selected samples already in the output, skipped. */
  resumed: number;
  /** Samples written by this run. */
  written: number;
  /** candidatesHistogram[m] = samples of this run with m dispreferred answers. */
  candidatesHistogram: number[];
  /** Samples of this run with fewer dispreferred answers than asked for (k, or 1 in binary mode). */
  shortOfK: number;
  /** What the loader skipped, by reason. */
  skipped: SkipCount[];
  truncated?: TruncatedTail;
  /** Questions shortened to fit the context (--truncate). */
  shortened: number;
}

interface Encoded {
  record: VqaRecord;
  promptIds: number[];
  answerIds: number[];
  eligible: number[];
}

const BYTE_TOKEN = /^<0x[0-9A-Fa-f]{2}>$/;
/** Nothing but whitespace, punctuation or symbols once SentencePiece's word marker is taken off. */
const NO_WORD = /^[\s\p{P}\p{S}]*$/u;

/**
 * Which answer tokens may be sensitive: not special tokens (BOS/EOS/PAD/UNK, template markers) and not
 * tokens without a letter or digit (punctuation, whitespace, byte pieces): swapping those changes how an
 * answer reads, not what it says about the image.
 */
export function eligibleMask(tokenizer: HscrTokenizer, answerIds: readonly number[]): number[] {
  const word = wordTokenScreen(tokenizer);
  return answerIds.map((id) => (word(id) ? 1 : 0));
}

/**
 * True for tokens that carry a word: not special, not punctuation/whitespace/byte pieces. The same screen
 * serves the sensitive positions (eligibleMask) and the replacement tokens, so that a dispreferred answer
 * never differs from y_w by a "!" or "=" (a model learns to avoid junk, not to look at the image).
 */
export function wordTokenScreen(tokenizer: HscrTokenizer): (id: number) => boolean {
  const special = new Set([tokenizer.bosId, tokenizer.eosId, tokenizer.padId, tokenizer.unkId]);
  const cache = new Map<number, boolean>();
  return (id) => {
    let ok = cache.get(id);
    if (ok === undefined) {
      const text = special.has(id) || tokenizer.isSpecial(id) ? '' : tokenizer.tokenText(id);
      ok = text !== '' && !BYTE_TOKEN.test(text) && !NO_WORD.test(text.replace(/\u2581/g, ''));
      cache.set(id, ok);
    }
    return ok;
  };
}

/**
 * Sensitive positions with a positive shift only (the default): a position where the image makes the token
 * LESS likely is not modality-coupled in the paper's sense. The kernel returns the top n by shift over all
 * eligible positions, so on short answers it fills n with image-indifferent tokens; dropping those keeps the
 * replacements on tokens the image actually props up (fewer than n when fewer have a positive shift).
 */
export function positiveShifts(row: ModelContrastiveRow): ModelContrastiveRow {
  const keep = row.shifts.map((s, i) => (s > 0 ? i : -1)).filter((i) => i >= 0);
  if (keep.length === row.shifts.length) return row;
  return { ...row, positions: keep.map((i) => row.positions[i]), shifts: keep.map((i) => row.shifts[i]), candidates: keep.map((i) => row.candidates[i]), scores: keep.map((i) => row.scores[i]) };
}

/** A sample's drop seed: from the run's seed and the sample id, so batching and resuming never change it. */
export function sampleSeed(seed: number, id: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(id, 'utf8')) h = Math.imul(h ^ byte, 0x01000193);
  return mixSeed(seed >>> 0, h >>> 0);
}

function checkOptions(opts: GenerateOptions): Required<Pick<GenerateOptions, 'k' | 'schedule' | 'mode' | 'batchSize' | 'limit'>> {
  const k = opts.k ?? HSCR_DEFAULTS.k;
  const batchSize = opts.batchSize ?? 8;
  const limit = opts.limit ?? HSCR_DEFAULTS.samples;
  const schedule = opts.schedule ?? HSCR_DEFAULTS.dispreferredSchedule;
  const mode = opts.mode ?? 'ranked';
  for (const [name, v] of [['k', k], ['batchSize', batchSize], ['limit', limit]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new HscrError(`generate: ${name} must be a positive integer`, 'E_ARG', v);
  }
  if (schedule !== 'spread' && schedule !== 'prefix') throw new HscrError("generate: schedule must be 'spread' or 'prefix'", 'E_ARG', schedule);
  if (mode !== 'ranked' && mode !== 'binary') throw new HscrError("generate: mode must be 'ranked' or 'binary'", 'E_ARG', mode);
  return { k, schedule, mode, batchSize, limit };
}

/** Tokenises every record before anything is written, so bad data stops the run with the output untouched. */
function encodeAll(records: VqaRecord[], gen: ModelBundle, source: string): Encoded[] {
  return records.map((record) => {
    let ids;
    try {
      ids = encodeRecord(gen, record);
    } catch (e) {
      throw dataError(source, undefined, 'answer', `record "${record.id}": ${(e as Error).message}`, record.answer);
    }
    return { record, ...ids, eligible: eligibleMask(gen.tokenizer, ids.answerIds) };
  });
}

function checkImageSize(gen: ModelBundle): void {
  const { cropHeight, cropWidth, doCenterCrop } = gen.preprocessing;
  const size = gen.model.config.vision.imageSize;
  if (!doCenterCrop || cropHeight !== size || cropWidth !== size) {
    throw new HscrError(`the image preprocessing gives ${cropWidth}×${cropHeight} crops but the vision tower takes ${size}×${size}`, 'E_CONFIG', {
      cropWidth,
      cropHeight,
      size,
    });
  }
}

/** One forward pass over a chunk: each distinct image is decoded and encoded once. */
async function scoreChunk(chunk: Encoded[], gen: ModelBundle, opts: GenerateOptions): Promise<ModelContrastiveRow[]> {
  const { pixels, index } = await loadBatchImages(
    gen,
    chunk.map((e) => e.record.image),
  );
  const rows: ContrastiveBatchRow[] = chunk.map((e, i) => ({
    image: index[i],
    prompt: e.promptIds,
    answer: e.answerIds,
    eligible: e.eligible,
    seed: sampleSeed(opts.seed ?? 0, e.record.id),
  }));
  try {
    return await modelContrastive(gen.model, { pixels, rows }, opts);
  } finally {
    pixels.dispose();
  }
}

function prefRecord(e: Encoded, row: ModelContrastiveRow, candidates: Candidate[], tokenizer: HscrTokenizer): PrefRecord {
  const { id, image, question, answer, answer_type, dataset } = e.record;
  return {
    id,
    image,
    question,
    chosen: answer,
    candidates,
    answer_type,
    ...(dataset !== undefined ? { dataset } : {}),
    // For inspection: the answer's tokens and where the image mattered most.
    tokens: e.answerIds.map((t) => tokenizer.tokenText(t)),
    sensitive: row.positions.map((position, s) => ({ position, token: tokenizer.tokenText(e.answerIds[position]), shift: row.shifts[s] })),
  };
}

function dispreferred(e: Encoded, row: ModelContrastiveRow, tokenizer: HscrTokenizer, k: number, schedule: ReplacementSchedule, mode: GenerateMode): Candidate[] {
  const decode = (ids: number[]) => tokenizer.decode(ids, { skipSpecial: true }).trim();
  const all = buildDispreferred(toKernelOutput(e.answerIds, row), decode, (id) => tokenizer.tokenText(id), { k, schedule, usable: wordTokenScreen(tokenizer) });
  return mode === 'binary' ? all.slice(-1) : all;
}

/** The settings that shape every line of prefs.jsonl (batching, device and limit do not). */
function settingsOf(opts: GenerateOptions, k: number, schedule: ReplacementSchedule, mode: GenerateMode): Record<string, unknown> {
  const { n, beta, ratio, perturb, seed, alpha, candidates, plausibility, truncate } = opts as GenerateOptions & Record<string, unknown>;
  return { n, beta, k, ratio, perturb, seed, alpha, candidates, plausibility, schedule, mode, truncate: Boolean(truncate) };
}

/** Generates prefs for `records` into outPath (appending; ids already there are skipped). */
export async function generatePreferences(gen: ModelBundle, records: VqaRecord[], outPath: string, opts: GenerateOptions = {}, source = '<records>'): Promise<GenerateCounts> {
  const { k, schedule, mode, batchSize, limit } = checkOptions(opts);
  checkImageSize(gen);
  const fitted = fitToContext(gen, records.slice(0, limit), { source, lineOf: (i) => recordLine(records[i]), truncate: opts.truncate });
  const selected = fitted.records;
  const encoded = encodeAll(selected, gen, source);
  const fingerprint = { command: 'generate', inputs: { ...(opts.fingerprint ?? {}), ...settingsOf(opts, k, schedule, mode) } };
  const knownIds = new Set(records.map((r) => r.id));
  const out = await openResumableJsonl<PrefRecord>(outPath, { fingerprint, knownIds, overwrite: opts.overwrite, lock: opts.lock === false ? false : 'hscr generate' });
  const todo = encoded.filter((e) => !out.done.has(e.record.id));
  const counts: GenerateCounts = {
    records: records.length,
    selected: selected.length,
    resumed: selected.length - todo.length,
    written: 0,
    candidatesHistogram: [],
    shortOfK: 0,
    skipped: [],
    truncated: out.truncated,
    shortened: fitted.truncated.length,
  };
  const progress = createProgress({ label: 'generate', total: selected.length, start: counts.resumed, quiet: opts.quiet, stream: opts.progressStream });
  try {
    for (let i = 0; i < todo.length; i += batchSize) {
      const chunk = todo.slice(i, i + batchSize);
      const positiveOnly = opts.positiveShiftsOnly ?? HSCR_DEFAULTS.positiveShiftsOnly;
      const rows = (await scoreChunk(chunk, gen, opts)).map((r) => (positiveOnly ? positiveShifts(r) : r));
      for (let j = 0; j < chunk.length; j++) {
        const candidates = dispreferred(chunk[j], rows[j], gen.tokenizer, k, schedule, mode);
        await out.write(prefRecord(chunk[j], rows[j], candidates, gen.tokenizer));
        count(counts, candidates.length, mode === 'binary' ? 1 : k);
      }
      progress.tick(chunk.length);
    }
  } finally {
    progress.stop();
    await out.close();
  }
  return counts;
}

function count(counts: GenerateCounts, made: number, wanted: number): void {
  while (counts.candidatesHistogram.length <= made) counts.candidatesHistogram.push(0);
  counts.candidatesHistogram[made]++;
  counts.written++;
  if (made < wanted) counts.shortOfK++;
}

export interface GenerateFileOptions extends GenerateOptions, LoadBundleOptions {
  format?: DataFormat | 'auto';
  imageRoot?: string;
}

/** generateFile's one-object form: the files and the settings together. */
export interface GenerateFileRequest extends GenerateFileOptions {
  /** The SFT model folder. */
  model: string;
  /** Records {id, image, question, answer}: JSONL or any benchmark format lib/data reads. */
  data: string;
  /** prefs.jsonl to write (resumed when it exists). */
  out: string;
}

/**
 * `hscr generate`: loads the model folder and any data file lib/data reads, then generatePreferences.
 * Call it as `generateFile({ model, data, out, ...options })`; the positional form is kept for old callers.
 */
export async function generateFile(request: GenerateFileRequest): Promise<GenerateCounts>;
export async function generateFile(modelDir: string, dataFile: string, outPath: string, opts?: GenerateFileOptions): Promise<GenerateCounts>;
export async function generateFile(
  first: string | GenerateFileRequest,
  dataArg?: string,
  outArg?: string,
  optsArg: GenerateFileOptions = {},
): Promise<GenerateCounts> {
  const request = typeof first === 'string' ? { ...optsArg, model: first, data: dataArg as string, out: outArg as string } : first;
  if (request === null || typeof request !== 'object') throw new HscrError('generateFile: expected { model, data, out, ...options }', 'E_ARG', request);
  for (const key of ['model', 'data', 'out'] as const) {
    if (typeof request[key] !== 'string' || request[key] === '') throw new HscrError(`generateFile: ${key} must be a path`, 'E_ARG', request[key]);
  }
  const { model: modelDir, data: dataFile, out: outPath, ...opts } = request;
  checkOptions(opts);
  checkInputFolder(modelDir, '--model');
  checkInputFile(dataFile, '--data');
  checkOutputFile(outPath);
  // Taken before the slow loading, so a second writer is refused at once.
  const lock = lockOutput(outPath, 'hscr generate');
  try {
    const fingerprint = {
      model: folderFingerprint(modelDir),
      data: sha256FileSync(dataFile),
      format: opts.format ?? 'auto',
      imageRoot: opts.imageRoot ? path.resolve(opts.imageRoot) : null,
      dtype: opts.dtype ?? null,
    };
    const data = await loadDataset(dataFile, { format: opts.format, imageRoot: opts.imageRoot });
    const gen = await loadModelBundle(modelDir, { device: opts.device, dtype: opts.dtype, visionTowerDir: opts.visionTowerDir, allowNonFinite: opts.allowNonFinite });
    try {
      const counts = await generatePreferences(gen, data.records, outPath, { ...opts, fingerprint, lock: false }, dataFile);
      return { ...counts, skipped: data.skipped };
    } finally {
      disposeBundle(gen);
    }
  } finally {
    lock.release();
  }
}
