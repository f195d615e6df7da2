/**
 * `hscr phantom`: a deterministic benchmark of synthetic scans whose answers can only come from the pixels
 * (or, in a training split made with --prior-bias, from the question text — which the balanced test split
 * then catches).
 */
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { HscrError } from '../../errors';
import { checkOutputFolder, lockOutput, writeFileAtomic } from '../../util/output';
import type { VqaRecord } from '../types';
import { Rng, mixSeed } from '../prng';
import { drawItem, allQuestionTexts, FAMILY_NAMES, familyAnswers } from './questions';
import { renderScene } from './render';
import { allSceneSkeletons, describeScene, sampleScene } from './scene';
import { drawInstruction, instructionWords, type InstructionSplit } from './instruct';

export * from './scene';
export { renderScene } from './render';
export { FAMILY_NAMES, familyAnswers, type FamilyName } from './questions';
export * from './instruct';
export { alignmentRecords, ALIGNMENT_QUESTION, ALIGNMENT_FAMILY } from './alignment';

/** VQA splits (train/val/test) and instruction splits (instruct-train/-val/-test). */
export type PhantomSplit = 'train' | 'val' | 'test' | 'instruct-train' | 'instruct-val' | 'instruct-test';

export interface PhantomOptions {
  /** Folder for images/, train.jsonl, test.jsonl and meta.json. */
  outDir: string;
  train: number;
  test: number;
  /** VQA validation split (balanced like test), for choosing settings without looking at test (default 0). */
  val?: number;
  /** Instruction splits (free-text answers; see instruct.ts), default 0 each. */
  instruct?: { train?: number; val?: number; test?: number };
  seed: number;
  /** Image width and height in pixels (default 64). */
  size?: number;
  /** Training split only: probability of each family's favoured answer (e.g. 'yes' for presence). */
  priorBias?: number;
  /** Images encoded at once (default 4). */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
  /** Replace a dataset already in outDir (default: refuse, E_ARG). */
  overwrite?: boolean;
}

export interface PhantomItem {
  record: VqaRecord;
  /** Seed of the item's noise and texture (renderScene(record.scene, renderSeed) gives its pixels). */
  renderSeed: number;
}

export interface PhantomResult {
  train: VqaRecord[];
  test: VqaRecord[];
  val: VqaRecord[];
  instruct: { train: VqaRecord[]; val: VqaRecord[]; test: VqaRecord[] };
  /** Every file written, relative to outDir, in a stable order. */
  files: string[];
}

export const PHANTOM_DEFAULT_SIZE = 64;
const SPLIT_CODE: Record<PhantomSplit, number> = { train: 1, test: 2, val: 3, 'instruct-train': 4, 'instruct-val': 5, 'instruct-test': 6 };
export const INSTRUCTION_FAMILY = 'instruction';
export const INSTRUCTION_DATASET = 'phantom-instruct';

function checkInt(name: string, v: number, lo: number, hi: number): void {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new HscrError(`${name} must be an integer in [${lo}, ${hi}], got ${v}`, 'E_ARG', v);
}

function checkOptions(o: PhantomOptions): void {
  checkInt('train', o.train, 0, 10_000_000);
  checkInt('test', o.test, 0, 10_000_000);
  checkInt('val', o.val ?? 0, 0, 10_000_000);
  for (const k of ['train', 'val', 'test'] as const) checkInt(`instruct.${k}`, o.instruct?.[k] ?? 0, 0, 10_000_000);
  checkInt('seed', o.seed, 0, 0xffffffff);
  checkInt('size', o.size ?? PHANTOM_DEFAULT_SIZE, 16, 1024);
  if (o.priorBias !== undefined && !(o.priorBias >= 0 && o.priorBias <= 1)) {
    throw new HscrError(`priorBias must be in [0, 1], got ${o.priorBias}`, 'E_ARG', o.priorBias);
  }
  if (typeof o.outDir !== 'string' || o.outDir === '') throw new HscrError('outDir must be a folder path', 'E_ARG', o.outDir);
}

/**
 * The items of one split, without touching the disk. `image` is relative (images/<id>.png) so that the
 * written JSONL is the same wherever the folder lies. The test split is always balanced.
 */
export function phantomItems(split: PhantomSplit, n: number, seed: number, size = PHANTOM_DEFAULT_SIZE, priorBias?: number): PhantomItem[] {
  if (split.startsWith('instruct-')) return instructionItems(split.slice('instruct-'.length) as InstructionSplit, n, seed, size);
  const bias = split === 'train' ? priorBias : undefined;
  return splitItems(split, n, seed, (rng) => {
    const drawn = drawItem(rng, bias, (c) => sampleScene(rng, size, c));
    return { question: drawn.question, answer: drawn.answer, answer_type: drawn.answer_type, dataset: 'phantom', family: drawn.family, scene: drawn.scene };
  });
}

/** Instruction items: free-text answers about the scene (family 'instruction', dataset 'phantom-instruct'). */
function instructionItems(split: InstructionSplit, n: number, seed: number, size: number): PhantomItem[] {
  return splitItems(`instruct-${split}`, n, seed, (rng) => {
    const drawn = drawInstruction(rng, split, size);
    return { question: drawn.question, answer: drawn.answer, answer_type: 'open', dataset: INSTRUCTION_DATASET, family: INSTRUCTION_FAMILY, scene: drawn.scene };
  });
}

type DrawnRecord = Omit<PhantomItem['record'], 'id' | 'image' | 'modality' | 'scene'> & { scene: NonNullable<PhantomItem['record']['scene']> };

/** The n items of one split: per-item seed, id, relative image path and render seed are the same for every kind. */
function splitItems(split: PhantomSplit, n: number, seed: number, draw: (rng: Rng) => DrawnRecord): PhantomItem[] {
  const items: PhantomItem[] = [];
  for (let i = 0; i < n; i++) {
    const itemSeed = mixSeed(seed, SPLIT_CODE[split], i);
    const drawn = draw(new Rng(itemSeed));
    const id = `${split}-${String(i).padStart(5, '0')}`;
    items.push({
      renderSeed: mixSeed(itemSeed, 7),
      record: { id, image: `images/${id}.png`, question: drawn.question, answer: drawn.answer, answer_type: drawn.answer_type, dataset: drawn.dataset, modality: drawn.scene.modality, family: drawn.family, scene: drawn.scene },
    });
  }
  return items;
}

/** PNG bytes of an item; sharp's PNG encoder writes no time stamps, so the bytes depend on the pixels only. */
export async function encodePng(rgb: Buffer, size: number): Promise<Buffer> {
  return sharp(rgb, { raw: { width: size, height: size, channels: 3 } }).png({ compressionLevel: 9, adaptiveFiltering: false }).toBuffer();
}

async function writeImages(outDir: string, items: PhantomItem[], concurrency: number, tick: () => void): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < items.length && !failed) {
      const item = items[next++];
      const scene = item.record.scene!;
      // Each image whole or not at all: a full disk leaves no cut PNG behind.
      await writeFileAtomic(path.join(outDir, item.record.image), await encodePng(renderScene(scene, item.renderSeed), scene.size));
      tick();
    }
  };
  // After a failure (a full disk) the other workers stop, and the error is thrown once none is mid-write,
  // so no temporary file outlives the call.
  const settled = await Promise.allSettled(
    Array.from({ length: Math.max(1, concurrency) }, () =>
      worker().catch((e: unknown) => {
        failed = true;
        throw e;
      }),
    ),
  );
  const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
}

function jsonl(records: VqaRecord[]): string {
  return records.map((r) => JSON.stringify(r)).join('\n') + (records.length ? '\n' : '');
}

/** The files that make a folder a phantom dataset (meta.json is written last). */
const DATASET_FILES = ['meta.json', 'train.jsonl', 'test.jsonl'];

/**
 * Writes the benchmark and returns its records with absolute image paths. Same options, same bytes. A folder
 * that already holds a dataset is refused unless `overwrite`; every file is written whole (temp + rename), and
 * meta.json last, so a folder with meta.json holds a complete dataset. One writer at a time (E_LOCKED).
 */
export async function generatePhantom(opts: PhantomOptions): Promise<PhantomResult> {
  checkOptions(opts);
  checkOutputFolder(opts.outDir);
  const outDir = path.resolve(opts.outDir);
  const lock = lockOutput(outDir, 'hscr phantom');
  try {
    const existing = DATASET_FILES.filter((f) => existsSync(path.join(outDir, f)));
    if (existing.length > 0 && !opts.overwrite) {
      throw new HscrError(`${opts.outDir} already holds a dataset (${existing.join(', ')}): pass --overwrite to replace it, or choose another --out`, 'E_ARG', opts.outDir);
    }
    return await writePhantom(opts, outDir);
  } finally {
    lock.release();
  }
}

async function writePhantom(opts: PhantomOptions, outDir: string): Promise<PhantomResult> {
  const size = opts.size ?? PHANTOM_DEFAULT_SIZE;
  const split = (name: PhantomSplit, n: number) => phantomItems(name, n, opts.seed, size, opts.priorBias);
  const parts: [PhantomSplit, PhantomItem[]][] = [
    ['train', split('train', opts.train)],
    ['test', split('test', opts.test)],
    ['val', split('val', opts.val ?? 0)],
    ['instruct-train', split('instruct-train', opts.instruct?.train ?? 0)],
    ['instruct-val', split('instruct-val', opts.instruct?.val ?? 0)],
    ['instruct-test', split('instruct-test', opts.instruct?.test ?? 0)],
  ];
  // Splits that were not asked for are not written, so a folder made before they existed reads the same.
  const written = parts.filter(([name, items]) => items.length > 0 || name === 'train' || name === 'test');
  // A replaced dataset is no dataset until the new meta.json is written.
  await fsp.rm(path.join(outDir, 'meta.json'), { force: true });
  await fsp.mkdir(path.join(outDir, 'images'), { recursive: true });
  const all = written.flatMap(([, items]) => items);
  let done = 0;
  await writeImages(outDir, all, opts.concurrency ?? 4, () => opts.onProgress?.(++done, all.length));
  const extra = opts.val || opts.instruct ? { val: opts.val ?? 0, instruct: { train: opts.instruct?.train ?? 0, val: opts.instruct?.val ?? 0, test: opts.instruct?.test ?? 0 } } : {};
  const meta = { generator: 'hscr phantom', version: 1, seed: opts.seed, train: opts.train, test: opts.test, ...extra, size, priorBias: opts.priorBias ?? null };
  for (const [name, items] of written) await writeFileAtomic(path.join(outDir, `${name}.jsonl`), jsonl(items.map((i) => i.record)));
  await writeFileAtomic(path.join(outDir, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
  const absolute = (name: PhantomSplit) => (parts.find(([n]) => n === name)?.[1] ?? []).map((i) => ({ ...i.record, image: path.join(outDir, i.record.image) }));
  const files = ['meta.json', ...written.map(([name]) => `${name}.jsonl`).sort(), ...all.map((i) => i.record.image)];
  return {
    train: absolute('train'),
    test: absolute('test'),
    val: absolute('val'),
    instruct: { train: absolute('instruct-train'), val: absolute('instruct-val'), test: absolute('instruct-test') },
    files,
  };
}

export interface PhantomCorpus {
  /** Every question the generator can ask. */
  questions: string[];
  /** Every answer it can give, descriptions included. */
  answers: string[];
  /** Sorted distinct words of both; '?' and '.' are words of their own. */
  words: string[];
}

/** Everything the phantom benchmark can say, for building the tiny model's tokenizer. */
export function phantomCorpus(): PhantomCorpus {
  const answers = new Set<string>();
  for (const f of FAMILY_NAMES) for (const a of familyAnswers(f)) answers.add(a);
  for (const s of allSceneSkeletons()) answers.add(describeScene(s));
  const questions = allQuestionTexts();
  const words = new Set<string>(instructionWords());
  for (const t of [...questions, ...answers]) for (const w of t.replace(/([?.])/g, ' $1 ').split(/\s+/)) if (w) words.add(w);
  return { questions: questions.sort(), answers: [...answers].sort(), words: [...words].sort() };
}
