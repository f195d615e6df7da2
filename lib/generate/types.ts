/**
 * Record schemas of HSCR's preference data (paper §3.1–3.2) and the plain-data output of the native
 * contrastive kernel. prefs.jsonl is written by `hscr generate`, ranked.jsonl by `hscr rerank`; both keep
 * any extra fields a record carries (tokens, shifts, sensitive, …) so a run can be inspected afterwards.
 */
import { RawRecord } from '../data/fields';
import { dataError } from '../errors';
import { fromTrl, isTrlRecord } from './trl';

/** One token swapped into y_w to make a dispreferred answer. */
export interface Replacement {
  /** Index into the answer's token list (the kernel's answerTokenIds). */
  position: number;
  /** Token string replaced (the ground-truth token). */
  from: string;
  /** Token string put in its place. */
  to: string;
  /** Contrastive score of `to` at this position (lower = less supported by the image). */
  score: number;
  /** Token ids of `from` and `to`; hscr always writes them, other producers may leave them out. */
  fromId?: number;
  toId?: number;
}

/** A dispreferred answer y_l and the replacements that made it. */
export interface Candidate {
  text: string;
  replacements: Replacement[];
}

/** A dispreferred answer after re-ranking, with its similarity to y_w. */
export interface RankedCandidate extends Candidate {
  similarity: number;
}

/** The fields every preference record shares. */
export interface PreferenceSample {
  id: string;
  image: string;
  question: string;
  /** The preferred answer y_w (the ground truth). */
  chosen: string;
}

/** One line of prefs.jsonl. */
export interface PrefRecord extends PreferenceSample {
  candidates: Candidate[];
  [extra: string]: unknown;
}

/** One line of ranked.jsonl: `rejected` in rank order (most similar to y_w first) instead of `candidates`. */
export interface RankedRecord extends PreferenceSample {
  rejected: RankedCandidate[];
  [extra: string]: unknown;
}

/**
 * What the native kernel returns per sample. Full-vocabulary logits never reach JS; only this does.
 * `positions` are the sensitive positions, most sensitive first; `shifts`, `candidates` and `scores` are
 * per sensitive position, candidates (replacement token ids) in ascending contrastive score.
 */
export interface KernelOutput {
  answerTokenIds: number[];
  positions: number[];
  shifts: number[];
  candidates: number[][];
  scores: number[][];
}

/** Where a record came from, for E_DATA messages. */
export interface RecordSource {
  file: string;
  line: number;
  /** 0-based record number in the file. */
  index: number;
}

type Fields = Record<string, unknown>;

function isObject(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requireString(obj: Fields, key: string, field: string, src: RecordSource): string {
  const value = obj[key];
  if (typeof value !== 'string') throw dataError(src.file, src.line, field, 'expected a string', value);
  return value;
}

function requireNumber(obj: Fields, key: string, field: string, src: RecordSource, integer: boolean): number {
  const value = obj[key];
  const ok = typeof value === 'number' && Number.isFinite(value) && (!integer || (Number.isInteger(value) && value >= 0));
  if (!ok) throw dataError(src.file, src.line, field, integer ? 'expected a non-negative integer' : 'expected a finite number', value);
  return value as number;
}

function requireArray(obj: Fields, key: string, field: string, src: RecordSource): unknown[] {
  const value = obj[key];
  if (!Array.isArray(value)) throw dataError(src.file, src.line, field, 'expected an array', value);
  return value;
}

function parseReplacement(value: unknown, field: string, src: RecordSource): Replacement {
  if (!isObject(value)) throw dataError(src.file, src.line, field, 'expected an object', value);
  const replacement: Replacement = {
    position: requireNumber(value, 'position', `${field}.position`, src, true),
    from: requireString(value, 'from', `${field}.from`, src),
    to: requireString(value, 'to', `${field}.to`, src),
    score: requireNumber(value, 'score', `${field}.score`, src, false),
  };
  for (const key of ['fromId', 'toId'] as const) {
    if (value[key] !== undefined) replacement[key] = requireNumber(value, key, `${field}.${key}`, src, true);
  }
  return replacement;
}

/** Validates a candidate, keeping any extra fields it carries. */
function parseCandidate(value: unknown, field: string, src: RecordSource): Candidate {
  if (!isObject(value)) throw dataError(src.file, src.line, field, 'expected an object', value);
  const text = requireString(value, 'text', `${field}.text`, src);
  const replacements = requireArray(value, 'replacements', `${field}.replacements`, src).map((r, i) =>
    parseReplacement(r, `${field}.replacements[${i}]`, src),
  );
  return { ...value, text, replacements };
}

/** The shared fields, read like the data loaders read theirs (an integer id becomes its decimal string). */
function parseSample(value: unknown, src: RecordSource): Fields & PreferenceSample {
  const raw = RawRecord.of(src.file, src.line, src.index, value);
  return { ...raw.value, id: raw.id('id'), image: raw.text('image'), question: raw.text('question'), chosen: raw.text('chosen') };
}

/** Checks one parsed prefs.jsonl line; E_DATA naming file, line and field (e.g. `candidates[2].text`). */
export function parsePrefRecord(value: unknown, src: RecordSource): PrefRecord {
  const sample = parseSample(value, src);
  const candidates = requireArray(sample, 'candidates', 'candidates', src).map((c, i) => parseCandidate(c, `candidates[${i}]`, src));
  return { ...sample, candidates };
}

/** Checks one parsed ranked.jsonl line, as the trainer reads it; a TRL preference line is read too (see trl.ts). */
export function parseRankedRecord(value: unknown, src: RecordSource): RankedRecord {
  if (isTrlRecord(value)) return fromTrl(value, src);
  const sample = parseSample(value, src);
  const rejected = requireArray(sample, 'rejected', 'rejected', src).map((c, i) => {
    const field = `rejected[${i}]`;
    const candidate = parseCandidate(c, field, src);
    return { ...candidate, similarity: requireNumber(c as Fields, 'similarity', `${field}.similarity`, src, false) };
  });
  return { ...sample, rejected };
}
