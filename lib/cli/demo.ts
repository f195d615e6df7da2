import path from 'path';
import type { Command } from 'commander';
import { doctor, formatDoctor } from '../doctor';
import { runAblation } from '../train/ablate';

export interface DemoOptions {
  out: string;
  seed: number;
  quiet?: boolean;
}

/**
 * The embedded demo: the whole HSCR pipeline on the phantom benchmark that ships with hscr, at tiny size,
 * on whatever machine this is — phantom data → random tiny model → SFT → self-contrastive preference data
 * (§3.1) → similarity re-ranking (§3.2) → MLPO (§3.3) → evaluation, beside the SFT and binary-DPO baselines.
 */
export async function runDemo(o: DemoOptions): Promise<string> {
  const report = await doctor({ gemmSize: 512 });
  process.stdout.write(`${formatDoctor(report)}\n\n`);
  const result = await runAblation({
    config: { out: path.resolve(o.out), seeds: [o.seed], tables: ['main', 'levels'] },
    quiet: o.quiet,
  });
  return result.report;
}

export function registerDemoCommands(program: Command): void {
  program
    .command('demo')
    .description('doctor, then HSCR end to end on the embedded phantom benchmark (tiny model, one seed)')
    .option('--out <dir>', 'working folder (a rerun continues from what is there)', 'hscr-demo')
    .option('--seed <n>', 'seed of the model and the training runs', (v) => parseInt(v, 10), 1)
    .option('--quiet', 'no progress output')
    .action(async (o: DemoOptions) => {
      const table = await runDemo(o);
      process.stdout.write(`${table}\n\nfigures and runs: ${path.resolve(o.out)}\n`);
    });
}
