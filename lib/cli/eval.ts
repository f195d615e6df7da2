/**
 * `hscr score` (metrics for existing predictions), `hscr review` (LLaVA-Med's GPT-4 review through any
 * OpenAI-compatible endpoint) and `hscr eval` (batched generation with a model, then scoring). `eval` is
 * registered only when a predictor loader is passed in, so this file builds before the model code exists.
 */
import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { Option, type Command } from 'commander';
import { HscrError } from '../errors';
import { loadDataset, recordLine, DATA_FORMATS, type DataFormat } from '../data/loaders';
import type { FitOptions, FitResult } from '../model/context';
import { checkInputFile, checkOutputFile, lockOutput, folderFingerprint, sha256FileSync } from '../util/output';
import type { LoadResult } from '../data/types';
import { checkVariant, scorePredictions, DEFAULT_VARIANT, METRIC_VARIANTS, type MetricVariant } from '../eval/metrics';
import { hallucinationRate, type HallucinationReport } from '../eval/hallucination';
import { loadPredictions } from '../eval/predictions';
import { resultsTable } from '../eval/table';
import { evaluate, evaluateImageReliance, type Predictor } from '../eval/run';
import { loadReviewItems, runGptReview } from '../eval/gpt-review';
import { createProgress } from '../util/progress';
import { intArg } from './data';
import { legacyAlias } from './options';

/** What lib/model/predictor.ts is to provide: a batched answerer for a model (and optional adapter). */
/** What `hscr eval` passes on to the predictor it loads. */
export interface EvalPredictorOptions {
  maxNewTokens?: number;
  device?: string;
  dtype?: 'float32' | 'bfloat16' | 'float16';
  allowNonFinite?: boolean;
}

export type LoadPredictor = (
  modelDir: string,
  adapterDir?: string,
  options?: EvalPredictorOptions,
) => Promise<Predictor & { dispose?: () => void | Promise<void>; fit?<T extends { id: string; question: string }>(records: readonly T[], opts: Omit<FitOptions, 'reserve'>): FitResult<T> }>;
/** One stderr line when most predictions are empty: the model (or its settings) produced nothing to score. */
export function emptyPredictionsWarning(empty: number, total: number): string {
  if (total === 0 || empty / total <= 0.5) return '';
  return (
    `warning: ${empty} of ${total} predictions are empty: the model stops at once (an untrained or collapsed model, ` +
    'or a run that learned nothing). Check the training log\'s rewards/margins, or raise --max-new-tokens.\n'
  );
}

function formatArg(raw: string | undefined): DataFormat | 'auto' {
  const f = raw ?? 'auto';
  if (f === 'auto' || (DATA_FORMATS as readonly string[]).includes(f)) return f as DataFormat | 'auto';
  throw new HscrError(`--format must be auto or one of ${DATA_FORMATS.join(', ')}, got "${f}"`, 'E_ARG', f);
}

function skipLine(file: string, r: LoadResult): string {
  const skipped = r.skipped.map((s) => `${s.count} ${s.reason}`).join(', ');
  return `${file}: ${r.loaded} records${skipped ? `; skipped: ${skipped}` : ''}\n`;
}

function hallucinationLine(h: HallucinationReport | undefined): string {
  if (!h || h.rate === null) return '';
  return `hallucination (phantom descriptions): ${(h.rate * 100).toFixed(2)}% of ${h.stated} stated attributes in ${h.descriptions} descriptions\n`;
}

interface ScoreCliOptions {
  data: string;
  predictions: string;
  format?: string;
  variant: string;
  name?: string;
  json?: boolean;
}

function registerScore(program: Command): void {
  program
    .command('score')
    .description('score existing predictions against a dataset file (no model needed)')
    .requiredOption('--data <file>', 'ground truth (any supported format)')
    .requiredOption('--predictions <file>', 'JSONL with id (or question_id) and prediction (or text)')
    .option('--format <name>', `auto or ${DATA_FORMATS.join(', ')}`, 'auto')
    .option('--variant <v>', `metric variant: ${METRIC_VARIANTS.join(', ')}`, DEFAULT_VARIANT)
    .option('--name <name>', 'method name in the table')
    .option('--json', 'print the scores as JSON')
    .action(async (o: ScoreCliOptions) => {
      const variant = checkVariant(o.variant);
      const data = await loadDataset(o.data, { format: formatArg(o.format), missingImage: 'ignore' });
      const predictions = await loadPredictions(o.predictions);
      const report = scorePredictions(data.records, predictions, variant);
      const hallucination = data.records.some((r) => r.scene) ? hallucinationRate(data.records, predictions) : undefined;
      const table = resultsTable([{ name: o.name ?? path.basename(o.predictions), datasets: report.datasets }]);
      if (o.json) {
        const { items: _items, ...summary } = report;
        void _items;
        process.stdout.write(JSON.stringify({ ...summary, ...(hallucination ? { hallucination } : {}), table }, null, 2) + '\n');
        return;
      }
      process.stdout.write(skipLine(o.data, data));
      process.stdout.write(`${table}\n`);
      process.stdout.write(`variant ${variant}; ${report.missing.length} without prediction, ${report.unmatched.length} predictions without ground truth\n`);
      process.stdout.write(hallucinationLine(hallucination));
    });
}

interface ReviewCliOptions {
  questions: string;
  answers: string;
  url: string;
  judge: string;
  apiKeyEnv: string;
  concurrency: string;
  out?: string;
  json?: boolean;
  quiet?: boolean;
}

function registerReview(program: Command): void {
  program
    .command('review')
    .description("LLaVA-Med's GPT-4 review (the paper's Table 2) through an OpenAI-compatible chat endpoint")
    .requiredOption('--questions <file>', 'LLaVA-Med review questions (llava_med_eval_qa50_qa.jsonl format)')
    .requiredOption('--answers <file>', 'the model answers (question_id, text)')
    .requiredOption('--url <url>', 'endpoint base URL (…/v1) or …/chat/completions')
    .option('--judge <name>', 'judge model (--model elsewhere is a model folder)', 'gpt-4-0314')
    .addOption(legacyAlias('--model <name>', 'judge'))
    .option('--api-key-env <var>', 'environment variable holding the API key', 'OPENAI_API_KEY')
    .option('--concurrency <n>', 'requests in flight', '4')
    .option('--out <file>', 'append each review here (JSONL)')
    .option('--json', 'print the summary as JSON')
    .option('--quiet', 'no progress output')
    .action(async (o: ReviewCliOptions) => {
      const items = await loadReviewItems(o.questions, o.answers);
      const progress = createProgress({ label: 'review', total: items.length, quiet: o.quiet });
      let result;
      try {
        result = await runGptReview(items, {
          endpoint: { url: o.url, model: o.judge, apiKey: process.env[o.apiKeyEnv] },
          concurrency: intArg('--concurrency', o.concurrency),
          outFile: o.out,
          onProgress: () => progress.tick(),
        });
      } finally {
        progress.stop();
      }
      const { categories, unscored } = result.summary;
      if (o.json) return void process.stdout.write(JSON.stringify(result.summary, null, 2) + '\n');
      const rows = Object.entries(categories).map(([k, c]) => `| ${k} | ${c.n} | ${c.referenceScore.toFixed(2)} | ${c.modelScore.toFixed(2)} | ${c.relativeScore.toFixed(2)} |`);
      process.stdout.write(['| category | n | reference | model | relative (%) |', '| --- | ---: | ---: | ---: | ---: |', ...rows].join('\n') + '\n');
      if (unscored.length) process.stdout.write(`${unscored.length} replies had no two scores on their first line: ${unscored.slice(0, 10).join(', ')}\n`);
    });
}

interface EvalCliOptions {
  model: string;
  adapter?: string;
  data: string;
  format?: string;
  out: string;
  batch?: string;
  batchSize?: string;
  maxNewTokens: string;
  device?: string;
  dtype?: string;
  variant: string;
  imageRoot?: string;
  imageReliance?: boolean;
  name?: string;
  allowNonFinite?: boolean;
  quiet?: boolean;
  truncate?: boolean;
  overwrite?: boolean;
}

/**
 * What makes eval's predictions: a resume with another model, adapter, data or settings is refused. Model and
 * adapter by content when they are folders (a loader may also take names that are not).
 */
function evalFingerprint(o: EvalCliOptions): Record<string, unknown> {
  const folder = (p: string) => (existsSync(p) && statSync(p).isDirectory() ? folderFingerprint(p) : path.resolve(p));
  return {
    model: folder(o.model),
    adapter: o.adapter ? folder(o.adapter) : null,
    data: sha256FileSync(o.data),
    format: o.format ?? 'auto',
    imageRoot: o.imageRoot ? path.resolve(o.imageRoot) : null,
    truncate: Boolean(o.truncate),
    maxNewTokens: o.maxNewTokens ?? null,
    dtype: o.dtype ?? null,
  };
}

function registerEval(program: Command, loadPredictor: LoadPredictor): void {
  program
    .command('eval')
    .description('answer a benchmark with a model, then score it (predictions JSONL kept beside the results)')
    .requiredOption('--model <dir>', 'model folder')
    .option('--adapter <dir>', 'LoRA adapter folder')
    .requiredOption('--data <file>', 'benchmark file (any supported format)')
    .option('--format <name>', `auto or ${DATA_FORMATS.join(', ')}`, 'auto')
    .option('--out <file>', 'results JSON (predictions go to <name>.predictions.jsonl beside it; a rerun resumes)', 'results.json')
    .option('--batch <n>', 'questions per generation batch', '8')
    .addOption(new Option('--batch-size <n>', 'old name of --batch').hideHelp())
    .option('--max-new-tokens <n>', 'longest answer generated, in tokens', '32')
    .option('--device <d>', 'cpu | cuda | cuda:N (default cpu)')
    .option('--dtype <t>', 'float32 | bfloat16 | float16 (default float32)')
    .option('--variant <v>', `metric variant: ${METRIC_VARIANTS.join(', ')}`, DEFAULT_VARIANT)
    .option('--image-root <dir>', 'folder the image names are relative to')
    .option('--image-reliance', 'also answer with a blank image and report the difference')
    .option('--allow-non-finite', 'load a model/adapter/checkpoint whose tensors hold NaN/Inf (default: refused, naming the tensor)')
    .option('--name <name>', 'method name in the table')
    .option('--truncate', 'shorten questions that do not fit the model\'s context (default: refuse them)')
    .option('--overwrite', 'start over instead of resuming predictions already in the output')
    .option('--quiet', 'no progress output')
    .action(async (o: EvalCliOptions) => {
      const variant = checkVariant(o.variant);
      const batchSize = o.batchSize !== undefined ? intArg('--batch-size', o.batchSize) : intArg('--batch', o.batch);
      const maxNewTokens = intArg('--max-new-tokens', o.maxNewTokens);
      if (maxNewTokens < 1) throw new HscrError(`--max-new-tokens must be at least 1, got ${maxNewTokens}`, 'E_ARG', maxNewTokens);
      if (o.dtype !== undefined && !['float32', 'bfloat16', 'float16'].includes(o.dtype)) {
        throw new HscrError(`--dtype must be float32, bfloat16 or float16, got "${o.dtype}"`, 'E_ARG', o.dtype);
      }
      // Paths first: a bad --out found after the whole benchmark was answered would waste the run.
      checkInputFile(o.data, '--data');
      checkOutputFile(o.out);
      // Held from before the model loads, so a second eval on this output is refused at once.
      const lock = lockOutput(o.out, o.imageReliance ? 'hscr eval --image-reliance' : 'hscr eval');
      try {
        await runEval(o, variant, batchSize, maxNewTokens, loadPredictor);
      } finally {
        lock.release();
      }
    });
}

async function runEval(o: EvalCliOptions, variant: MetricVariant, batchSize: number, maxNewTokens: number, loadPredictor: LoadPredictor): Promise<void> {
  const fingerprint = evalFingerprint(o);
  const data = await loadDataset(o.data, { format: formatArg(o.format), imageRoot: o.imageRoot });
  const predictor = await loadPredictor(o.model, o.adapter, { maxNewTokens, device: o.device, dtype: o.dtype as EvalPredictorOptions['dtype'], allowNonFinite: o.allowNonFinite });
  try {
    if (predictor.fit) {
      const fitted = predictor.fit(data.records, { source: o.data, lineOf: (i) => recordLine(data.records[i]), truncate: o.truncate });
      if (fitted.truncated.length) process.stderr.write(`eval: shortened ${fitted.truncated.length} questions to fit the context (--truncate)\n`);
      data.records = fitted.records;
    }
  } catch (e) {
    await predictor.dispose?.();
    throw e;
  }
  const progress = createProgress({ label: 'eval', total: data.records.length * (o.imageReliance ? 2 : 1), quiet: o.quiet });
  const opts = {
    batchSize,
    variant,
    outDir: path.dirname(path.resolve(o.out)),
    resultsFile: o.out,
    name: o.name ?? path.basename(o.adapter ?? o.model),
    onProgress: counter(progress),
    fingerprint,
    overwrite: o.overwrite,
    lock: false,
  };
  try {
    process.stderr.write(skipLine(o.data, data));
    if (o.imageReliance) {
      const r = await evaluateImageReliance(data.records, predictor, opts);
      progress.stop();
      process.stdout.write(`${resultsTable([{ name: opts.name, datasets: r.real.datasets }, { name: `${opts.name} (blank image)`, datasets: r.blank.datasets }])}\n`);
      const pct = (v: number | null) => (v === null ? '–' : (v * 100).toFixed(2));
      process.stdout.write(`image reliance (real − blank): closed ${pct(r.overall.closed)}, open ${pct(r.overall.open)} points; ${r.relianceFile}\n`);
      return;
    }
    const r = await evaluate(data.records, predictor, opts);
    progress.stop();
    process.stdout.write(`${r.table}\n`);
    process.stderr.write(emptyPredictionsWarning(r.emptyPredictions, data.records.length));
    process.stdout.write(hallucinationLine(r.hallucination));
    const rate = r.samplesPerSecond === null ? '-' : r.samplesPerSecond.toFixed(2);
    process.stdout.write(`${r.predicted} answered in ${r.seconds.toFixed(1)} s (${rate} samples/s)${r.resumed ? `, ${r.resumed} resumed` : ''}; results: ${r.resultsFile}\n`);
  } finally {
    progress.stop();
    await predictor.dispose?.();
  }
}

/**
 * Turns the runner's running totals into progress ticks. Each evaluate() run counts from what an earlier
 * run left (resume), so a total lower than the last one means the next run (the blank images) began.
 */
function counter(progress: { tick(n?: number): void }): (done: number) => void {
  let last = 0;
  return (done: number) => {
    if (done < last) last = 0;
    progress.tick(done - last);
    last = done;
  };
}

export function registerEvalCommands(program: Command, loadPredictor?: LoadPredictor): void {
  registerScore(program);
  registerReview(program);
  if (loadPredictor) registerEval(program, loadPredictor);
}
