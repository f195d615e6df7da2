/**
 * `hscr sft` (supervised fine-tuning, the starting model), `hscr train` (MLPO / DPO / one-level ablations on
 * ranked.jsonl) and `hscr ablate` (the paper's comparisons on the phantom benchmark). Defaults are the
 * paper's (HSCR_DEFAULTS). With --nproc N (or torchrun's variables) the command runs data-parallel.
 */
import * as path from 'node:path';
import type { Command } from 'commander';
import { HSCR_DEFAULTS } from '../config';
import { DATA_FORMATS, type DataFormat } from '../data/loaders';
import { HscrError } from '../errors';
import { runAblation } from '../train/ablate';
import { MLPO_LOSS_KINDS, type LrScheduleKind, type MlpoLossKind, type TrainConfigInput } from '../train/config';
import { distEnvFrom, launchWorkers, stripLauncherFlags } from '../train/launcher';
import { runMlpo } from '../train/mlpo';
import { runSft } from '../train/sft';
import { finalAdapterDir, finalModelDir } from '../train/loop';
import { writeRunReport } from '../report';
import { choice, integer, number, SEED_MAX } from './options';

function nameList(flag: string): (raw: string) => string[] {
  return (raw) => {
    const names = raw.split(',').map((s) => s.trim());
    if (names.some((n) => !/^[A-Za-z0-9_]+$/.test(n))) throw new HscrError(`${flag} must be comma-separated module names, got "${raw}"`, 'E_ARG', raw);
    return names;
  };
}

interface EngineCliOptions {
  model: string;
  out: string;
  finetune: 'lora' | 'full';
  loraR: number;
  loraAlpha: number;
  loraDropout: number;
  loraTargets?: string[];
  loraScope: 'language_model' | 'all';
  lr: number;
  schedule: LrScheduleKind;
  warmupRatio: number;
  warmupSteps?: number;
  epochs: number;
  maxSteps?: number;
  batch: number;
  gradAccum: number;
  maxGradNorm: number;
  weightDecay: number;
  seed: number;
  saveSteps: number;
  saveTotalLimit: number;
  device: string;
  resume?: boolean;
  overwrite?: boolean;
  quiet?: boolean;
  json?: boolean;
  maxNonfiniteSteps: number;
  allowNonFinite?: boolean;
  nproc: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort?: number;
}

/** The engine's flags, shared by sft and train; only the learning rate's default differs. */
function engineOptions(cmd: Command, lr: number): Command {
  const d = HSCR_DEFAULTS;
  return cmd
    .requiredOption('--model <dir>', 'base model folder')
    .requiredOption('--out <dir>', 'run folder: adapter/ or model/, checkpoints, metrics.jsonl')
    .option('--finetune <mode>', "'lora' (adapters, base frozen) or 'full'", choice('--finetune', ['lora', 'full'] as const), 'lora' as const)
    .option('--lora-r <n>', 'LoRA rank', integer('--lora-r', 1), d.loraR)
    .option('--lora-alpha <x>', 'LoRA alpha (scale alpha/r)', number('--lora-alpha', 0), d.loraAlpha)
    .option('--lora-dropout <p>', 'dropout on the LoRA input', number('--lora-dropout', 0, 0.999), d.loraDropout)
    .option('--lora-targets <names>', 'comma-separated module names (default q,k,v,o,gate,up,down _proj)', nameList('--lora-targets'))
    .option('--lora-scope <s>', "'language_model' or 'all' (vision tower too)", choice('--lora-scope', ['language_model', 'all'] as const), 'language_model' as const)
    .option('--lr <x>', 'peak learning rate', number('--lr', 0), lr)
    .option('--schedule <s>', 'lr schedule: cosine, linear, constant', choice('--schedule', ['cosine', 'linear', 'constant'] as const), d.schedule)
    .option('--warmup-ratio <x>', 'share of steps warming up', number('--warmup-ratio', 0, 1), d.warmupRatio)
    .option('--warmup-steps <n>', 'warm-up steps (overrides --warmup-ratio)', integer('--warmup-steps', 0))
    .option('--epochs <x>', 'epochs', number('--epochs', 0), d.epochs)
    .option('--max-steps <n>', 'stop after n optimizer steps (overrides --epochs)', integer('--max-steps', 1))
    .option('--batch <n>', 'samples per micro-batch per process', integer('--batch', 1), d.batchPerDevice)
    .option('--grad-accum <n>', 'micro-batches per optimizer step', integer('--grad-accum', 1), d.gradAccum)
    .option('--max-grad-norm <x>', 'global gradient-norm clip (0 = off)', number('--max-grad-norm', 0), d.maxGradNorm)
    .option('--weight-decay <x>', 'AdamW decoupled weight decay', number('--weight-decay', 0), d.weightDecay)
    .option('--seed <n>', 'seed of data order, LoRA init and dropout', integer('--seed', 0, SEED_MAX), 42)
    .option('--save-steps <n>', 'checkpoint every n steps (0 = only the final result)', integer('--save-steps', 0), 500)
    .option('--save-total-limit <n>', 'checkpoints kept (0 = all)', integer('--save-total-limit', 0), 2)
    .option('--device <d>', 'cpu, cuda or cuda:N (with several ranks on CUDA: cuda:LOCAL_RANK)', 'cpu')
    .option('--max-nonfinite-steps <n>', 'stop the run after n steps in a row with a NaN/Inf loss or gradient (each is skipped)', integer('--max-nonfinite-steps', 1), 5)
    .option('--allow-non-finite', 'load a model/adapter/checkpoint whose tensors hold NaN/Inf (default: refused, naming the tensor)')
    .option('--resume', 'continue from the newest checkpoint in --out')
    .option('--overwrite', 'start over in an --out that holds a run')
    .option('--quiet', 'no progress output')
    .option('--json', 'print the result as JSON')
    .option('--nproc <n>', 'data-parallel processes on this machine', integer('--nproc', 1), 1)
    .option('--nnodes <n>', 'machines in the job', integer('--nnodes', 1), 1)
    .option('--node-rank <n>', 'this machine’s index', integer('--node-rank', 0), 0)
    .option('--master-addr <host>', 'rank 0’s machine (TCPStore rendezvous)', '127.0.0.1')
    .option('--master-port <n>', 'rendezvous port (default: a free one on one machine, 29500 across machines)', integer('--master-port', 1));
}

/** With --nproc/--nnodes and no torchrun variables, this process only launches the ranks. */
async function launchedElsewhere(o: EngineCliOptions): Promise<boolean> {
  if ((o.nproc === 1 && o.nnodes === 1) || distEnvFrom() !== null) return false;
  const code = await launchWorkers(
    { nproc: o.nproc, nnodes: o.nnodes, nodeRank: o.nodeRank, masterAddr: o.masterAddr, masterPort: o.masterPort },
    { args: stripLauncherFlags(process.argv.slice(1)) },
  );
  if (code !== 0) throw new HscrError(`a training rank failed (exit code ${code})`, 'E_DIST', code);
  return true;
}

/** The device of this rank: several ranks on CUDA take one GPU each. */
function rankDevice(device: string): string {
  const env = distEnvFrom();
  return device === 'cuda' && env && env.worldSize > 1 ? `cuda:${env.localRank}` : device;
}

function engineConfig(o: EngineCliOptions): TrainConfigInput {
  return {
    modelDir: o.model,
    outputDir: o.out,
    finetune: o.finetune,
    lora: { r: o.loraR, alpha: o.loraAlpha, dropout: o.loraDropout, targets: o.loraTargets, scope: o.loraScope },
    learningRate: o.lr,
    lrSchedule: o.schedule,
    warmupRatio: o.warmupRatio,
    warmupSteps: o.warmupSteps,
    epochs: o.epochs,
    maxSteps: o.maxSteps,
    batchPerDevice: o.batch,
    gradAccum: o.gradAccum,
    maxGradNorm: o.maxGradNorm,
    weightDecay: o.weightDecay,
    seed: o.seed,
    saveSteps: o.saveSteps,
    saveTotalLimit: o.saveTotalLimit,
    device: rankDevice(o.device),
    maxNonFiniteSteps: o.maxNonfiniteSteps,
    allowNonFinite: o.allowNonFinite === true,
  };
}

const isMainRank = () => (distEnvFrom()?.rank ?? 0) === 0;

function report(o: EngineCliOptions, summary: Record<string, unknown>, line: string): void {
  if (!isMainRank()) return;
  process.stdout.write(o.json ? `${JSON.stringify(summary, null, 2)}\n` : `${line}\n`);
}

/**
 * One stderr line when a preference run moved nothing: |rewards/margins| below 1e-3 after all its steps means
 * the policy never left the reference (the paper's 7B learning rate, 5e-7, does that to small models).
 */
export function learnedNothingWarning(metrics: Record<string, number | undefined>, steps: number, lr: number): string {
  const margin = metrics['rewards/margins'];
  if (steps === 0 || margin === undefined || !Number.isFinite(margin) || Math.abs(margin) >= 1e-3) return '';
  return (
    `warning: the run learned nothing measurable: rewards/margins ${margin.toFixed(4)} after ${steps} steps at --lr ${lr}. ` +
    'The paper\'s 5e-7 suits a 7B model; tiny/small models need a far larger one (see the README\'s pipeline settings).\n'
  );
}

const fmt = (v: number | undefined, digits = 4) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits));

interface SftCliOptions extends EngineCliOptions {
  data: string;
  format: DataFormat | 'auto';
  imageRoot?: string;
  truncate?: boolean;
}

async function runSftCommand(o: SftCliOptions): Promise<void> {
  if (await launchedElsewhere(o)) return;
  const quiet = o.quiet || !isMainRank();
  const r = await runSft({ config: engineConfig(o), data: o.data, format: o.format, imageRoot: o.imageRoot, truncate: o.truncate, resume: o.resume, overwrite: o.overwrite, quiet });
  const m = r.lastMetrics;
  const adapter = r.config.finetune === 'lora' ? `, adapter in ${path.resolve(finalAdapterDir(r.outputDir))}` : '';
  report(o, { ...r, config: undefined }, `sft: ${r.steps} steps (of ${r.totalSteps}), last loss ${fmt(m.loss)}, ${fmt(r.samplesPerSecond, 2)} samples/s; model in ${path.resolve(r.modelDir)}${adapter}`);
}

interface TrainCliOptions extends EngineCliOptions {
  prefs: string;
  loss: MlpoLossKind;
  gamma: number;
  lambdaExplicit: number;
  lambdaImplicit: number;
  implicitWarmin?: number;
  pairWeighting: 'sum' | 'mean';
  j: number;
  refCache?: string;
  /** --no-report sets it false. */
  report: boolean;
}

async function runTrainCommand(o: TrainCliOptions): Promise<void> {
  if (await launchedElsewhere(o)) return;
  const quiet = o.quiet || !isMainRank();
  const r = await runMlpo({
    config: {
      ...engineConfig(o),
      loss: o.loss,
      gamma: o.gamma,
      lambdaExplicit: o.lambdaExplicit,
      lambdaImplicit: o.lambdaImplicit,
      implicitSchedule: o.implicitWarmin ? { kind: 'linear-warmin', steps: o.implicitWarmin } : { kind: 'constant' },
      pairWeighting: o.pairWeighting,
      maxRejected: o.j,
      referenceCacheDir: o.refCache,
    },
    prefs: o.prefs,
    resume: o.resume,
    overwrite: o.overwrite,
    quiet,
  });
  const m = r.lastMetrics;
  if (isMainRank()) process.stderr.write(learnedNothingWarning(m, r.steps, r.config.learningRate));
  const html = isMainRank() && o.report ? (await writeRunReport(o.out, { title: `hscr train — ${o.loss}`, config: r.config, ranked: [o.prefs] })).file : undefined;
  report(
    o,
    { ...r, config: undefined, report: html },
    [
      `${o.loss}: ${r.samples} samples (${r.skippedEmpty} without dispreferred answers left out, ${r.skippedBlank} blank dispreferred answers dropped), ${r.steps} steps (of ${r.totalSteps}), ${fmt(r.samplesPerSecond, 2)} samples/s`,
      `last step: loss ${fmt(m.loss)}, rewards/accuracies ${fmt(m['rewards/accuracies'], 3)}, rewards_implicit/accuracies ${fmt(m['rewards_implicit/accuracies'], 3)}, rewards/margins ${fmt(m['rewards/margins'])}`,
      `reference log-probs ${r.referenceCached ? 'from the cache' : 'computed and cached'}: ${r.referenceFile}; ${r.config.finetune === 'lora' ? `adapter in ${path.resolve(finalAdapterDir(r.outputDir))}` : `model in ${path.resolve(finalModelDir(r.outputDir))}`}`,
      ...(html ? [`report: ${html}`] : []),
    ].join('\n'),
  );
}

export function registerTrainCommands(program: Command): void {
  const d = HSCR_DEFAULTS;
  engineOptions(program.command('sft').description('supervised fine-tuning on VQA records (loss on answer tokens only); leaves <out>/model (and <out>/adapter)'), d.sftLr)
    .requiredOption('--data <file>', 'training records {id, image, question, answer} (any format hscr loads)')
    .option('--format <name>', `input format: auto, ${DATA_FORMATS.join(', ')}`, choice('--format', ['auto', ...DATA_FORMATS] as const), 'auto' as const)
    .option('--image-root <dir>', 'folder the image names are relative to')
    .option('--truncate', "shorten questions that do not fit the model's context (default: refuse them)")
    .action(runSftCommand);

  engineOptions(program.command('train').description('multi-level preference optimisation (HSCR §3.3) on ranked.jsonl, or its DPO / one-level ablations; leaves <out>/adapter'), d.lr)
    .requiredOption('--prefs <file>', 'ranked.jsonl from hscr rerank')
    .option('--loss <kind>', `${MLPO_LOSS_KINDS.join(', ')} (dpo: one rejected answer, explicit term only)`, choice('--loss', MLPO_LOSS_KINDS), 'mlpo' as const)
    .option('--gamma <x>', 'reward scale γ', number('--gamma', 0), d.gamma)
    .option('--lambda-explicit <x>', 'weight of the explicit term', number('--lambda-explicit', 0), d.lambdaExplicit)
    .option('--lambda-implicit <x>', 'weight of the implicit term', number('--lambda-implicit', 0), d.lambdaImplicit)
    .option('--implicit-warmin <n>', 'warm the implicit weight in linearly over n steps', integer('--implicit-warmin', 1))
    .option('--pair-weighting <w>', "'sum' over pairs (paper) or 'mean'", choice('--pair-weighting', ['sum', 'mean'] as const), d.pairWeighting)
    .option('--j <n>', 'ranked dispreferred answers used per sample', integer('--j', 1), d.j)
    .option('--ref-cache <dir>', 'where reference log-probs are cached (default --out)')
    .option('--no-report', 'do not write <out>/report.html (curves, config, ranked-list sample)')
    .action(runTrainCommand);

  program
    .command('ablate')
    .description("the paper's comparisons on the phantom benchmark (Tables 1/3, 4, 5, 6), mean ± std over seeds")
    .requiredOption('--config <file>', 'ablation config JSON (see lib/train/ablate.ts)')
    .option('--out <dir>', 'work folder (default: the config’s, else ./ablate-runs)')
    .option('--only <tables>', 'comma-separated subset: main, levels, strategy, ratio')
    .option('--quiet', 'no progress output')
    .action(async (o: { config: string; out?: string; only?: string; quiet?: boolean }) => {
      const r = await runAblation({ configFile: o.config, outDir: o.out, only: o.only?.split(',').map((s) => s.trim()), quiet: o.quiet });
      const html = await writeRunReport(path.resolve(o.out ?? r.config.out), { title: 'hscr ablate', config: r.config });
      process.stdout.write(`${r.report}\n\nreport: ${html.file}\n`);
    });
}
