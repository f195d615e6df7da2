/**
 * What a run folder holds, found by walking it rather than by knowing who wrote it: every metrics.jsonl
 * (a training run), train_config.json, evaluation results.json (lib/eval/run.ts), *.reliance.json (image
 * reliance), ranked.jsonl (HSCR's ranked lists) and the Markdown summaries at its top. Each file is read
 * on its own and one that does not parse is listed as skipped, so the report keeps working while the
 * commands that fill the folder change.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { z } from 'zod';

/** Folders never worth walking into: weights and thousands of images. */
const SKIP_DIRS = /^(checkpoint-.*|images|model|adapter|node_modules|\.git|\.tmp.*)$/;
const MAX_DEPTH = 6;

export interface RunFiles {
  metrics: string[];
  trainConfigs: string[];
  results: string[];
  reliance: string[];
  ranked: string[];
  summaries: string[];
  /** JSON files at the top of the run folder (run_config.json, ablation.json, …): their settings are shown. */
  rootJson: string[];
}

function walk(dir: string, depth: number, into: string[]): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }))) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (depth < MAX_DEPTH && !SKIP_DIRS.test(e.name)) walk(full, depth + 1, into);
    } else if (e.isFile()) {
      into.push(full);
    }
  }
}

export function findRunFiles(runDir: string): RunFiles {
  const files: string[] = [];
  walk(runDir, 0, files);
  const named = (re: RegExp) => files.filter((f) => re.test(path.basename(f)));
  return {
    metrics: named(/^metrics\.jsonl$/),
    trainConfigs: named(/^train_config\.json$/),
    results: named(/\.json$/).filter((f) => !/(reliance|config|manifest|state|accuracy|meta|ablation|environment|logps)/.test(path.basename(f))),
    reliance: named(/\.reliance\.json$/),
    ranked: named(/^ranked\.jsonl$/),
    summaries: files.filter((f) => path.dirname(f) === path.resolve(runDir) && f.endsWith('.md')),
    rootJson: files.filter((f) => path.dirname(f) === path.resolve(runDir) && f.endsWith('.json')),
  };
}

/** A file's place in the run folder, as the report names it ('.' for the folder itself). */
export function runLabel(runDir: string, file: string): string {
  const rel = path.relative(runDir, file);
  return rel === '' ? '.' : rel.split(path.sep).join('/');
}

// ---- training curves ----------------------------------------------------------------------------

export interface CurvePoint {
  run: string;
  step: number;
  metric: string;
  value: number;
}

/** Every numeric metric of every step of one metrics.jsonl (a bad line is skipped, not fatal). */
export function readCurves(file: string, run: string): CurvePoint[] {
  const points: CurvePoint[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      continue;
    }
    if (typeof row !== 'object' || row === null) continue;
    const step = (row as Record<string, unknown>).step;
    if (typeof step !== 'number') continue;
    const r = row as Record<string, unknown>;
    // A step without pairs of a level (pairs_implicit 0: every list had one dispreferred answer) logs that
    // level's metrics as 0; they are no measurement and are left out.
    const absent = ['explicit', 'implicit'].filter((level) => r[`pairs_${level}`] === 0);
    for (const [metric, value] of Object.entries(r)) {
      if (metric === 'step' || typeof value !== 'number' || !Number.isFinite(value)) continue;
      if (absent.some((level) => metric === `loss/${level}` || metric.startsWith(level === 'explicit' ? 'rewards/' : 'rewards_implicit/'))) continue;
      points.push({ run, step, metric, value });
    }
  }
  return points;
}

// ---- evaluation results -------------------------------------------------------------------------

const groupSummary = z.object({
  closed: z.object({ n: z.number(), accuracy: z.number().nullable() }),
  open: z.object({ n: z.number(), score: z.number().nullable() }),
});

const evaluationResult = z.object({
  variant: z.string(),
  datasets: z.record(z.string(), groupSummary),
  overall: groupSummary,
});

const relianceDelta = z.object({ closed: z.number().nullable(), open: z.number().nullable() });
const relianceFile = z.object({ variant: z.string().optional(), datasets: z.record(z.string(), relianceDelta), overall: relianceDelta });

export type EvaluationSummary = z.infer<typeof evaluationResult>;
export type RelianceSummary = z.infer<typeof relianceFile>;

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The evaluation results among candidate JSON files (others, e.g. a config, are not results and are left out). */
export function readEvaluations(files: string[]): { file: string; result: EvaluationSummary }[] {
  const out: { file: string; result: EvaluationSummary }[] = [];
  for (const file of files) {
    const parsed = evaluationResult.safeParse(readJson(file));
    if (parsed.success) out.push({ file, result: parsed.data });
  }
  return out;
}

export function readReliance(files: string[]): { file: string; reliance: RelianceSummary }[] {
  const out: { file: string; reliance: RelianceSummary }[] = [];
  for (const file of files) {
    const parsed = relianceFile.safeParse(readJson(file));
    if (parsed.success) out.push({ file, reliance: parsed.data });
  }
  return out;
}

export function readJsonObject(file: string): Record<string, unknown> | undefined {
  const v = readJson(file);
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

// ---- ranked lists -------------------------------------------------------------------------------

const replacement = z.object({ position: z.number(), from: z.string(), to: z.string(), score: z.number() });
const rankedRecord = z.object({
  id: z.union([z.string(), z.number()]).transform(String),
  question: z.string(),
  chosen: z.string(),
  tokens: z.array(z.string()).optional(),
  rejected: z.array(z.object({ text: z.string(), similarity: z.number().optional(), replacements: z.array(replacement) })),
});

export type RankedSample = z.infer<typeof rankedRecord>;

/**
 * An evenly spread sample of a ranked.jsonl's records: the first `scan` lines are read (a big file is not
 * read to its end) and `size` of them kept at equal spacing.
 */
export async function sampleRanked(file: string, size: number, scan = 2000): Promise<{ records: RankedSample[]; scanned: number }> {
  const all: RankedSample[] = [];
  let scanned = 0;
  const lines = readline.createInterface({ input: fs.createReadStream(file, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) {
    if (scanned >= scan) break;
    if (line.trim() === '') continue;
    scanned++;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      continue;
    }
    const parsed = rankedRecord.safeParse(raw);
    if (parsed.success) all.push(parsed.data);
  }
  lines.close();
  if (all.length <= size) return { records: all, scanned };
  const records = Array.from({ length: size }, (_, i) => all[Math.floor((i * all.length) / size)]);
  return { records, scanned };
}
