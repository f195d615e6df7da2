/**
 * The config of `hscr run --config FILE`: one JSON file that says what each stage of
 * init → SFT → generate → rerank → train → eval does, validated with zod (an unknown or wrong key is an
 * E_CONFIG naming it, e.g. `train.lr`). Every key is optional except `out`.
 *
 * Defaults: the method's settings (k, n, β, drop ratio, j, gap, γ, LoRA) are the paper's (HSCR_DEFAULTS);
 * the sizes (data, learning rates, epochs, batches) are those the ablation uses for a tiny model trained
 * from scratch on the phantom benchmark (ABLATION_DEFAULTS, see lib/train/ablate.ts) — a 7B model needs the
 * paper's (train.lr 5e-7, sft.enabled false with model.dir set to the SFT model).
 *
 * Every key with its default, except maxSteps, eval.limit, imageRoot and model.dir, shown with example values:
 * they have no default (epochs and the whole test split apply when they are not set):
 *
 *   { "out": "runs/a",
 *     "data": {"source": "phantom", "train": 4000, "test": 3000, "seed": 7, "size": 64}
 *          | {"source": "files", "train": "train.jsonl", "test": "test.jsonl", "format": "auto", "imageRoot": "img/"},
 *     "model": {"preset": "tiny", "seed": 0} | {"dir": "path/to/model"},
 *     "sft": {"enabled": true, "finetune": "full", "lr": 2e-3, "epochs": 4, "maxSteps": 100, "batch": 8, "seed": 1},
 *     "generate": {"k": 6, "n": 10, "beta": 0.9, "ratio": 0.7, "perturb": "token", "batch": 16, "limit": 2000, "seed": 0},
 *     "rerank": {"j": 3, "minGap": 0.1},
 *     "train": {"loss": "mlpo", "lr": 1e-4, "epochs": 2, "maxSteps": 50, "batch": 4, "gamma": 0.1, "loraR": 16, "loraAlpha": 32, "loraDropout": 0.05, "seed": 1},
 *     "eval": {"batch": 32, "maxNewTokens": 64, "variant": "strict", "limit": 300, "baseline": true, "imageReliance": false},
 *     "device": "cpu", "report": true }
 *
 * Relative paths are relative to the config file's folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { HSCR_DEFAULTS } from '../config';
import { DATA_FORMATS } from '../data/loaders';
import { HscrError } from '../errors';
import { METRIC_VARIANTS } from '../eval/metrics';
import { PRESET_NAMES } from '../model/presets';
import { ABLATION_DEFAULTS } from '../train/ablate';
import { MLPO_LOSS_KINDS } from '../train/config';

const A = ABLATION_DEFAULTS;
const H = HSCR_DEFAULTS;
const int = (min = 0) => z.number().int().min(min);
const positive = () => z.number().positive();
const STRATEGIES = ['token', 'pixel', 'patch', 'latent'] as const;

const phantomData = z.strictObject({
  source: z.literal('phantom'),
  train: int(1).default(A.phantom.train),
  test: int(1).default(A.phantom.test),
  seed: int().default(A.phantom.seed),
  size: int(16).default(A.phantom.size),
});

const fileData = z.strictObject({
  source: z.literal('files'),
  train: z.string().min(1),
  test: z.string().min(1),
  format: z.enum(['auto', ...DATA_FORMATS]).default('auto'),
  imageRoot: z.string().min(1).optional(),
});

export const pipelineConfigSchema = z.strictObject({
  out: z.string().min(1),
  data: z.discriminatedUnion('source', [phantomData, fileData]).default({ source: 'phantom', ...A.phantom }),
  model: z
    .strictObject({
      preset: z.enum(PRESET_NAMES as unknown as [string, ...string[]]).default(A.preset),
      seed: int().default(0),
      /** Start from this model folder instead of a randomly initialised one (the init stage is skipped). */
      dir: z.string().min(1).optional(),
    })
    .prefault({}),
  sft: z
    .strictObject({
      enabled: z.boolean().default(true),
      finetune: z.enum(['lora', 'full']).default(A.sft.finetune),
      lr: positive().default(A.sft.lr),
      epochs: positive().default(A.sft.epochs),
      maxSteps: int(1).optional(),
      batch: int(1).default(A.sft.batch),
      seed: int().default(1),
    })
    .prefault({}),
  generate: z
    .strictObject({
      k: int(1).default(H.k),
      n: int(1).default(H.topN),
      beta: z.number().min(0).default(H.beta),
      ratio: z.number().gt(0).lt(1).default(H.dropRatio),
      perturb: z.enum(STRATEGIES).default(A.generate.perturb),
      batch: int(1).default(A.generate.batch),
      limit: int(1).default(A.generate.limit),
      seed: int().default(0),
    })
    .prefault({}),
  rerank: z.strictObject({ j: int(1).default(H.j), minGap: z.number().min(0).default(H.minGap) }).prefault({}),
  train: z
    .strictObject({
      loss: z.enum(MLPO_LOSS_KINDS as unknown as [string, ...string[]]).default('mlpo'),
      lr: positive().default(A.train.lr),
      epochs: positive().default(A.train.epochs),
      maxSteps: int(1).optional(),
      batch: int(1).default(A.train.batch),
      gamma: positive().default(H.gamma),
      loraR: int(1).default(H.loraR),
      loraAlpha: positive().default(H.loraAlpha),
      loraDropout: z.number().min(0).lt(1).default(H.loraDropout),
      seed: int().default(1),
    })
    .prefault({}),
  eval: z
    .strictObject({
      batch: int(1).default(A.eval.batch),
      maxNewTokens: int(1).default(A.eval.maxNewTokens),
      variant: z.enum(METRIC_VARIANTS).default(A.eval.variant),
      /** Evaluate the first this many test records (default all). */
      limit: int(1).optional(),
      /** Also evaluate the SFT model, the baseline HSCR is compared with. */
      baseline: z.boolean().default(true),
      /** Also answer with a blank image and report the difference (doubles the eval time). */
      imageReliance: z.boolean().default(false),
    })
    .prefault({}),
  device: z.string().regex(/^(cpu|cuda(:\d+)?)$/, 'cpu, cuda or cuda:N').default('cpu'),
  report: z.boolean().default(true),
});

export type PipelineConfig = z.output<typeof pipelineConfigSchema>;

/** One line per problem, each naming its key: `train.lr: expected number, received string`. */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const at = issue.path.map(String).join('.');
      if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => `${at ? `${at}.` : ''}${k}: not a setting`).join('; ');
      return `${at || '(top level)'}: ${issue.message}`;
    })
    .join('; ');
}

/** Validates a parsed config and resolves its paths against `baseDir`. */
export function resolvePipelineConfig(raw: unknown, file = '<config>', baseDir = process.cwd()): PipelineConfig {
  const parsed = pipelineConfigSchema.safeParse(raw);
  if (!parsed.success) throw new HscrError(`${file}: ${describeIssues(parsed.error)}`, 'E_CONFIG', parsed.error.issues[0]?.path.join('.'));
  const c = parsed.data;
  const at = (p: string) => path.resolve(baseDir, p);
  c.out = at(c.out);
  if (c.model.dir) c.model.dir = at(c.model.dir);
  if (c.data.source === 'files') {
    c.data.train = at(c.data.train);
    c.data.test = at(c.data.test);
    if (c.data.imageRoot) c.data.imageRoot = at(c.data.imageRoot);
  }
  if (!c.sft.enabled && !c.model.dir) throw new HscrError(`${file}: sft.enabled: false needs model.dir (the SFT model to start from)`, 'E_CONFIG', 'sft.enabled');
  return c;
}

export function loadPipelineConfig(file: string): PipelineConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new HscrError(`${file}: not a readable JSON config (${(e as Error).message})`, 'E_CONFIG', file);
  }
  return resolvePipelineConfig(raw, file, path.dirname(path.resolve(file)));
}
