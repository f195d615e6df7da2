import path from 'path';
import type { Command } from 'commander';
import { doctor, formatDoctor } from '../doctor';
import { loadDataset } from '../data/loaders';
import { evaluateImageReliance } from '../eval/run';
import { loadPredictor } from '../model/predictor';
import { ABLATION_DEFAULTS, runAblation } from '../train/ablate';
import { finalModelDir } from '../train/loop';
import { writeRunReport } from '../report';

export interface DemoOptions {
  out: string;
  seed: number;
  quiet?: boolean;
}

const pct = (v: number | null): string => (v === null ? '–' : `${(v * 100).toFixed(2)}`);

/**
 * Closed and open score of the SFT model with the real images minus with a blank one. The comparison of the
 * tables only means something when this is clearly positive: a model that ignores the picture has no
 * modality-coupled tokens for §3.1 to find.
 */
async function sftImageReliance(root: string, seed: number): Promise<string> {
  const records = (await loadDataset(path.join(root, 'phantom', 'test.jsonl'), { format: 'hscr' })).records;
  const predictor = await loadPredictor(finalModelDir(path.join(root, `seed-${seed}`, 'sft')), undefined, { maxNewTokens: ABLATION_DEFAULTS.eval.maxNewTokens });
  try {
    const outDir = path.join(root, `seed-${seed}`, 'eval', 'sft-reliance');
    const r = await evaluateImageReliance(records, predictor, { batchSize: ABLATION_DEFAULTS.eval.batch, variant: ABLATION_DEFAULTS.eval.variant, outDir, name: 'SFT' });
    const blank = r.blank.overall;
    return `SFT image reliance (real − blank image, points): closed ${pct(r.overall.closed)}, open ${pct(r.overall.open)} (blank image: closed ${pct(blank.closed.accuracy)}, open ${pct(blank.open.score)})`;
  } finally {
    predictor.dispose();
  }
}

/**
 * The embedded demo: the whole HSCR pipeline on the phantom benchmark that ships with hscr, at tiny size,
 * on whatever machine this is — phantom data → random tiny model → SFT → self-contrastive preference data
 * (§3.1) → similarity re-ranking (§3.2) → MLPO (§3.3) → evaluation, beside the SFT and binary-DPO baselines.
 * It runs ABLATION_DEFAULTS, sized for a 0.8M-parameter model trained from scratch on 64-px synthetic scans
 * in a few minutes on 2 CPU cores, not the paper's 7B settings (see the comments there).
 */
export async function runDemo(o: DemoOptions): Promise<string> {
  const report = await doctor({ gemmSize: 512 });
  process.stdout.write(`${formatDoctor(report)}\n\n`);
  const root = path.resolve(o.out);
  const result = await runAblation({
    config: { out: root, seeds: [o.seed], tables: ['main', 'levels'] },
    quiet: o.quiet,
  });
  return `${result.report}\n\n${await sftImageReliance(root, o.seed)}`;
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
      const html = await writeRunReport(path.resolve(o.out), { title: 'hscr demo', config: { seed: o.seed, out: path.resolve(o.out) } });
      process.stdout.write(`${table}\n\nruns: ${path.resolve(o.out)}\nreport (figures, tables, ranked lists): ${html.file}\n`);
    });
}
