/**
 * `hscr ablate`: the paper's comparisons on the phantom benchmark, end to end per seed —
 * init → SFT → HSCR preference data (generate → rerank) → MLPO and its variants → evaluation — printed as
 * the paper's tables with mean ± std over the seeds:
 *   main     (Tables 1, 2 and Figure 4): SFT vs binary DPO vs oracle DPO (positive control) vs HSCR, each
 *            difference to SFT with a paired-bootstrap 95% interval (lib/train/recipe.ts)
 *   levels   (Table 4):   explicit-only vs implicit-only vs both
 *   strategy (Table 5):   how the degraded view is made: token / pixel / patch / latent
 *   ratio    (Table 6):   share of the visual input dropped: 0.3 / 0.5 / 0.7 / 0.9
 * Every stage (phantom data, init, pretraining, SFT, preference data, the oracle's data, each variant's
 * training, evaluation, training-list accuracies and Figure 4) leaves a manifest (lib/pipeline/manifest.ts):
 * `<out>/pipeline/phantom.manifest.json` and `<out>/seed-N/pipeline/<stage>.manifest.json`, holding the hash
 * of the settings the stage uses and of its input files, and the hashes of its outputs. A stage whose manifest
 * matches is skipped (a stopped ablation continues where it was; a rerun with the same config does nothing);
 * any other — a setting it uses changed, an input changed (so everything downstream of a redone stage follows),
 * an output edited, no manifest (killed, or a folder from before manifests) — is redone from scratch.
 *
 * The recipe follows the paper where the phantom benchmark allows: SFT on the VQA training split plus the
 * instruction split; HSCR preference data from the first `generate.limit` (the paper's 2,000) instruction
 * entries; re-ranking by Corley–Mihalcea similarity over WordNet; MLPO. Table 1 scores the VQA test split,
 * Table 2 the instruction test split with the exact judge (lib/eval/judge.ts), Figure 4 the log-prob gap of
 * each instruction test answer over its one-attribute swap. The validation splits are written for choosing
 * settings; nothing reads the test splits but the final evaluation.
 *
 * Config file (JSON; every field optional, defaults below):
 *   { "out": "ablate-runs", "seeds": [1,2,3],
 *     "phantom": {"train": 4000, "test": 3000, "seed": 7, "size": 64, "val": 600,
 *                 "instruct": {"train": 2000, "val": 1500, "test": 1500}},
 *     "preset": "tiny",
 *     "pretrain": {"epochs": 3, "lr": 2e-3, "batch": 8, "captionsInSft": true},
 *     "sft": {"finetune": "full", "lr": 2e-3, "epochs": 4, "batch": 8},
 *     "generate": {"k": 6, "n": 10, "beta": 0.9, "ratio": 0.7, "perturb": "token", "batch": 16, "limit": 2000},
 *     "rerank": {"j": 3, "minGap": 0.1, "gapScale": "list"},
 *     "train": {"lr": 1e-4, "epochs": 2, "batch": 4, "gamma": 0.1, "loraR": 16, "loraAlpha": 32, "loraDropout": 0.05},
 *     "eval": {"batch": 32, "maxNewTokens": 64, "variant": "strict", "figure4": true, "figure4Items": null, "bootstrap": 2000},
 *     "control": {"kind": "onPolicy", "absenceSwaps": true, "chosen": "corrected", "lr": null, "limit": 2000, "pairs": 500},
 *     "tables": ["main", "levels", "strategy", "ratio"],
 *     "strategies": ["token", "pixel", "patch", "latent"], "ratios": [0.3, 0.5, 0.7, 0.9] }
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PHANTOM_RECIPE_DEFAULTS } from '../config';
import { HscrError } from '../errors';
import { initModel } from '../cli/model';
import { alignmentRecords, generatePhantom } from '../data/phantom';
import { loadDataset } from '../data/loaders';
import type { VqaRecord } from '../data/types';
import { checkVariant, type MetricVariant } from '../eval/metrics';
import { evaluate, writeBlankImage, type EvaluationResult } from '../eval/run';
import { generateFile } from '../generate/pipeline';
import { loadPredictor } from '../model/predictor';
import { rerankFile, type GapScale } from '../rerank/rerank';
import { applyAdapter } from './adapter';
import type { MlpoLossKind } from './config';
import { finalAdapterDir, finalModelDir } from './loop';
import { preferenceFileAccuracy, runMlpo } from './mlpo';
import { runSft } from './sft';
import { Rng, mixSeed } from '../data/prng';
import { attributeSwaps, correctAnswer } from '../eval/swap';
import { answerText } from '../data/phantom/instruct';
import { figure4Gaps, summarizeGaps, type GapItem } from '../eval/figure4';
import { judgeAnswer, judgeRecords, judgeReport, type JudgeScores } from '../eval/judge';
import { loadPredictions } from '../eval/predictions';
import { formatRecipe, recipeSummary, type RecipeSummary } from './recipe';
import { finishedManifest, hashInputs, hashPath, readManifest, stageKey, staleReason, writeManifest } from '../pipeline/manifest';
import { writeFileAtomic } from '../model/config';

export type ControlKind = 'swap' | 'onPolicy';
export type OnPolicyChosen = 'reference' | 'corrected';
export type TableName = 'main' | 'levels' | 'strategy' | 'ratio';
export const TABLE_NAMES: readonly TableName[] = ['main', 'levels', 'strategy', 'ratio'];
type Strategy = 'token' | 'pixel' | 'patch' | 'latent';

export interface AblationConfig {
  out: string;
  seeds: number[];
  phantom: { train: number; test: number; seed: number; size: number; val: number; instruct: { train: number; val: number; test: number } };
  preset: 'tiny' | 'small';
  /**
   * Vision-alignment pretraining before SFT (epochs 0: none): full fine-tuning of the random model on one
   * caption per training scan (lib/data/phantom/alignment.ts), then SFT continues from it.
   * `captionsInSft`: the SFT data holds the same captions beside the VQA and instruction items, so SFT
   * keeps training what the stage taught (without them SFT wipes it out: PHANTOM_RECIPE_DEFAULTS.pretrain).
   */
  pretrain: { epochs: number; lr: number; batch: number; captionsInSft: boolean };
  sft: { finetune: 'lora' | 'full'; lr: number; epochs: number; batch: number };
  /** `limit`: the first this many training records get preference data (the SFT set may be much larger). */
  generate: { k: number; n: number; beta: number; ratio: number; perturb: Strategy; batch: number; limit: number };
  rerank: { j: number; minGap: number; gapScale: GapScale };
  train: { lr: number; epochs: number; batch: number; gamma: number; loraR: number; loraAlpha: number; loraDropout: number };
  /**
   * `figure4Items`: Figure 4 scores the first this many instruction test prompts (null: all). On 500
   * prompts its paired intervals were ±0.1 nats for the gap and ±0.04 for its image part (3 seeds,
   * docs/RESULTS-recipe.md §5.4), while the teacher-forced real- and blank-image passes cost
   * about as much as generating the answers; the demo uses 500 to stay inside its time budget.
   */
  eval: { batch: number; maxNewTokens: number; variant: MetricVariant; figure4: boolean; figure4Items: number | null; bootstrap: number };
  /**
   * The oracle-DPO positive control (see ensureOracle). `kind`: 'swap' = rejected answers are swaps of the
   * reference answer made from the known scene (with `absenceSwaps`, every other lesion entry's rejected answer
   * is the lesion-free description); 'onPolicy' = the SFT model answers each prompt itself and, where the exact
   * judge finds a wrong attribute, that answer is the rejected one. `chosen` (onPolicy only): 'reference' = y_w;
   * 'corrected' = the model's own answer with its wrong attribute words replaced until the judge finds nothing
   * wrong (lib/eval/swap.ts correctAnswer), so the pair differs only where the model erred; y_w where that fails.
   * `lr` / `limit`: the control's own preference lr and number of preference entries it draws from; null = the
   * methods' (`train.lr`, `generate.limit`). `pairs`: the most pairs it keeps, the first in entry order (null:
   * all); the on-policy control stops asking the model once it has them. A fixed number of pairs, not of
   * entries, fixes the control's number of steps: a weaker SFT model errs on more entries and would otherwise
   * train longer (PHANTOM_RECIPE_DEFAULTS.oraclePairs says what that did on validation). A positive control
   * needs only to show the benchmark can see a real effect, so it may need more data or a larger step than
   * HSCR/DPO, whose settings stay as they are.
   */
  control: { kind: ControlKind; absenceSwaps: boolean; chosen: OnPolicyChosen; lr: number | null; limit: number | null; pairs: number | null };
  tables: TableName[];
  strategies: Strategy[];
  ratios: number[];
}

export const ABLATION_DEFAULTS: AblationConfig = {
  out: 'ablate-runs',
  seeds: [1, 2, 3],
  // Thousands of distinct scans, not a few hundred seen many times: on 200 items × 30 epochs the tiny model
  // memorises the training answers and falls below chance on the balanced test split (closed 32%, blank-image
  // reliance 0); 4000 × 4 epochs in the same time reaches closed 62% with +10 points from the image. 300 test
  // items keep a closed accuracy's standard error near 5 points (100 gave 31 closed questions).
  // 3000 VQA test items hold ~1000 closed questions (a third of the families are yes/no): a closed accuracy's
  // standard error near 1.5 points instead of 5. 1,500 instruction prompts for Table 2 and Figure 4 (and as
  // many for validation): on 500 (200) the hallucination rate's paired interval was ±1–3 points, as wide as
  // the positive control's effect; on 1,500 it is ±0.4–1.3 (docs/RESULTS-recipe.md §5.7). Generating them is cheap.
  phantom: { train: 4000, test: 3000, seed: 7, size: 64, val: 600, instruct: { train: 2000, val: 1500, test: 1500 } },
  preset: 'tiny',
  // A random tiny model learns lesions from the image only after a caption-alignment stage (LLaVA's stage 1;
  // PHANTOM_RECIPE_DEFAULTS.pretrain in lib/config.ts says why and what was measured).
  pretrain: { ...PHANTOM_RECIPE_DEFAULTS.pretrain },
  // A random tiny model needs full fine-tuning, a large lr and 4 epochs before it reads lesions from the image
  // (PHANTOM_RECIPE_DEFAULTS in lib/config.ts says why and what was measured).
  sft: { ...PHANTOM_RECIPE_DEFAULTS.sft },
  // The paper's budget: preference data from 2,000 entries of the instruction split (long answers with several
  // facts, where token replacement and similarity ranking mean something).
  generate: { k: 6, n: 10, beta: 0.9, ratio: 0.7, perturb: 'token', batch: 16, limit: 2000 },
  // Long instruction answers: the k answers' raw similarities to y_w lie within ~0.05 of each other, so a raw
  // 0.1 gap keeps one answer in 489 of 500 lists (measured) and MLPO degenerates to DPO; the gap is read on
  // similarities rescaled over each list instead (see GapScale).
  rerank: { j: 3, minGap: 0.1, gapScale: 'list' },
  // The paper's 5e-7 is for a 7B model; the lr was chosen on the VALIDATION splits with the oracle-DPO control
  // (PHANTOM_RECIPE_DEFAULTS.preferenceLr in lib/config.ts, with the measurements).
  train: { lr: PHANTOM_RECIPE_DEFAULTS.preferenceLr, epochs: 2, batch: 4, gamma: 0.1, loraR: 16, loraAlpha: 32, loraDropout: 0.05 },
  // Instruction answers run to 48 tokens (+ EOS); VQA answers stop at EOS after a few.
  eval: { batch: 32, maxNewTokens: 64, variant: 'strict', figure4: true, figure4Items: null, bootstrap: 2000 },
  control: { kind: PHANTOM_RECIPE_DEFAULTS.oracleControl, absenceSwaps: PHANTOM_RECIPE_DEFAULTS.oracleAbsenceSwaps, chosen: PHANTOM_RECIPE_DEFAULTS.oracleOnPolicyChosen, lr: PHANTOM_RECIPE_DEFAULTS.oracleLr, limit: PHANTOM_RECIPE_DEFAULTS.oracleLimit, pairs: PHANTOM_RECIPE_DEFAULTS.oraclePairs },
  tables: [...TABLE_NAMES],
  strategies: ['token', 'pixel', 'patch', 'latent'],
  ratios: [0.3, 0.5, 0.7, 0.9],
};

function configError(file: string, field: string, what: string, value: unknown): HscrError {
  return new HscrError(`${file}: "${field}" ${what}`, 'E_CONFIG', value);
}

/** Merges a config file over the defaults one level deep and checks what the stages do not check themselves. */
export function resolveAblationConfig(raw: Record<string, unknown>, file = '<config>'): AblationConfig {
  const out: Record<string, unknown> = { ...ABLATION_DEFAULTS };
  for (const [key, value] of Object.entries(raw)) {
    if (!(key in ABLATION_DEFAULTS)) throw configError(file, key, 'is not an ablation setting', value);
    const def = (ABLATION_DEFAULTS as unknown as Record<string, unknown>)[key];
    const isSection = typeof def === 'object' && def !== null && !Array.isArray(def);
    if (isSection && (typeof value !== 'object' || value === null || Array.isArray(value))) throw configError(file, key, 'must be an object', value);
    out[key] = isSection ? { ...(def as object), ...(value as object) } : value;
  }
  const c = out as unknown as AblationConfig;
  if (!Array.isArray(c.seeds) || c.seeds.length === 0 || !c.seeds.every((s) => Number.isInteger(s) && s >= 0)) throw configError(file, 'seeds', 'must be a non-empty list of integers ≥ 0', c.seeds);
  if (!Array.isArray(c.tables) || !c.tables.every((t) => TABLE_NAMES.includes(t))) throw configError(file, 'tables', `must list some of ${TABLE_NAMES.join(', ')}`, c.tables);
  if (!Array.isArray(c.strategies) || !c.strategies.every((s) => ['token', 'pixel', 'patch', 'latent'].includes(s))) throw configError(file, 'strategies', 'must list token, pixel, patch or latent', c.strategies);
  if (!Array.isArray(c.ratios) || !c.ratios.every((r) => typeof r === 'number' && r > 0 && r < 1)) throw configError(file, 'ratios', 'must be numbers in (0, 1)', c.ratios);
  if (typeof c.out !== 'string' || c.out === '') throw configError(file, 'out', 'must be a folder path', c.out);
  checkVariant(c.eval.variant);
  checkPretrain(c.pretrain, file);
  if (c.control.kind !== 'swap' && c.control.kind !== 'onPolicy') throw configError(file, 'control.kind', "must be 'swap' or 'onPolicy'", c.control.kind);
  if (c.control.chosen !== 'reference' && c.control.chosen !== 'corrected') throw configError(file, 'control.chosen', "must be 'reference' or 'corrected'", c.control.chosen);
  if (typeof c.control.absenceSwaps !== 'boolean') throw configError(file, 'control.absenceSwaps', 'must be true or false', c.control.absenceSwaps);
  if (c.control.lr !== null && (typeof c.control.lr !== 'number' || !(c.control.lr > 0) || !Number.isFinite(c.control.lr))) throw configError(file, 'control.lr', 'must be a positive number or null (null: train.lr)', c.control.lr);
  if (c.control.limit !== null && (!Number.isInteger(c.control.limit) || c.control.limit < 1)) throw configError(file, 'control.limit', 'must be an integer ≥ 1 or null (null: generate.limit)', c.control.limit);
  if (c.eval.figure4Items !== null && (!Number.isInteger(c.eval.figure4Items) || c.eval.figure4Items < 1)) throw configError(file, 'eval.figure4Items', 'must be an integer ≥ 1 or null (null: every instruction test prompt)', c.eval.figure4Items);
  if (c.control.pairs !== null && (!Number.isInteger(c.control.pairs) || c.control.pairs < 1)) throw configError(file, 'control.pairs', 'must be an integer ≥ 1 or null (null: every pair)', c.control.pairs);
  return c;
}

function checkPretrain(p: AblationConfig['pretrain'], file: string): void {
  if (!Number.isInteger(p.epochs) || p.epochs < 0) throw configError(file, 'pretrain.epochs', 'must be an integer ≥ 0 (0: no pretraining stage)', p.epochs);
  if (typeof p.lr !== 'number' || !(p.lr > 0) || !Number.isFinite(p.lr)) throw configError(file, 'pretrain.lr', 'must be a positive number', p.lr);
  if (!Number.isInteger(p.batch) || p.batch < 1) throw configError(file, 'pretrain.batch', 'must be an integer ≥ 1', p.batch);
  if (typeof p.captionsInSft !== 'boolean') throw configError(file, 'pretrain.captionsInSft', 'must be true or false', p.captionsInSft);
}

/** One trained variant: what data it learns from and with which loss. */
export interface Variant {
  key: string;
  label: string;
  loss: MlpoLossKind | 'sft';
  perturb: Strategy;
  ratio: number;
  /** Oracle DPO: rejected answers are one-attribute swaps made from the known scene (the positive control). */
  oracle?: boolean;
}

function hscrVariant(c: AblationConfig, perturb: Strategy, ratio: number): Variant {
  const isDefault = perturb === c.generate.perturb && ratio === c.generate.ratio;
  return { key: isDefault ? 'hscr' : `hscr-${perturb}-${ratio}`, label: 'HSCR', loss: 'mlpo', perturb, ratio };
}

/** The rows of each table, in the paper's order. */
export function tableRows(c: AblationConfig): Record<TableName, Variant[]> {
  const g = c.generate;
  const hscr = hscrVariant(c, g.perturb, g.ratio);
  return {
    main: [
      { key: 'sft', label: 'SFT', loss: 'sft', perturb: g.perturb, ratio: g.ratio },
      { key: 'dpo', label: 'DPO (binary)', loss: 'dpo', perturb: g.perturb, ratio: g.ratio },
      { key: 'oracle', label: 'oracle DPO (control)', loss: 'dpo', perturb: g.perturb, ratio: g.ratio, oracle: true },
      { ...hscr, label: 'HSCR' },
    ],
    levels: [
      { key: 'explicit', label: 'explicit only', loss: 'explicit', perturb: g.perturb, ratio: g.ratio },
      { key: 'implicit', label: 'implicit only', loss: 'implicit', perturb: g.perturb, ratio: g.ratio },
      { ...hscr, label: 'explicit + implicit (HSCR)' },
    ],
    strategy: c.strategies.map((s) => ({ ...hscrVariant(c, s, g.ratio), label: `${s} (ratio ${g.ratio})` })),
    ratio: c.ratios.map((r) => ({ ...hscrVariant(c, g.perturb, r), label: `ratio ${r} (${g.perturb})` })),
  };
}

export interface VariantScore {
  seed: number;
  key: string;
  closed: number | null;
  open: number | null;
  /** Training-list reward accuracies of the last step (preference variants). */
  explicitAccuracy?: number;
  implicitAccuracy?: number;
  /** Table 2: the exact judge on the instruction test split. */
  judge?: { precision: number | null; recall: number | null; f1: number | null; hallucinationRate: number | null; unparsedShare: number | null };
  /** Figure 4: mean log p(correct) − log p(swap) over the instruction test answers. */
  gap?: number;
}

export interface AblationResult {
  config: AblationConfig;
  scores: VariantScore[];
  report: string;
  /** Tables 1 and 2 with paired-bootstrap intervals against SFT (the main table), when it ran. */
  recipe?: RecipeSummary;
}

export interface AblationOptions {
  configFile?: string;
  config?: Record<string, unknown>;
  outDir?: string;
  only?: string[];
  quiet?: boolean;
  log?: (line: string) => void;
}

export interface PhantomFiles {
  train: string;
  test: string;
  /** SFT data: VQA train + instruction train. */
  sft: string;
  /** Pretraining data: one caption per scan of the SFT data (alignment.ts). */
  alignment: string;
  /** SFT data plus the alignment captions (pretrain.captionsInSft). */
  sftCaptions: string;
  /** Preference source: the instruction training split (VQA train when there is none). */
  prefSource: string;
  instructTest?: string;
}

interface SeedContext {
  c: AblationConfig;
  seed: number;
  dir: string;
  data: PhantomFiles & { testRecords: VqaRecord[]; instructRecords: VqaRecord[] };
  quiet: boolean;
  log: (line: string) => void;
  hashes: HashMemo;
}

/**
 * One stage of the ablation: what it reads (`inputs`, files or folders, hashed), the settings it uses (only
 * those, so that an unrelated change leaves it alone), what it leaves (`outputs`, hashed after it ran) and what
 * to remove before redoing it. Its manifest lives in `<dir>/pipeline/<name>.manifest.json`.
 */
interface AblationStage {
  name: string;
  /** The log line's text ("seed 1: SFT"). */
  label: string;
  settings: unknown;
  inputs: Record<string, string>;
  /** Called before (are there outputs without a manifest?) and after the stage ran. */
  outputs: () => Record<string, string>;
  clear: string[];
  run: () => Promise<void>;
}

/**
 * Input hashes already computed in this run, by path: the SFT model and the test splits are inputs of a dozen
 * stages each, and a rerun with nothing to do should hash them once. Emptied whenever a stage runs (it may
 * have rewritten any of them).
 */
type HashMemo = Map<string, string>;

function memoHash(memo: HashMemo, p: string): string {
  let h = memo.get(p);
  if (h === undefined) memo.set(p, (h = hashPath(p)));
  return h;
}

/** Runs a stage unless its manifest matches (lib/pipeline/manifest.ts); true when it ran. */
async function runStage(dir: string, log: (line: string) => void, memo: HashMemo, stage: AblationStage): Promise<boolean> {
  const inputs = hashInputs(stage.label, stage.inputs, (p) => memoHash(memo, p));
  const key = stageKey(stage.settings, inputs);
  const manifest = readManifest(dir, stage.name);
  const reason = staleReason(manifest, key, inputs, dir);
  if (reason === undefined) return false;
  // Outputs without a manifest: a folder written before stages had manifests, or a run killed inside the stage.
  const orphaned = !manifest && Object.values(stage.outputs()).some((p) => fs.existsSync(p));
  log(`${stage.label} (${orphaned ? `outputs without a manifest, from an earlier hscr or a stopped run: redone; ${reason}` : reason})`);
  memo.clear();
  for (const p of stage.clear) fs.rmSync(p, { recursive: true, force: true });
  const started = Date.now();
  await stage.run();
  writeManifest(dir, finishedManifest(dir, { ...stage, outputs: stage.outputs() }, inputs, (Date.now() - started) / 1000));
  return true;
}

/**
 * The phantom benchmark in `<root>/phantom`, redone whenever `phantom` settings change. The manifest hashes the
 * JSONL splits and meta.json, not the thousands of images: the images follow from the same settings (the
 * generator writes the same bytes for the same options), and hashing them would slow every rerun.
 */
export async function ensurePhantom(c: AblationConfig, root: string, log: (line: string) => void = () => undefined): Promise<PhantomFiles> {
  const dir = path.join(root, 'phantom');
  const train = path.join(dir, 'train.jsonl');
  const test = path.join(dir, 'test.jsonl');
  const sft = path.join(dir, 'sft.jsonl');
  const instructTrain = path.join(dir, 'instruct-train.jsonl');
  const instructTest = path.join(dir, 'instruct-test.jsonl');
  const alignment = path.join(dir, 'alignment.jsonl');
  const sftCaptions = path.join(dir, 'sft-captions.jsonl');
  const outputs = () => Object.fromEntries(listDir(dir).filter((f) => f.endsWith('.jsonl') || f === 'meta.json').map((f) => [f, path.join(dir, f)]));
  await runStage(root, log, new Map(), {
    name: 'phantom',
    label: 'phantom data',
    settings: c.phantom,
    inputs: {},
    outputs,
    clear: [dir],
    run: async () => {
      await generatePhantom({ outDir: dir, ...c.phantom, overwrite: true });
      const parts = [train, instructTrain].filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f, 'utf8'));
      writeFileAtomic(sft, parts.join(''));
      // Image paths relative to the folder, as in the other splits, so the folder can move.
      const captions = alignmentRecords((await loadDataset(sft, { format: 'hscr' })).records).map((r) => ({ ...r, image: path.relative(dir, r.image) }));
      writeFileAtomic(alignment, captions.map((r) => JSON.stringify(r)).join('\n') + '\n');
      // SFT data plus the alignment captions (pretrain.captionsInSft), both with paths relative to the folder.
      writeFileAtomic(sftCaptions, fs.readFileSync(sft, 'utf8') + fs.readFileSync(alignment, 'utf8'));
    },
  });
  const hasInstruct = fs.existsSync(instructTrain) && c.phantom.instruct.train > 0;
  return { train, test, sft, alignment, sftCaptions, prefSource: hasInstruct ? instructTrain : train, ...(fs.existsSync(instructTest) && c.phantom.instruct.test > 0 ? { instructTest } : {}) };
}

function listDir(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}


/**
 * The vision-alignment stage: full fine-tuning of `init` on the caption file (alignmentRecords) into
 * `outDir`; returns the model folder SFT starts from. Skipped when its model is already there.
 */
export async function pretrainVision(p: AblationConfig['pretrain'], alignmentFile: string, init: string, outDir: string, seed: number, quiet = true): Promise<string> {
  const model = finalModelDir(outDir);
  if (fs.existsSync(path.join(model, 'model.safetensors'))) return model;
  await runSft({
    config: { modelDir: init, outputDir: outDir, finetune: 'full', learningRate: p.lr, epochs: p.epochs, batchPerDevice: p.batch, seed, saveSteps: 0 },
    data: alignmentFile,
    quiet,
    overwrite: true,
  });
  return model;
}

/** The model SFT starts from: the pretrained one when pretrain.epochs > 0, else the random init. */
async function ensurePretrained(ctx: SeedContext, init: string): Promise<string> {
  if (ctx.c.pretrain.epochs === 0) return init;
  const dir = path.join(ctx.dir, 'pretrain');
  const { epochs, lr, batch } = ctx.c.pretrain;
  await runStage(ctx.dir, ctx.log, ctx.hashes, {
    name: 'pretrain',
    label: `seed ${ctx.seed}: vision-alignment pretraining`,
    settings: { epochs, lr, batch, seed: ctx.seed },
    inputs: { init, captions: ctx.data.alignment },
    outputs: () => ({ model: finalModelDir(dir) }),
    clear: [dir],
    run: async () => void (await pretrainVision(ctx.c.pretrain, ctx.data.alignment, init, dir, ctx.seed, ctx.quiet)),
  });
  return finalModelDir(dir);
}

async function ensureSft(ctx: SeedContext): Promise<string> {
  const init = path.join(ctx.dir, 'init');
  const sft = path.join(ctx.dir, 'sft');
  const model = finalModelDir(sft);
  await runStage(ctx.dir, ctx.log, ctx.hashes, {
    name: 'init',
    label: `seed ${ctx.seed}: initial model`,
    settings: { preset: ctx.c.preset, seed: ctx.seed },
    inputs: {},
    outputs: () => ({ model: init }),
    clear: [init],
    run: async () => void (await initModel({ preset: ctx.c.preset, out: init, seed: ctx.seed, overwrite: true })),
  });
  const start = await ensurePretrained(ctx, init);
  const s = ctx.c.sft;
  const data = ctx.c.pretrain.captionsInSft ? ctx.data.sftCaptions : ctx.data.sft;
  await runStage(ctx.dir, ctx.log, ctx.hashes, {
    name: 'sft',
    label: `seed ${ctx.seed}: SFT`,
    settings: { ...s, seed: ctx.seed },
    inputs: { model: start, data },
    outputs: () => ({ model }),
    clear: [sft],
    run: async () =>
      void (await runSft({
        config: { modelDir: start, outputDir: sft, finetune: s.finetune, learningRate: s.lr, epochs: s.epochs, batchPerDevice: s.batch, seed: ctx.seed, saveSteps: 0 },
        data,
        quiet: ctx.quiet,
        overwrite: true,
      })),
  });
  return model;
}

/** What the note reports about the preference data: answers per list before/after re-ranking, replaced tokens per answer. */
export interface PreferenceStats {
  samples: number;
  /** candidatesPerList[m] = samples with m dispreferred answers from generation. */
  candidatesPerList: number[];
  /** rejectedPerList[m] = samples keeping m answers after re-ranking. */
  rejectedPerList: number[];
  /** replacedPerAnswer[m] = kept answers with m replaced tokens. */
  replacedPerAnswer: number[];
  /** sensitivePerSample[m] = samples with m sensitive positions (positive shifts only). */
  sensitivePerSample: number[];
  meanSimilarity: number | null;
}

function histogramAdd(h: number[], m: number): void {
  while (h.length <= m) h.push(0);
  h[m]++;
}

function preferenceStats(prefsFile: string, rankedFile: string, candidatesPerList: number[], rejectedPerList: number[]): PreferenceStats {
  const replacedPerAnswer: number[] = [];
  const sensitivePerSample: number[] = [];
  const sims: number[] = [];
  let samples = 0;
  for (const line of fs.readFileSync(rankedFile, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    samples++;
    const r = JSON.parse(line) as { rejected: { replacements: unknown[]; similarity: number }[] };
    for (const y of r.rejected) (histogramAdd(replacedPerAnswer, y.replacements.length), sims.push(y.similarity));
  }
  for (const line of fs.readFileSync(prefsFile, 'utf8').split('\n')) {
    if (line.trim()) histogramAdd(sensitivePerSample, ((JSON.parse(line) as { sensitive?: unknown[] }).sensitive ?? []).length);
  }
  return { samples, candidatesPerList, rejectedPerList, replacedPerAnswer, sensitivePerSample, meanSimilarity: sims.length ? sims.reduce((a, b) => a + b, 0) / sims.length : null };
}

/** prefs → ranked (and binary) for one way of degrading the view. */
async function ensurePreferences(ctx: SeedContext, sftModel: string, perturb: Strategy, ratio: number): Promise<{ ranked: string; binary: string }> {
  const dir = path.join(ctx.dir, 'prefs', `${perturb}-${ratio}`);
  const prefs = path.join(dir, 'prefs.jsonl');
  const ranked = path.join(dir, 'ranked.jsonl');
  const binary = path.join(dir, 'binary.jsonl');
  const g = ctx.c.generate;
  const r = ctx.c.rerank;
  await runStage(ctx.dir, ctx.log, ctx.hashes, {
    name: `prefs-${perturb}-${ratio}`,
    label: `seed ${ctx.seed}: preference data (${perturb}, ratio ${ratio})`,
    settings: { k: g.k, n: g.n, beta: g.beta, ratio, perturb, seed: ctx.seed, batch: g.batch, limit: g.limit, j: r.j, minGap: r.minGap, gapScale: r.gapScale },
    inputs: { model: sftModel, source: ctx.data.prefSource },
    outputs: () => ({ prefs, ranked, binary, stats: path.join(dir, 'stats.json') }),
    clear: [dir],
    run: async () => {
      fs.mkdirSync(dir, { recursive: true });
      const generated = await generateFile(sftModel, ctx.data.prefSource, prefs, { k: g.k, n: g.n, beta: g.beta, ratio, perturb, seed: ctx.seed, batchSize: g.batch, limit: g.limit, quiet: true });
      const reranked = await rerankFile(prefs, ranked, { j: r.j, minGap: r.minGap, gapScale: r.gapScale, mode: 'ranked', quiet: true });
      await rerankFile(prefs, binary, { mode: 'binary', quiet: true });
      fs.writeFileSync(path.join(dir, 'stats.json'), `${JSON.stringify(preferenceStats(prefs, ranked, generated.candidatesHistogram, reranked.keptHistogram), null, 2)}\n`);
    },
  });
  return { ranked, binary };
}

/**
 * The positive control's data: for the same instruction entries HSCR uses, the rejected answer is y_w with
 * one attribute swapped (lib/eval/swap.ts), made from the known scene. If DPO on these does not lower the
 * judge's hallucination rate clearly, the benchmark cannot detect the effect HSCR aims at.
 * With `control.absenceSwaps`, every other entry whose scene has lesions gets instead the same scan described
 * as lesion-free (a false-negative hallucination): one-word swaps never deny a lesion, and DPO on them alone
 * drives the tiny model to answer "there is no lesion" everywhere (validation: PHANTOM_RECIPE_DEFAULTS).
 * With `control.kind: 'onPolicy'` the pairs come from the SFT model's own answers instead (onPolicyOracleFile).
 * Each kind has its own folder and manifest, so switching kinds back and forth reuses what each made.
 */
async function ensureOracle(ctx: SeedContext, sftModel: string): Promise<string> {
  if (ctx.c.control.kind === 'onPolicy') return onPolicyOracleFile(ctx, sftModel);
  const name = ctx.c.control.absenceSwaps ? 'oracle-absence' : 'oracle';
  const dir = path.join(ctx.dir, 'prefs', name);
  const file = path.join(dir, 'binary.jsonl');
  await runStage(ctx.dir, ctx.log, ctx.hashes, {
    name: `prefs-${name}`,
    label: `seed ${ctx.seed}: oracle data (${name})`,
    // The swaps are made from the known scene: the SFT model is no input.
    settings: { kind: 'swap', absenceSwaps: ctx.c.control.absenceSwaps, limit: controlLimit(ctx.c), pairs: ctx.c.control.pairs, seed: ctx.seed },
    inputs: { source: ctx.data.prefSource },
    outputs: () => ({ binary: file }),
    clear: [dir],
    run: async () => {
      fs.mkdirSync(dir, { recursive: true });
      const lines = swapOracleLines(ctx, (await loadDataset(ctx.data.prefSource, { format: 'hscr' })).records.slice(0, controlLimit(ctx.c)));
      writeFileAtomic(file, lines.slice(0, ctx.c.control.pairs ?? lines.length).join('\n') + '\n');
    },
  });
  return file;
}

function swapOracleLines(ctx: SeedContext, records: VqaRecord[]): string[] {
  const lines: string[] = [];
  records.forEach((r, i) => {
    if (!r.scene) return;
    const rng = new Rng(mixSeed(ctx.seed, i));
    let rejected: { text: string; replacements: unknown[] };
    if (ctx.c.control.absenceSwaps && r.scene.findings.length > 0 && i % 2 === 0) {
      rejected = { text: answerText({ ...r.scene, findings: [] }, rng, true), replacements: [] };
    } else {
      const swap = attributeSwaps(r.answer, r.scene, rng, 1)[0];
      if (!swap) return;
      rejected = { text: swap.text, replacements: [{ position: swap.word, from: swap.from, to: swap.to, score: 0 }] };
    }
    lines.push(JSON.stringify({ id: r.id, image: r.image, question: r.question, chosen: r.answer, answer_type: r.answer_type, rejected: [{ ...rejected, similarity: 0 }] }));
  });
  return lines;
}

/** The number of preference entries the oracle control draws from (control.limit, else generate.limit). */
export function controlLimit(c: AblationConfig): number {
  return c.control.limit ?? c.generate.limit;
}

/** The oracle control's preference lr (control.lr, else train.lr). */
export function controlLr(c: AblationConfig): number {
  return c.control.lr ?? c.train.lr;
}

/** One on-policy oracle pair (a line of a binary preference file), with the wrong claims that made it. */
export interface OnPolicyPair {
  id: string;
  image: string;
  question: string;
  chosen: string;
  /** chosen is the model's answer corrected (control.chosen 'corrected'), not the reference. */
  corrected: boolean;
  answer_type: VqaRecord['answer_type'];
  rejected: { text: string; replacements: unknown[]; similarity: number; wrong: string[] }[];
}

/**
 * The on-policy oracle pair for one entry: the model's own answer is rejected (the reference y_w chosen) when the
 * exact judge (lib/eval/judge.ts, the one Table 2 uses) finds at least one stated attribute that contradicts the
 * scene; no pair when every stated attribute is right, when the entry has no scene, or when the model repeated
 * the reference word for word (nothing to prefer). RLHF-V-style feedback: it knows the scene and aims at the
 * errors the model actually makes (on validation: shape and location), which off-policy swaps of y_w miss.
 */
export function onPolicyPair(record: VqaRecord, answer: string, chosen: OnPolicyChosen = 'reference'): OnPolicyPair | undefined {
  if (!record.scene) return undefined;
  const text = answer.trim();
  if (text === '' || text === record.answer.trim()) return undefined;
  const wrong = judgeAnswer(text, record.scene).claims.filter((c) => !c.correct).map((c) => `${c.kind}: ${c.value}`);
  if (wrong.length === 0) return undefined;
  const corrected = chosen === 'corrected' ? correctAnswer(text, record.scene) : undefined;
  return { id: record.id, image: record.image, question: record.question, chosen: corrected ?? record.answer, corrected: corrected !== undefined, answer_type: record.answer_type, rejected: [{ text, replacements: [], similarity: 0, wrong }] };
}

/**
 * The on-policy control's data: the SFT model answers each preference entry greedily (the evaluation's
 * predictor and max-new-tokens), and onPolicyPair keeps the answers the judge finds wrong. stats.json says
 * how many entries got a pair and which claim kinds were wrong.
 */
async function onPolicyOracleFile(ctx: SeedContext, sftModel: string): Promise<string> {
  const name = ctx.c.control.chosen === 'corrected' ? 'oracle-onpolicy-corrected' : 'oracle-onpolicy';
  const dir = path.join(ctx.dir, 'prefs', name);
  const file = path.join(dir, 'binary.jsonl');
  await runStage(ctx.dir, ctx.log, ctx.hashes, {
    name: `prefs-${name}`,
    label: `seed ${ctx.seed}: on-policy oracle data (SFT answers, judged)`,
    settings: { kind: 'onPolicy', chosen: ctx.c.control.chosen, limit: controlLimit(ctx.c), pairs: ctx.c.control.pairs, maxNewTokens: ctx.c.eval.maxNewTokens, batch: ctx.c.eval.batch },
    inputs: { model: sftModel, source: ctx.data.prefSource },
    outputs: () => ({ binary: file, stats: path.join(dir, 'stats.json') }),
    clear: [dir],
    run: () => writeOnPolicyPairs(ctx, sftModel, dir, file),
  });
  return file;
}

async function writeOnPolicyPairs(ctx: SeedContext, sftModel: string, dir: string, file: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const records = (await loadDataset(ctx.data.prefSource, { format: 'hscr' })).records.slice(0, controlLimit(ctx.c));
  const predictor = await loadPredictor(sftModel, undefined, { maxNewTokens: ctx.c.eval.maxNewTokens });
  const pairs: OnPolicyPair[] = [];
  const wrongKinds: Record<string, number> = {};
  const most = ctx.c.control.pairs ?? Infinity;
  let answered = 0;
  try {
    for (let i = 0; i < records.length && pairs.length < most; i += ctx.c.eval.batch) {
      const batch = records.slice(i, i + ctx.c.eval.batch);
      const answers = await predictor(batch.map((r) => ({ id: r.id, image: r.image, question: r.question })));
      answered += batch.length;
      batch.forEach((r, k) => {
        const pair = pairs.length < most ? onPolicyPair(r, answers[k], ctx.c.control.chosen) : undefined;
        if (!pair) return;
        pairs.push(pair);
        for (const w of pair.rejected[0].wrong) {
          const kind = w.split(':')[0];
          wrongKinds[kind] = (wrongKinds[kind] ?? 0) + 1;
        }
      });
    }
  } finally {
    predictor.dispose();
  }
  fs.writeFileSync(path.join(dir, 'stats.json'), `${JSON.stringify({ entries: answered, pairs: pairs.length, corrected: pairs.filter((p) => p.corrected).length, wrongClaimsByKind: wrongKinds }, null, 2)}\n`);
  writeFileAtomic(file, pairs.map((p) => JSON.stringify(p)).join('\n') + '\n');
}

/** The preference file a variant trains on, and where its reference log-probs are cached. */
async function preferenceFile(ctx: SeedContext, sftModel: string, v: Variant): Promise<string> {
  if (v.oracle) return ensureOracle(ctx, sftModel);
  const { ranked, binary } = await ensurePreferences(ctx, sftModel, v.perturb, v.ratio);
  return v.loss === 'dpo' ? binary : ranked;
}

async function ensureTrained(ctx: SeedContext, sftModel: string, v: Variant): Promise<string> {
  const runDir = path.join(ctx.dir, 'runs', v.key);
  const prefsFile = await preferenceFile(ctx, sftModel, v);
  const t = ctx.c.train;
  const config = {
    loss: v.loss as MlpoLossKind,
    learningRate: v.oracle ? controlLr(ctx.c) : t.lr,
    epochs: t.epochs,
    batchPerDevice: t.batch,
    gamma: t.gamma,
    lora: { r: t.loraR, alpha: t.loraAlpha, dropout: t.loraDropout },
    maxRejected: ctx.c.rerank.j,
    seed: ctx.seed,
  };
  await runStage(ctx.dir, ctx.log, ctx.hashes, {
    name: `train-${v.key}`,
    label: `seed ${ctx.seed}: train ${v.key} (${v.loss})`,
    settings: config,
    inputs: { model: sftModel, prefs: prefsFile },
    outputs: () => ({ adapter: finalAdapterDir(runDir) }),
    clear: [runDir],
    run: async () =>
      void (await runMlpo({
        // The reference log-probs are cached beside the preferences, keyed by the file's and the model's hashes.
        config: { ...config, modelDir: sftModel, outputDir: runDir, saveSteps: 0, referenceCacheDir: path.dirname(prefsFile) },
        prefs: prefsFile,
        quiet: ctx.quiet,
        overwrite: true,
      })),
  });
  return finalAdapterDir(runDir);
}

/** Model inputs of an evaluation-like stage: the SFT model, and the adapter when the variant has one. */
function modelInputs(sftModel: string, adapterDir: string | undefined): Record<string, string> {
  return { model: sftModel, ...(adapterDir ? { adapter: adapterDir } : {}) };
}

async function ensureEvaluated(ctx: SeedContext, sftModel: string, v: Variant, adapterDir?: string): Promise<EvaluationResult> {
  const outDir = path.join(ctx.dir, 'eval', v.key);
  const resultsFile = path.join(outDir, 'results.json');
  const predictionsFile = path.join(outDir, 'predictions.jsonl');
  const e = ctx.c.eval;
  await runStage(ctx.dir, ctx.log, ctx.hashes, {
    name: `eval-${v.key}`,
    label: `seed ${ctx.seed}: evaluate ${v.key}`,
    settings: { batch: e.batch, maxNewTokens: e.maxNewTokens, variant: e.variant },
    inputs: { ...modelInputs(sftModel, adapterDir), test: ctx.data.test, ...(ctx.data.instructTest ? { instructTest: ctx.data.instructTest } : {}) },
    outputs: () => ({ results: resultsFile, predictions: predictionsFile }),
    // Only its own files: Figure 4's beside them are another stage's.
    clear: [resultsFile, predictionsFile],
    run: async () => {
      const predictor = await loadPredictor(sftModel, adapterDir, { loadAdapter: applyAdapter, maxNewTokens: e.maxNewTokens });
      try {
        // VQA first, instruction prompts after: batches of short and of long answers stay apart.
        await evaluate([...ctx.data.testRecords, ...ctx.data.instructRecords], predictor, { batchSize: e.batch, variant: e.variant, outDir, name: v.label });
      } finally {
        predictor.dispose();
      }
    },
  });
  return JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as EvaluationResult;
}

/** Reward accuracies of the trained adapter over its whole training list (the last step alone is a handful of samples). */
async function trainingAccuracies(ctx: SeedContext, sftModel: string, v: Variant, adapterDir: string): Promise<Pick<VariantScore, 'explicitAccuracy' | 'implicitAccuracy'>> {
  const file = path.join(path.dirname(adapterDir), 'preference_accuracy.json');
  const prefs = await preferenceFile(ctx, sftModel, v);
  const settings = { loss: v.loss as MlpoLossKind, maxRejected: ctx.c.rerank.j, gamma: ctx.c.train.gamma, pairWeighting: 'sum' as const };
  await runStage(ctx.dir, ctx.log, ctx.hashes, {
    name: `accuracy-${v.key}`,
    label: `seed ${ctx.seed}: training-list accuracies ${v.key}`,
    settings,
    inputs: { ...modelInputs(sftModel, adapterDir), prefs },
    outputs: () => ({ accuracy: file }),
    clear: [file],
    run: async () => {
      const acc = await preferenceFileAccuracy(sftModel, adapterDir, prefs, { ...settings, referenceCacheDir: path.dirname(prefs) });
      fs.writeFileSync(file, `${JSON.stringify(acc, null, 2)}\n`);
    },
  });
  const acc = JSON.parse(fs.readFileSync(file, 'utf8')) as { explicit: number | null; implicit: number | null };
  return { explicitAccuracy: acc.explicit ?? undefined, implicitAccuracy: acc.implicit ?? undefined };
}

/**
 * Figure 4: log p(correct) − log p(one-attribute swap) of every instruction test answer, saved per variant —
 * with the real image (figure4.json) and with a blank one (figure4.blank.json). Many swaps contradict the rest
 * of the answer ("three lesions … one in each lung"), so part of the gap is read off the text; the real − blank
 * difference is the part the image accounts for, which is what "image reliance" means here.
 */
async function ensureGaps(ctx: SeedContext, sftModel: string, v: Variant, adapterDir: string | undefined): Promise<GapItem[] | undefined> {
  if (!ctx.c.eval.figure4 || !ctx.data.instructTest || ctx.data.instructRecords.length === 0) return undefined;
  const dir = path.join(ctx.dir, 'eval', v.key);
  const file = path.join(dir, 'figure4.json');
  const blankFile = path.join(dir, 'figure4.blank.json');
  const blankImage = path.join(dir, 'figure4.blank.png');
  await runStage(ctx.dir, ctx.log, ctx.hashes, {
    name: `figure4-${v.key}`,
    label: `seed ${ctx.seed}: figure 4 ${v.key} (real and blank image)`,
    settings: { blankSize: ctx.c.phantom.size, items: ctx.c.eval.figure4Items },
    inputs: { ...modelInputs(sftModel, adapterDir), instructTest: ctx.data.instructTest },
    outputs: () => ({ gaps: file, blankGaps: blankFile }),
    clear: [file, blankFile, blankImage],
    run: async () => {
      fs.mkdirSync(dir, { recursive: true });
      const records = ctx.data.instructRecords.slice(0, ctx.c.eval.figure4Items ?? undefined);
      const gaps = await figure4Gaps(sftModel, records, { adapterDir, loadAdapter: applyAdapter });
      fs.writeFileSync(file, `${JSON.stringify(gaps)}\n`);
      const blank = await writeBlankImage(blankImage, ctx.c.phantom.size);
      const blankGaps = await figure4Gaps(sftModel, records.map((r) => ({ ...r, image: blank })), { adapterDir, loadAdapter: applyAdapter });
      fs.writeFileSync(blankFile, `${JSON.stringify(blankGaps)}\n`);
    },
  });
  return JSON.parse(fs.readFileSync(file, 'utf8')) as GapItem[];
}

async function scoreVariant(ctx: SeedContext, sftModel: string, v: Variant): Promise<VariantScore> {
  const adapterDir = v.loss === 'sft' ? undefined : await ensureTrained(ctx, sftModel, v);
  const r = await ensureEvaluated(ctx, sftModel, v, adapterDir);
  const phantom = r.datasets.phantom ?? r.overall;
  const accuracies = adapterDir ? await trainingAccuracies(ctx, sftModel, v, adapterDir) : {};
  const gaps = await ensureGaps(ctx, sftModel, v, adapterDir);
  let judge: JudgeScores | undefined;
  if (ctx.data.instructRecords.length > 0) judge = judgeReport(judgeRecords(ctx.data.instructRecords, await loadPredictions(r.predictionsFile))).overall;
  return {
    seed: ctx.seed,
    key: v.key,
    closed: phantom.closed.accuracy,
    open: phantom.open.score,
    ...accuracies,
    ...(judge ? { judge: { precision: judge.precision, recall: judge.recall, f1: judge.f1, hallucinationRate: judge.hallucinationRate, unparsedShare: judge.unparsedShare } } : {}),
    ...(gaps ? { gap: summarizeGaps(gaps.map((g) => g.gap)).mean } : {}),
  };
}

// ---- the report ---------------------------------------------------------------------------------

export function meanStd(values: number[]): { mean: number; std: number } | null {
  if (values.length === 0) return null;
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const std = values.length > 1 ? Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1)) : 0;
  return { mean, std };
}

function cell(values: (number | null)[]): string {
  const s = meanStd(values.filter((v): v is number => v !== null));
  return s === null ? '–' : `${(s.mean * 100).toFixed(2)} ± ${(s.std * 100).toFixed(2)}`;
}

const TITLES: Record<TableName, string> = {
  main: 'Tables 1–3 — SFT vs binary DPO vs oracle DPO vs HSCR',
  levels: 'Table 4 — preference levels',
  strategy: 'Table 5 — how the degraded view is made',
  ratio: 'Table 6 — share of the visual input dropped',
};

/** The paper-style tables: one row per variant, Open (recall) and Closed (accuracy), mean ± std over seeds. */
export function formatAblation(c: AblationConfig, tables: TableName[], scores: VariantScore[]): string {
  const rows = tableRows(c);
  const seeds = [...new Set(scores.map((s) => s.seed))];
  const out: string[] = [`phantom benchmark: ${c.phantom.train} train / ${c.phantom.test} test, ${c.preset} preset, seeds ${seeds.join(', ')} (mean ± std, %; metric variant ${c.eval.variant})`];
  for (const t of tables) {
    out.push('', `### ${TITLES[t]}`, '', '| Method | Open (recall) | Closed (accuracy) | Hallucination (judge) | Judge F1 | Figure-4 gap (nats) | train rewards/accuracies (explicit / implicit) |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const v of rows[t]) {
      const mine = scores.filter((s) => s.key === v.key);
      const acc = v.loss === 'sft' ? '–' : `${cell(mine.map((s) => s.explicitAccuracy ?? null))} / ${cell(mine.map((s) => s.implicitAccuracy ?? null))}`;
      const gap = meanStd(mine.map((s) => s.gap).filter((g): g is number => typeof g === 'number'));
      const judge = `${cell(mine.map((s) => s.judge?.hallucinationRate ?? null))} | ${cell(mine.map((s) => s.judge?.f1 ?? null))}`;
      out.push(`| ${v.label} | ${cell(mine.map((s) => s.open))} | ${cell(mine.map((s) => s.closed))} | ${judge} | ${gap ? `${gap.mean.toFixed(2)} ± ${gap.std.toFixed(2)}` : '–'} | ${acc} |`);
    }
  }
  return out.join('\n');
}

function readConfigFile(file: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new HscrError(`${file}: not a readable JSON config (${(e as Error).message})`, 'E_CONFIG', file);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new HscrError(`${file}: must hold a JSON object`, 'E_CONFIG', raw);
  return raw as Record<string, unknown>;
}

/** Runs (or continues) the ablation and returns the scores and the printed tables. */
export async function runAblation(o: AblationOptions): Promise<AblationResult> {
  const raw = o.config ?? (o.configFile ? readConfigFile(o.configFile) : {});
  const c = resolveAblationConfig(raw, o.configFile);
  const tables = (o.only ?? c.tables) as TableName[];
  if (!tables.every((t) => TABLE_NAMES.includes(t))) throw new HscrError(`--only must list some of ${TABLE_NAMES.join(', ')}`, 'E_ARG', o.only);
  const root = path.resolve(o.outDir ?? c.out);
  const log = o.log ?? ((line: string) => (o.quiet ? undefined : process.stderr.write(`ablate: ${line}\n`)));
  const files = await ensurePhantom(c, root, log);
  const testRecords = (await loadDataset(files.test, { format: 'hscr' })).records;
  const instructRecords = files.instructTest ? (await loadDataset(files.instructTest, { format: 'hscr' })).records : [];
  const rows = tableRows(c);
  const variants = [...new Map(tables.flatMap((t) => rows[t]).map((v) => [v.key, v])).values()];
  const scores: VariantScore[] = [];
  for (const seed of c.seeds) {
    const ctx: SeedContext = { c, seed, dir: path.join(root, `seed-${seed}`), data: { ...files, testRecords, instructRecords }, quiet: o.quiet ?? false, log, hashes: new Map() };
    const sftModel = await ensureSft(ctx);
    for (const v of variants) scores.push(await scoreVariant(ctx, sftModel, v));
    fs.writeFileSync(path.join(root, 'ablation.json'), `${JSON.stringify({ config: c, scores }, null, 2)}\n`);
  }
  let report = formatAblation(c, tables, scores);
  let recipe: RecipeSummary | undefined;
  if (tables.includes('main')) {
    recipe = await recipeSummary(root, c, rows.main, c.seeds, testRecords, instructRecords);
    fs.writeFileSync(path.join(root, 'recipe.json'), `${JSON.stringify(recipe, null, 2)}\n`);
    report = `${formatRecipe(recipe)}\n\n${report}`;
  }
  fs.writeFileSync(path.join(root, 'ablation.md'), `${report}\n`);
  return { config: c, scores, report, ...(recipe ? { recipe } : {}) };
}
