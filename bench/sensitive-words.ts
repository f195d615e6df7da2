/**
 * Acceptance 2 of the preference-data issue: on a (tiny, SFT'd) phantom model, are HSCR's sensitive
 * positions mostly image-dependent words — organ, side, size, shape, yes/no, count, modality — rather than
 * template and function words? Runs the generation stage on the records and sorts every sensitive position
 * by the answer word its token belongs to. The share of scene words among *all eligible* answer tokens is
 * printed beside it: the rate a position picked at random would reach.
 *
 *   node dist/bench/sensitive-words.js --model DIR --data FILE [--limit 200] [--n 10] [--batch 8] [--seed 0]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HSCR_DEFAULTS } from '../lib/config';
import { loadDataset } from '../lib/data/loaders';
import { MODALITIES, ORGANS, PLANES, REGIONS, SHAPES, SIDES, SIZES } from '../lib/data/phantom/scene';
import { eligibleMask, generatePreferences } from '../lib/generate/pipeline';
import { disposeBundle, loadModelBundle } from '../lib/model/bundle';
import type { HscrTokenizer } from '../lib/model/tokenizer';

const WORD_START = '\u2581';

/** The phantom world's image-dependent vocabulary, by what it names ("x-ray" counts as its word pieces). */
export const SCENE_WORDS: Record<string, readonly string[]> = {
  organ: ORGANS,
  side: SIDES,
  size: SIZES,
  shape: SHAPES,
  'yes/no': ['yes', 'no'],
  count: ['0', '1', '2', '3', '4', '5'],
  modality: MODALITIES.flatMap((m) => m.split(/[^a-z0-9]+/)),
  plane: PLANES,
  region: REGIONS,
};

const CATEGORY = new Map(Object.entries(SCENE_WORDS).flatMap(([category, words]) => words.map((w) => [w, category] as const)));

/** The scene category of a word (plurals too: "both lungs"), or undefined for template and function words. */
export function sceneCategory(word: string): string | undefined {
  const w = word.toLowerCase();
  return CATEGORY.get(w) ?? (w.endsWith('s') ? CATEGORY.get(w.slice(0, -1)) : undefined);
}

/**
 * The word token i belongs to, from SentencePiece-style token strings: a word starts at a token beginning
 * with ▁ and runs until the next such token. Letters and digits only, lower-cased; '' for punctuation.
 */
export function wordOfToken(tokens: readonly string[], i: number): string {
  let start = i;
  while (start > 0 && !tokens[start].startsWith(WORD_START)) start--;
  let end = i + 1;
  while (end < tokens.length && !tokens[end].startsWith(WORD_START)) end++;
  const piece = tokens[i].replace(WORD_START, '');
  const word = tokens.slice(start, end).join('').replace(new RegExp(WORD_START, 'g'), ' ');
  // Within a multi-word run (no ▁ between "x", "-", "ray"), the alphanumeric run holding this token's piece.
  const runs = word.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  return runs.find((r) => r.includes(piece.toLowerCase())) ?? runs[0] ?? '';
}

export interface PositionsReport {
  samples: number;
  /** Sensitive positions in all. */
  positions: number;
  /** Of them, on scene words. */
  onScene: number;
  byCategory: Record<string, number>;
  /** Non-scene words hit, most frequent first. */
  otherWords: [string, number][];
  /** Eligible answer tokens in all, and those on scene words (the chance rate). */
  eligible: number;
  eligibleOnScene: number;
  /**
   * The most sensitive position alone, over samples with a choice (≥ 2 eligible tokens, some scene and some
   * not): with n at least the answer length every eligible token is "sensitive", so only the ranking shows
   * whether the image-dependent words come first. chance = the mean share of scene words among those samples'
   * eligible tokens.
   */
  top1: { samples: number; onScene: number; chance: number };
}

export interface PrefLine {
  tokens: string[];
  sensitive: { position: number }[];
}

/** Sorts the sensitive positions of generated lines; `eligible` gives each line's eligible mask. */
export function tallySensitiveWords(lines: readonly PrefLine[], eligible: (line: PrefLine) => number[]): PositionsReport {
  const report: PositionsReport = {
    samples: lines.length,
    positions: 0,
    onScene: 0,
    byCategory: {},
    otherWords: [],
    eligible: 0,
    eligibleOnScene: 0,
    top1: { samples: 0, onScene: 0, chance: 0 },
  };
  const other = new Map<string, number>();
  for (const line of lines) {
    for (const { position } of line.sensitive) {
      const word = wordOfToken(line.tokens, position);
      const category = sceneCategory(word);
      report.positions++;
      if (category) {
        report.onScene++;
        report.byCategory[category] = (report.byCategory[category] ?? 0) + 1;
      } else {
        other.set(word, (other.get(word) ?? 0) + 1);
      }
    }
    const scene = eligible(line).flatMap((flag, i) => (flag ? [sceneCategory(wordOfToken(line.tokens, i)) !== undefined] : []));
    const onScene = scene.filter(Boolean).length;
    report.eligible += scene.length;
    report.eligibleOnScene += onScene;
    if (onScene > 0 && onScene < scene.length && line.sensitive.length > 0) {
      report.top1.samples++;
      report.top1.chance += onScene / scene.length;
      if (sceneCategory(wordOfToken(line.tokens, line.sensitive[0].position))) report.top1.onScene++;
    }
  }
  if (report.top1.samples > 0) report.top1.chance /= report.top1.samples;
  report.otherWords = [...other].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  return report;
}

export interface MeasureOptions {
  model: string;
  data: string;
  limit?: number;
  n?: number;
  batch?: number;
  seed?: number;
}

/** Generates preference data for the first `limit` records (into a temp file) and tallies its sensitive positions. */
export async function measureSensitiveWords(o: MeasureOptions): Promise<PositionsReport> {
  const { records } = await loadDataset(o.data);
  const bundle = await loadModelBundle(o.model);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hscr-sensitive-'));
  try {
    const out = path.join(dir, 'prefs.jsonl');
    await generatePreferences(bundle, records, out, { limit: o.limit ?? 200, n: o.n, batchSize: o.batch, seed: o.seed, quiet: true }, o.data);
    const lines = readFileSync(out, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as PrefLine);
    return tallySensitiveWords(lines, (line) => eligibleMask(bundle.tokenizer, idsOf(bundle.tokenizer, line.tokens)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    disposeBundle(bundle);
  }
}

function idsOf(tokenizer: HscrTokenizer, tokens: string[]): number[] {
  return tokens.map((t) => tokenizer.tokenId(t) ?? tokenizer.unkId);
}

const pct = (a: number, b: number) => (b === 0 ? '-' : `${((100 * a) / b).toFixed(1)}%`);

export function formatReport(r: PositionsReport): string {
  const categories = Object.entries(r.byCategory)
    .sort((a, b) => b[1] - a[1])
    .map(([c, k]) => `${c} ${k}`)
    .join(', ');
  const others = r.otherWords
    .slice(0, 12)
    .map(([w, k]) => `${w || '(punctuation)'} ${k}`)
    .join(', ');
  return [
    `sensitive positions: ${r.positions} over ${r.samples} samples`,
    `on scene words (organ, side, size, shape, yes/no, count, modality, plane, region): ${r.onScene} = ${pct(r.onScene, r.positions)}`,
    `on template/function words: ${r.positions - r.onScene} = ${pct(r.positions - r.onScene, r.positions)}`,
    `chance rate (scene words among all eligible answer tokens): ${pct(r.eligibleOnScene, r.eligible)}`,
    `most sensitive position, over the ${r.top1.samples} samples mixing scene and other words: on a scene word ${pct(r.top1.onScene, r.top1.samples)} (chance ${(100 * r.top1.chance).toFixed(1)}%)`,
    `by category: ${categories || 'none'}`,
    `most frequent other words: ${others || 'none'}`,
  ].join('\n');
}

function parseArgs(argv: string[]): MeasureOptions {
  const get = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const model = get('--model');
  const data = get('--data');
  if (!model || !data) throw new Error('usage: sensitive-words --model DIR --data FILE [--limit 200] [--n 10] [--batch 8] [--seed 0]');
  const num = (flag: string) => (get(flag) === undefined ? undefined : Number(get(flag)));
  return { model, data, limit: num('--limit'), n: num('--n') ?? HSCR_DEFAULTS.topN, batch: num('--batch'), seed: num('--seed') };
}

if (require.main === module) {
  measureSensitiveWords(parseArgs(process.argv.slice(2)))
    .then((r) => console.log(formatReport(r)))
    .catch((err) => {
      console.error(err);
      process.exitCode = 1;
    });
}
