/**
 * Loaders for the benchmarks' own formats (VQA-RAD, SLAKE, PathVQA, LLaVA-Med's eval/instruct files) and
 * for hscr's JSONL (the phantom benchmark's). Each returns the common VqaRecord and counts what it skipped;
 * malformed input is E_DATA naming file, line and field.
 */
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { HscrError } from '../errors';
import { ImageCheck, RawRecord, inferAnswerType, resolveImage, type MissingImagePolicy } from './fields';
import { readJsonArray, readJsonl, type LineRecord } from './jsonl';
import { SkipTally, type LoadResult, type VqaRecord } from './types';

export const DATA_FORMATS = ['vqa-rad', 'slake', 'pathvqa', 'llava-med', 'hscr'] as const;
export type DataFormat = (typeof DATA_FORMATS)[number];

export interface LoadOptions {
  /** Folder the records' image names are relative to (each format has its own default, see the loaders). */
  imageRoot?: string;
  /**
   * A record whose image is missing: an E_DATA error (default), a counted skip (e.g. SLAKE's train split
   * ships without images), or 'ignore' to keep it without looking (scoring needs no pixels).
   */
  missingImage?: MissingImagePolicy;
  /** Overrides the dataset name written into each record. */
  dataset?: string;
}

export interface FormatLoadResult extends LoadResult {
  format: DataFormat;
}

/** Reads a JSON array or JSON Lines, whichever the file holds. */
export async function readRecords(file: string): Promise<LineRecord[]> {
  const head = await firstChar(file);
  if (head === '[') return readJsonArray(file);
  const out: LineRecord[] = [];
  for await (const rec of readJsonl(file)) out.push(rec);
  return out;
}

async function firstChar(file: string): Promise<string> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(file, 'r');
  } catch (err) {
    throw new HscrError(`${file}: cannot read: ${(err as Error).message}`, 'E_IO', file);
  }
  try {
    const buf = Buffer.alloc(4096);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString('utf8').replace(/^\uFEFF/, '').trimStart().charAt(0);
  } finally {
    await handle.close();
  }
}

/** The line each loaded record starts on in its file (records are the loaders' own objects). */
const RECORD_LINES = new WeakMap<VqaRecord, number>();

/** The line a loaded record starts on in its file, for messages about it; undefined for records made elsewhere. */
export function recordLine(record: VqaRecord): number | undefined {
  return RECORD_LINES.get(record);
}

/** Collects records, checking images and ids, and counting skips. */
class Collector {
  readonly records: VqaRecord[] = [];
  readonly skipped = new SkipTally();
  private readonly images = new ImageCheck();
  private readonly ids = new Map<string, number>();

  constructor(private readonly policy: MissingImagePolicy) {}

  add(raw: RawRecord, imageField: string, rec: VqaRecord, idField = 'id'): void {
    if (rec.answer.trim() === '') return this.skipped.add('empty answer');
    if (this.policy !== 'ignore' && !this.images.exists(rec.image)) {
      if (this.policy === 'skip') return this.skipped.add('image file missing');
      throw raw.fail(imageField, `image file not found: ${rec.image}`, rec.image);
    }
    const earlier = this.ids.get(rec.id);
    if (earlier !== undefined) throw raw.fail(idField, `id "${rec.id}" already used by record ${earlier + 1}`, rec.id);
    this.ids.set(rec.id, raw.index);
    RECORD_LINES.set(rec, raw.line);
    this.records.push(rec);
  }

  result(format: DataFormat): FormatLoadResult {
    return { format, records: this.records, loaded: this.records.length, skipped: this.skipped.list() };
  }
}

function firstExisting(candidates: string[]): string {
  return candidates.find((c) => existsSync(c)) ?? candidates[candidates.length - 1];
}

async function rawRecords(file: string): Promise<RawRecord[]> {
  return (await readRecords(file)).map((r, i) => RawRecord.of(file, r.line, i, r.value));
}

/**
 * VQA-RAD (`VQA_RAD Dataset Public.json`, or the trainset.json/testset.json split): `qid`, `image_name`,
 * `question`, `answer`, `answer_type`. Images: `images/` beside the file, else `VQA_RAD Image Folder/`.
 */
export async function loadVqaRad(file: string, opts: LoadOptions = {}): Promise<FormatLoadResult> {
  const dir = path.dirname(path.resolve(file));
  const root = opts.imageRoot ?? firstExisting([path.join(dir, 'images'), path.join(dir, 'VQA_RAD Image Folder'), dir]);
  const out = new Collector(opts.missingImage ?? 'error');
  for (const raw of await rawRecords(file)) {
    out.add(raw, 'image_name', {
      id: raw.id('qid'),
      image: resolveImage(root, raw.text('image_name')),
      question: raw.text('question'),
      answer: raw.maybeEmpty('answer'),
      answer_type: raw.answerType('answer_type'),
      dataset: opts.dataset ?? 'vqa-rad',
    }, 'qid');
  }
  return out.result('vqa-rad');
}

/**
 * SLAKE (`train.json`, `validate.json`, `test.json`): English records only (`q_lang` "en"; the others are
 * counted as skipped). Images: `imgs/<img_name>` beside the file.
 */
export async function loadSlake(file: string, opts: LoadOptions = {}): Promise<FormatLoadResult> {
  const dir = path.dirname(path.resolve(file));
  const root = opts.imageRoot ?? path.join(dir, 'imgs');
  const out = new Collector(opts.missingImage ?? 'error');
  for (const raw of await rawRecords(file)) {
    const lang = raw.text('q_lang');
    if (lang !== 'en') {
      out.skipped.add(`q_lang "${lang}" (English only)`);
      continue;
    }
    out.add(raw, 'img_name', {
      id: raw.id('qid'),
      image: resolveImage(root, raw.text('img_name')),
      question: raw.text('question'),
      answer: raw.maybeEmpty('answer'),
      answer_type: raw.answerType('answer_type'),
      dataset: opts.dataset ?? 'slake',
      ...(raw.has('modality') ? { modality: raw.text('modality') } : {}),
    }, 'qid');
  }
  return out.result('slake');
}

function pathvqaLists(raw: RawRecord): { questions: unknown[]; labels: unknown[] } {
  const list = (field: string): unknown[] => {
    const holder = raw.value[field];
    if (typeof holder !== 'object' || holder === null) throw raw.fail(field, 'missing or not an object', holder);
    const inner = (holder as Record<string, unknown>).pvqa;
    if (!Array.isArray(inner)) throw raw.fail(`${field}.pvqa`, 'missing or not an array', inner);
    return inner;
  };
  const questions = list('sentf');
  const labels = list('labelf');
  if (questions.length !== labels.length) throw raw.fail('labelf.pvqa', `${labels.length} answers for ${questions.length} questions`);
  return { questions, labels };
}

function pathvqaAnswer(raw: RawRecord, label: unknown, i: number): string {
  const field = `labelf.pvqa[${i}]`;
  if (typeof label !== 'object' || label === null || Array.isArray(label)) throw raw.fail(field, 'must be an object {answer: score}', label);
  const keys = Object.keys(label);
  if (keys.length !== 1 || keys[0].trim() === '') throw raw.fail(field, `must hold exactly one answer, has ${keys.length}`, label);
  return keys[0];
}

/**
 * PathVQA in its released LXMERT split format (`pvqa_{train,val,test}.json`): one record per image,
 * `sentf.pvqa[i]` the questions, `labelf.pvqa[i]` = {answer: 1}. No answer type is stored: yes/no answers
 * are closed. Images: `images/<split>/<img_id>.jpg` beside the file (the release's naming).
 */
export async function loadPathVqa(file: string, opts: LoadOptions = {}): Promise<FormatLoadResult> {
  const dir = path.dirname(path.resolve(file));
  const root = opts.imageRoot ?? path.join(dir, 'images');
  const out = new Collector(opts.missingImage ?? 'error');
  for (const raw of await rawRecords(file)) {
    const imgId = raw.text('img_id');
    const { questions, labels } = pathvqaLists(raw);
    if (questions.length === 0) out.skipped.add('image record without questions');
    const split = imgId.includes('_') ? imgId.slice(0, imgId.indexOf('_')) : '';
    const image = firstExisting([resolveImage(root, path.join(split, `${imgId}.jpg`)), resolveImage(root, `${imgId}.jpg`)]);
    questions.forEach((q, i) => {
      if (typeof q !== 'string' || q.trim() === '') throw raw.fail(`sentf.pvqa[${i}]`, 'must be a non-empty string', q);
      const answer = pathvqaAnswer(raw, labels[i], i);
      out.add(raw, 'img_id', { id: `${imgId}_${i}`, image, question: q, answer, answer_type: inferAnswerType(answer), dataset: opts.dataset ?? 'pathvqa' });
    });
  }
  return out.result('pathvqa');
}

interface Turn {
  question: string;
  answer: string;
}

/** LLaVA's prompt carries an `<image>` placeholder; the question is the text around it. */
function stripImageToken(text: string): string {
  return text.replace(/<image>/g, '').trim();
}

function conversationTurns(raw: RawRecord): Turn[] {
  const field = raw.has('conversations') ? 'conversations' : 'conversatons';
  const conv = raw.value[field];
  if (!Array.isArray(conv)) throw raw.fail(field, 'must be an array of {from, value}', conv);
  const turns: Turn[] = [];
  for (let i = 0; i + 1 < conv.length; i += 2) {
    const [human, gpt] = [conv[i], conv[i + 1]] as { from?: unknown; value?: unknown }[];
    if (human?.from !== 'human' || typeof human.value !== 'string') throw raw.fail(`${field}[${i}]`, 'expected {from: "human", value: string}', human);
    if (gpt?.from !== 'gpt' || typeof gpt.value !== 'string') throw raw.fail(`${field}[${i + 1}]`, 'expected {from: "gpt", value: string}', gpt);
    turns.push({ question: stripImageToken(human.value), answer: gpt.value });
  }
  if (turns.length === 0) throw raw.fail(field, 'holds no question/answer pair', conv);
  return turns;
}

function llavaTurns(raw: RawRecord): Turn[] {
  if (raw.has('conversations') || raw.has('conversatons')) return conversationTurns(raw);
  const answerField = ['answer', 'gpt4_answer', 'gt_answer'].find((f) => raw.has(f)) ?? 'answer';
  return [{ question: stripImageToken(raw.text('text')), answer: raw.text(answerField) }];
}

/**
 * LLaVA-Med's eval and instruct files (JSON array or JSONL): `question_id` or `id`, `image`, and either
 * `conversations` (human/gpt turns; a multi-turn record gives one record per turn, id `<id>#<turn>`) or
 * `text` with `answer`/`gpt4_answer`. `answer_type` OPEN/CLOSED when present, else yes/no answers are
 * closed. Images: relative to the file's folder unless imageRoot is given.
 */
export async function loadLlavaMed(file: string, opts: LoadOptions = {}): Promise<FormatLoadResult> {
  const root = opts.imageRoot ?? path.dirname(path.resolve(file));
  const out = new Collector(opts.missingImage ?? 'error');
  for (const raw of await rawRecords(file)) {
    const id = raw.id(raw.has('question_id') ? 'question_id' : 'id');
    const image = resolveImage(root, raw.text('image'));
    const turns = llavaTurns(raw);
    const typed = raw.has('answer_type') ? raw.answerType('answer_type') : undefined;
    turns.forEach((t, i) => {
      const recId = turns.length === 1 ? id : `${id}#${i + 1}`;
      const rec = { id: recId, image, question: t.question, answer: t.answer, answer_type: typed ?? inferAnswerType(t.answer), dataset: opts.dataset ?? 'llava-med' };
      out.add(raw, 'image', rec, raw.has('question_id') ? 'question_id' : 'id');
    });
  }
  return out.result('llava-med');
}

function hscrScene(raw: RawRecord): Pick<VqaRecord, 'scene'> {
  if (!raw.has('scene')) return {};
  const scene = raw.value.scene as VqaRecord['scene'];
  if (typeof scene !== 'object' || !Array.isArray(scene?.findings)) throw raw.fail('scene', 'must be an object with a findings array', scene);
  return { scene };
}

/** hscr's own JSONL (what `hscr phantom` writes): the VqaRecord fields; images relative to the file's folder. */
export async function loadHscr(file: string, opts: LoadOptions = {}): Promise<FormatLoadResult> {
  const root = opts.imageRoot ?? path.dirname(path.resolve(file));
  const out = new Collector(opts.missingImage ?? 'error');
  for (const raw of await rawRecords(file)) {
    const optional = (field: 'dataset' | 'modality' | 'family') => (raw.has(field) ? { [field]: raw.text(field) } : {});
    out.add(raw, 'image', {
      id: raw.id('id'),
      image: resolveImage(root, raw.text('image')),
      question: raw.text('question'),
      answer: raw.maybeEmpty('answer'),
      // Plain {id, image, question, answer} records (the documented input of generate/logprobs) carry no type.
      answer_type: raw.has('answer_type') ? raw.answerType('answer_type') : inferAnswerType(raw.maybeEmpty('answer')),
      ...optional('modality'),
      ...optional('family'),
      ...hscrScene(raw),
      dataset: opts.dataset ?? (raw.has('dataset') ? raw.text('dataset') : 'hscr'),
    });
  }
  return out.result('hscr');
}

/** Guesses the format from the first record's fields. */
export async function detectFormat(file: string): Promise<DataFormat> {
  const records = await readRecords(file);
  const first = records[0]?.value;
  if (typeof first !== 'object' || first === null) throw new HscrError(`${file}: cannot tell the format of an empty file or a non-object record; pass --format`, 'E_DATA', file);
  const has = (k: string) => k in first;
  if (has('image_name') && has('qid')) return 'vqa-rad';
  if (has('img_name') && has('q_lang')) return 'slake';
  if (has('sentf') && has('labelf')) return 'pathvqa';
  if (has('conversations') || has('conversatons') || (has('text') && has('image'))) return 'llava-med';
  if (has('id') && has('image') && has('question') && has('answer')) return 'hscr';
  throw new HscrError(`${file}: cannot tell the format from the fields (${Object.keys(first).slice(0, 8).join(', ')}); pass --format`, 'E_DATA', file);
}

const LOADERS: Record<DataFormat, (file: string, opts?: LoadOptions) => Promise<FormatLoadResult>> = {
  'vqa-rad': loadVqaRad,
  slake: loadSlake,
  pathvqa: loadPathVqa,
  'llava-med': loadLlavaMed,
  hscr: loadHscr,
};

/** Loads any supported file; format 'auto' (default) looks at the first record. */
export async function loadDataset(file: string, opts: LoadOptions & { format?: DataFormat | 'auto' } = {}): Promise<FormatLoadResult> {
  const format = opts.format ?? 'auto';
  if (format !== 'auto' && !(DATA_FORMATS as readonly string[]).includes(format)) {
    throw new HscrError(`unknown format "${format}" (one of auto, ${DATA_FORMATS.join(', ')})`, 'E_ARG', format);
  }
  return LOADERS[format === 'auto' ? await detectFormat(file) : format](file, opts);
}
