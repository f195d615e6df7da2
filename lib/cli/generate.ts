/** `hscr generate`: HSCR preference data (paper §3.1) from an SFT model and a VQA file; resumable. */
import * as path from 'node:path';
import type { Command } from 'commander';
import { HSCR_DEFAULTS } from '../config';
import { DATA_FORMATS, type DataFormat } from '../data/loaders';
import { HscrError } from '../errors';
import { PLAUSIBILITY_RULES, type PlausibilityRule, type ViewLayout } from '../generate/contrastive';
import type { ReplacementSchedule } from '../generate/dispreferred';
import { generateFile, type GenerateCounts, type GenerateMode } from '../generate/pipeline';
import type { DType } from '../native';
import { choice, integer, number, SEED_MAX } from './options';

interface GenerateCliOptions {
  model: string;
  data: string;
  out: string;
  format: DataFormat | 'auto';
  n: number;
  beta: number;
  k: number;
  ratio: number;
  perturb: 'token' | 'pixel' | 'patch' | 'latent';
  seed: number;
  limit: number;
  batch: number;
  alpha: number;
  candidates: number;
  plausibility: PlausibilityRule;
  schedule: ReplacementSchedule;
  mode: GenerateMode;
  views: ViewLayout;
  device?: string;
  dtype?: DType;
  allowNonFinite?: boolean;
  quiet?: boolean;
  truncate?: boolean;
  overwrite?: boolean;
}

/** The summary `hscr generate` prints. */
export function formatGenerateCounts(counts: GenerateCounts, opts: { k: number; mode: GenerateMode; out: string }): string {
  const wanted = opts.mode === 'binary' ? 1 : opts.k;
  const histogram = counts.candidatesHistogram.map((samples, made) => `${made}: ${samples}`).join(', ');
  const skipped = counts.skipped.map((s) => `${s.reason}: ${s.count}`).join(', ');
  return [
    `generate: ${counts.records} records${skipped ? ` (skipped ${skipped})` : ''}, ${counts.selected} within the limit, ${counts.resumed} already in ${opts.out}, ${counts.written} written`,
    `dispreferred answers per sample (answers: samples): ${histogram || 'none'}`,
    `fewer than ${wanted} (${opts.mode}): ${counts.shortOfK}`,
  ].join('\n');
}

async function runGenerate(opts: GenerateCliOptions): Promise<void> {
  if (path.resolve(opts.data) === path.resolve(opts.out)) throw new HscrError('generate: --data and --out are the same file', 'E_ARG', opts.out);
  const counts = await generateFile(opts.model, opts.data, opts.out, {
    format: opts.format,
    n: opts.n,
    beta: opts.beta,
    k: opts.k,
    ratio: opts.ratio,
    perturb: opts.perturb,
    seed: opts.seed,
    limit: opts.limit,
    batchSize: opts.batch,
    alpha: opts.alpha,
    candidates: opts.candidates,
    plausibility: opts.plausibility,
    schedule: opts.schedule,
    mode: opts.mode,
    views: opts.views,
    device: opts.device,
    dtype: opts.dtype,
    allowNonFinite: opts.allowNonFinite,
    quiet: opts.quiet,
    truncate: opts.truncate,
    overwrite: opts.overwrite,
  });
  if (counts.shortened) process.stderr.write(`hscr generate: shortened ${counts.shortened} questions to fit the model's context (--truncate)\n`);
  if (counts.truncated) {
    const { line, bytes } = counts.truncated;
    process.stderr.write(`hscr generate: cut off the partial line ${line} (${bytes} bytes) a killed run left at the end of ${opts.out}\n`);
  }
  process.stdout.write(`${formatGenerateCounts(counts, opts)}\n`);
}

export function registerGenerateCommands(program: Command): void {
  const d = HSCR_DEFAULTS;
  program
    .command('generate')
    .description('dispreferred answers by token-level self-contrastive rewarding (HSCR §3.1); resumable')
    .requiredOption('--model <dir>', 'the SFT model folder (config.json, safetensors, tokenizer, preprocessor_config.json)')
    .requiredOption('--data <file>', '{id, image, question, answer} records, or any format `hscr` loads')
    .requiredOption('--out <file>', 'prefs.jsonl to write (appended to; ids already there are skipped)')
    .option('--format <name>', `input format: auto, ${DATA_FORMATS.join(', ')}`, choice('--format', ['auto', ...DATA_FORMATS] as const), 'auto' as const)
    .option('--n <n>', 'sensitive token positions per sample', integer('--n', 1), d.topN)
    .option('--beta <x>', 'β of the contrastive logits (1+β)·full − β·dropped', number('--beta', 0, 100), d.beta)
    .option('--k <n>', 'dispreferred answers per sample', integer('--k', 1), d.k)
    .option('--ratio <x>', 'share of the visual input dropped for the degraded view', number('--ratio', 0, 1), d.dropRatio)
    .option('--perturb <kind>', 'how the degraded view is made: token, pixel, patch, latent', choice('--perturb', ['token', 'pixel', 'patch', 'latent'] as const), 'token' as const)
    .option('--seed <n>', 'seed of the dropped visual tokens (per sample: mixed with its id)', integer('--seed', 0, SEED_MAX), 0)
    .option('--limit <n>', 'use the first n records', integer('--limit', 1), d.samples)
    .option('--batch <n>', 'samples per forward pass (each runs in both views)', integer('--batch', 1), 8)
    .option('--alpha <x>', 'plausibility cut: p(v) ≥ α·max p in the chosen view', number('--alpha', 0, 1), d.plausibilityAlpha)
    .option('--candidates <n>', 'replacement candidates kept per sensitive position', integer('--candidates', 1), d.replacementCandidates)
    .option('--plausibility <rule>', `which view the α cut uses: ${PLAUSIBILITY_RULES.join(', ')}`, choice('--plausibility', PLAUSIBILITY_RULES), 'alpha-drop' as const)
    .option('--schedule <s>', "tokens replaced per answer: 'spread' (ceil(i·n/k)) or 'prefix' (i)", choice('--schedule', ['spread', 'prefix'] as const), d.dispreferredSchedule)
    .option('--mode <mode>', "'ranked' (k answers, for MLPO) or 'binary' (only the most replaced one, for DPO)", choice('--mode', ['ranked', 'binary'] as const), 'ranked' as const)
    .option('--views <layout>', "'split' (one decoder batch per view, shared image encoding; the faster) or 'joint' (both views in one forward batch, dropped rows padded)", choice('--views', ['joint', 'split'] as const), 'split' as const)
    .option('--device <d>', 'cpu, cuda or cuda:N')
    .option('--dtype <t>', 'float32, bfloat16 or float16', choice('--dtype', ['float32', 'bfloat16', 'float16'] as const))
    .option('--truncate', "shorten questions that do not fit the model's context (default: refuse them)")
    .option('--overwrite', 'start over instead of resuming the prefs already in --out')
    .option('--allow-non-finite', 'load a model/adapter/checkpoint whose tensors hold NaN/Inf (default: refused, naming the tensor)')
    .option('--quiet', 'no progress output')
    .action(runGenerate);
}
