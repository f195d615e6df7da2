import type { Command } from 'commander';
import { writeTrlFile } from '../generate/trl';
import { HSCR_DEFAULTS } from '../config';
import { HscrError } from '../errors';
import { defaultWordSimilarity, rerankFile, type RerankCounts, type RerankMode } from '../rerank/rerank';
import { embeddingWordSimilarity, type WordSimilarity } from '../rerank/similarity';
import { loadWordVectors } from '../model/embeddings';
import { folderFingerprint } from '../util/output';
import { legacyAlias } from './options';

interface RerankCliOptions {
  prefs: string;
  out: string;
  j: number;
  minGap: number;
  mode: RerankMode;
  model?: string;
  quiet?: boolean;
  overwrite?: boolean;
}

function positiveInteger(flag: string): (raw: string) => number {
  return (raw) => {
    const value = Number(raw);
    if (!/^\s*\d+\s*$/.test(raw) || value < 1) throw new HscrError(`${flag} must be a positive integer, got "${raw}"`, 'E_ARG', raw);
    return value;
  };
}

function nonNegativeNumber(flag: string): (raw: string) => number {
  return (raw) => {
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value) || value < 0) throw new HscrError(`${flag} must be a number ≥ 0, got "${raw}"`, 'E_ARG', raw);
    return value;
  };
}

function rerankMode(raw: string): RerankMode {
  if (raw !== 'ranked' && raw !== 'binary') throw new HscrError(`--mode must be 'ranked' or 'binary', got "${raw}"`, 'E_ARG', raw);
  return raw;
}

/** The summary `hscr rerank` prints: what was kept and how many samples fell short. */
export function formatRerankCounts(counts: RerankCounts, opts: { j: number; mode: RerankMode; out: string }): string {
  const wanted = opts.mode === 'binary' ? 1 : opts.j;
  const histogram = counts.keptHistogram.map((samples, kept) => `${kept}: ${samples}`).join(', ');
  return [
    `rerank: ${counts.samples} samples, ${counts.resumed} already in ${opts.out}, ${counts.written} written`,
    `kept per sample (kept: samples): ${histogram || 'none'}`,
    `fell short of ${wanted} (${opts.mode}): ${counts.shortfall}`,
  ].join('\n');
}

async function wordSimilarityFor(modelDir: string | undefined): Promise<WordSimilarity | undefined> {
  // WordNet first (the paper's source); the model's embeddings only for words WordNet lacks.
  return modelDir === undefined ? undefined : defaultWordSimilarity(embeddingWordSimilarity(await loadWordVectors(modelDir)));
}

async function runRerank(opts: RerankCliOptions): Promise<void> {
  const wordSimilarity = await wordSimilarityFor(opts.model);
  const fingerprint = { model: opts.model ? folderFingerprint(opts.model) : null };
  const counts = await rerankFile(opts.prefs, opts.out, { j: opts.j, minGap: opts.minGap, mode: opts.mode, wordSimilarity, quiet: opts.quiet, overwrite: opts.overwrite, fingerprint });
  if (counts.truncated) {
    const { line, bytes } = counts.truncated;
    process.stderr.write(`hscr rerank: cut off the partial line ${line} (${bytes} bytes) a killed run left at the end of ${opts.out}\n`);
  }
  process.stdout.write(`${formatRerankCounts(counts, opts)}\n`);
}

export function registerRerankCommands(program: Command): void {
  program
    .command('rerank')
    .description('re-rank dispreferred answers by similarity to the chosen one (HSCR §3.2); resumable')
    .requiredOption('--prefs <file>', 'prefs.jsonl from hscr generate')
    .addOption(legacyAlias('--in <file>', 'prefs'))
    .requiredOption('--out <file>', 'ranked.jsonl to write (appended to; ids already there are skipped)')
    .option('--j <n>', 'dispreferred answers kept per sample', positiveInteger('--j'), HSCR_DEFAULTS.j)
    .option('--min-gap <x>', 'minimum similarity gap between kept answers', nonNegativeNumber('--min-gap'), HSCR_DEFAULTS.minGap)
    .option('--mode <mode>', "'ranked' (j answers, for MLPO) or 'binary' (the least similar one, for DPO)", rerankMode, 'ranked' as RerankMode)
    .option('--model <dir>', 'words WordNet lacks are compared by this model’s token embeddings (default: exact match)')
    .option('--overwrite', 'start over instead of resuming the records already in --out')
    .option('--quiet', 'no progress output')
    .action(runRerank);

  program
    .command('export-trl')
    .description("write ranked preferences as TRL's preference JSONL (prompt/chosen/rejected/images), one line per pair")
    .requiredOption('--prefs <file>', 'ranked.jsonl from hscr rerank')
    .addOption(legacyAlias('--in <file>', 'prefs'))
    .requiredOption('--out <file>', 'TRL JSONL to write (replaced)')
    .action(async (o: { prefs: string; out: string }) => {
      const r = await writeTrlFile({ input: o.prefs, out: o.out });
      process.stdout.write(`wrote ${r.pairs} TRL pairs from ${r.samples} samples to ${o.out}\n`);
    });
}
