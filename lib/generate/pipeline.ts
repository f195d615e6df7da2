/**
 * `hscr generate`: HSCR's preference data (paper §3.1). For each {id, image, question, answer} record the
 * SFT model is teacher-forced on the answer y_w under both views in one batched forward pass; the native
 * kernel finds the n sensitive positions and their replacement candidates; buildDispreferred turns them
 * into k dispreferred answers of growing wrongness. One prefs.jsonl line per sample, streamed through the
 * resumable writer (ids already in the output are skipped).
 */
import { HSCR_DEFAULTS } from '../config';
import { loadDataset, type DataFormat } from '../data/loaders';
import type { SkipCount, VqaRecord } from '../data/types';
import { mixSeed } from '../data/prng';
import { HscrError, dataError } from '../errors';
import { disposeBundle, encodeRecord, loadBatchImages, loadModelBundle, type LoadBundleOptions, type ModelBundle } from '../model/bundle';
import type { HscrTokenizer } from '../model/tokenizer';
import { openResumableJsonl, type TruncatedTail } from '../util/jsonl-writer';
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
  quiet?: boolean;
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean };
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
  const special = new Set([tokenizer.bosId, tokenizer.eosId, tokenizer.padId, tokenizer.unkId]);
  return answerIds.map((id) => {
    if (special.has(id) || tokenizer.isSpecial(id)) return 0;
    const text = tokenizer.tokenText(id);
    return BYTE_TOKEN.test(text) || NO_WORD.test(text.replace(/\u2581/g, '')) ? 0 : 1;
  });
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
  const all = buildDispreferred(toKernelOutput(e.answerIds, row), decode, (id) => tokenizer.tokenText(id), { k, schedule });
  return mode === 'binary' ? all.slice(-1) : all;
}

/** Generates prefs for `records` into outPath (appending; ids already there are skipped). */
export async function generatePreferences(gen: ModelBundle, records: VqaRecord[], outPath: string, opts: GenerateOptions = {}, source = '<records>'): Promise<GenerateCounts> {
  const { k, schedule, mode, batchSize, limit } = checkOptions(opts);
  checkImageSize(gen);
  const selected = records.slice(0, limit);
  const encoded = encodeAll(selected, gen, source);
  const out = await openResumableJsonl<PrefRecord>(outPath);
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
  };
  const progress = createProgress({ label: 'generate', total: selected.length, start: counts.resumed, quiet: opts.quiet, stream: opts.progressStream });
  try {
    for (let i = 0; i < todo.length; i += batchSize) {
      const chunk = todo.slice(i, i + batchSize);
      const rows = await scoreChunk(chunk, gen, opts);
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

/** `hscr generate`: loads the model folder and any data file lib/data reads, then generatePreferences. */
export async function generateFile(modelDir: string, dataFile: string, outPath: string, opts: GenerateFileOptions = {}): Promise<GenerateCounts> {
  checkOptions(opts);
  const data = await loadDataset(dataFile, { format: opts.format, imageRoot: opts.imageRoot });
  const gen = await loadModelBundle(modelDir, { device: opts.device, dtype: opts.dtype, visionTowerDir: opts.visionTowerDir, allowNonFinite: opts.allowNonFinite });
  try {
    const counts = await generatePreferences(gen, data.records, outPath, opts, dataFile);
    return { ...counts, skipped: data.skipped };
  } finally {
    disposeBundle(gen);
  }
}
