/**
 * Training throughput on the phantom benchmark: SFT (LoRA and full fine-tuning) and MLPO (LoRA, j ranked
 * dispreferred answers per sample, all of a sample's rows in one batched forward), samples/s and tokens/s
 * as the trainer's metrics report them (median over the steps after the first, which warms up).
 *   node dist/bench/train.js [--preset tiny|small] [--samples 32] [--batch 8] [--steps 12] [--out /tmp/hscr-bench-train]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initModel } from '../lib/cli/model';
import { generatePhantom, familyAnswers, type FamilyName } from '../lib/data/phantom';
import { runMlpo } from '../lib/train/mlpo';
import { runSft } from '../lib/train/sft';
import type { StepMetrics } from '../lib/train/metrics';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

function collect(): { onStep: (m: StepMetrics) => void; summary: () => string } {
  const steps: StepMetrics[] = [];
  return {
    onStep: (m) => steps.push(m),
    summary: () => {
      const warm = steps.slice(1);
      return `${median(warm.map((m) => m.samples_per_second)).toFixed(1)} samples/s, ${median(warm.map((m) => m.tokens_per_second)).toFixed(0)} answer tokens/s (median of ${warm.length} steps)`;
    },
  };
}

/** ranked.jsonl with up to 3 other answers of the question's family per sample (descriptions left out). */
function writeRanked(file: string, records: { id: string; image: string; question: string; answer: string; family?: string }[]): number {
  const lines = records
    .filter((r) => r.family && r.family !== 'description')
    .map((r) => {
      const others = familyAnswers(r.family as FamilyName).filter((a) => a !== r.answer).slice(0, 3);
      return JSON.stringify({ id: r.id, image: r.image, question: r.question, chosen: r.answer, rejected: others.map((text, i) => ({ text, replacements: [], similarity: 0.9 - 0.2 * i })) });
    });
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return lines.length;
}

async function main(): Promise<void> {
  const preset = arg('preset', 'tiny') as 'tiny' | 'small';
  const samples = Number(arg('samples', '32'));
  const batch = Number(arg('batch', '8'));
  const steps = Number(arg('steps', '12'));
  const out = path.resolve(arg('out', '/tmp/hscr-bench-train'));
  fs.rmSync(out, { recursive: true, force: true });
  const model = path.join(out, 'model');
  await initModel({ preset, out: model, seed: 0 });
  const data = await generatePhantom({ outDir: path.join(out, 'phantom'), train: samples, test: 0, seed: 1 });
  const common = { modelDir: model, maxSteps: steps, batchPerDevice: batch, learningRate: 1e-3, saveSteps: 0 };
  process.stdout.write(`preset ${preset}, ${samples} phantom samples, batch ${batch}, ${steps} steps, threads ${process.env.HSCR_NUM_THREADS ?? 'all cores'}\n`);

  for (const finetune of ['lora', 'full'] as const) {
    const c = collect();
    await runSft({ config: { ...common, outputDir: path.join(out, `sft-${finetune}`), finetune }, data: path.join(out, 'phantom', 'train.jsonl'), quiet: true, onStep: c.onStep });
    process.stdout.write(`sft (${finetune}): ${c.summary()}\n`);
  }

  const ranked = path.join(out, 'ranked.jsonl');
  const n = writeRanked(ranked, data.train);
  const c = collect();
  const started = Date.now();
  const r = await runMlpo({ config: { ...common, batchPerDevice: Math.max(1, batch / 2), outputDir: path.join(out, 'mlpo') }, prefs: ranked, quiet: true, onStep: c.onStep });
  process.stdout.write(`mlpo (lora, ${n} samples with ≤ 3 rejected): ${c.summary()}; reference log-probs + training ${((Date.now() - started) / 1000).toFixed(1)} s (${r.referenceCached ? 'cached' : 'computed'} reference)\n`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exitCode = 1;
});
