/** `hscr phantom`: writes the synthetic benchmark. */
import type { Command } from 'commander';
import { HscrError } from '../errors';
import { generatePhantom, PHANTOM_DEFAULT_SIZE } from '../data/phantom';
import { createProgress } from '../util/progress';
import { checkOutputFolder } from '../util/output';
import { parseInteger, SEED_MAX } from './options';

/** Parses a whole number option; bad input is E_ARG naming the option. */
export function intArg(name: string, raw: string | undefined, fallback?: number, min = -Infinity, max = Number.MAX_SAFE_INTEGER): number {
  if (raw === undefined) {
    if (fallback === undefined) throw new HscrError(`${name} is required`, 'E_ARG');
    return fallback;
  }
  return parseInteger(name, raw, min, max);
}

export function numberArg(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v)) throw new HscrError(`${name} must be a number, got "${raw}"`, 'E_ARG', raw);
  return v;
}

interface PhantomCliOptions {
  out: string;
  train: string;
  test: string;
  seed: string;
  size?: string;
  priorBias?: string;
  quiet?: boolean;
  overwrite?: boolean;
}

export function registerDataCommands(program: Command): void {
  program
    .command('phantom')
    .description('write the synthetic medical VQA benchmark (PNG images, train.jsonl, test.jsonl); same seed, same bytes')
    .requiredOption('--out <dir>', 'output folder')
    .requiredOption('--train <n>', 'training items')
    .requiredOption('--test <n>', 'test items (always balanced)')
    .requiredOption('--seed <n>', 'seed, 0 to 4294967295')
    .option('--size <px>', 'image width and height', String(PHANTOM_DEFAULT_SIZE))
    .option('--prior-bias <p>', "training split only: probability of each question family's favoured answer (e.g. 'yes')")
    .option('--overwrite', 'replace a dataset already in --out')
    .option('--quiet', 'no progress output')
    .action(async (o: PhantomCliOptions) => {
      const opts = {
        outDir: o.out,
        train: intArg('--train', o.train, undefined, 0, 10_000_000),
        test: intArg('--test', o.test, undefined, 0, 10_000_000),
        seed: intArg('--seed', o.seed, undefined, 0, SEED_MAX),
        size: intArg('--size', o.size, PHANTOM_DEFAULT_SIZE, 16, 1024),
        priorBias: numberArg('--prior-bias', o.priorBias),
        overwrite: o.overwrite,
      };
      checkOutputFolder(o.out);
      const progress = createProgress({ label: 'phantom', total: opts.train + opts.test, quiet: o.quiet });
      try {
        const result = await generatePhantom({ ...opts, onProgress: () => progress.tick() });
        progress.stop();
        process.stdout.write(`wrote ${result.train.length} train and ${result.test.length} test items (${result.files.length} files) to ${o.out}\n`);
      } finally {
        progress.stop();
      }
    });
}
