/**
 * HSCR's token-level self-contrastive rewarding (paper §3.1) through the native kernel (native/contrastive.cpp).
 * For a sample (image i, question x, ground-truth answer y_w) teacher-forced under two views — all visual
 * tokens (i) and a share of them dropped (i') — the kernel gives, per answer token t with target y_t:
 *
 *   shift(t)        = log p(y_t | i, x, y_<t) − log p(y_t | i', x, y_<t)   how much the image props y_t up
 *   contrastive(v)  = (1 + β)·logit(v | i, …) − β·logit(v | i', …)          how much the image supports v
 *
 * the n most sensitive positions (largest shift, over eligible positions; ties → lower position), and per
 * sensitive position the plausible replacement tokens v ≠ y_t by ascending contrastive score (ties → lower
 * id): the tokens the image supports least. The definitions are test/reference/contrastive_ref.py's.
 *
 * Plausibility (which v may replace y_t) — default 'alpha-drop', VCD's α cut on the dropped view:
 * p(v | i', …) ≥ α·max p(· | i', …). A replacement must be fluent to the language prior, so that the only
 * thing wrong with the dispreferred answer is that the image does not support it; without the cut the
 * lowest contrastive scores go to junk tokens (sub-words, punctuation, other languages) that make y_l wrong
 * for reasons any text model would see, and MLPO would learn grammar instead of grounding. The dropped view
 * is the language-prior side of the contrast (the view with the image mostly gone), so the cut is taken
 * there. 'alpha-full' takes it on the full view instead (VCD's own choice: tokens plausible *with* the
 * image), 'none' disables it (for ablations).
 *
 * Positions in the dropped view are compacted: the kept visual tokens and the text after them are numbered
 * 0, 1, 2, … with no gaps (native/vlm.cpp builds positions as arange(sequence length)), so the answer's RoPE
 * positions in i' are smaller than in i by the number of dropped visual tokens, as they are when LLaVA is
 * given a shorter image (the paper does not say; keeping the original positions is the other reading).
 * The drop therefore also moves the text relative to the image; on the tiny preset with 16 visual tokens the
 * shift is ≤ 12 positions.
 *
 * The pipeline (lib/generate/pipeline.ts) keeps only sensitive positions with a positive shift
 * (HSCR_DEFAULTS.positiveShiftsOnly) and screens replacement tokens as it screens positions (no special,
 * punctuation or byte tokens).
 */
import { HSCR_DEFAULTS } from '../config';
import { HscrError } from '../errors';
import { native, type Tensor } from '../native';
import type { BatchRow, PerturbKind, VisionLanguageModel } from '../model/vlm';
import type { KernelOutput } from './types';

export type PlausibilityRule = 'alpha-drop' | 'alpha-full' | 'none';
export const PLAUSIBILITY_RULES: readonly PlausibilityRule[] = ['alpha-drop', 'alpha-full', 'none'];

export interface ContrastiveOptions {
  /** β of (1+β)·logit(full) − β·logit(drop) (default HSCR_DEFAULTS.beta). */
  beta?: number;
  /** Sensitive positions per sample (default HSCR_DEFAULTS.topN). */
  n?: number;
  /** α of the plausibility cut (default HSCR_DEFAULTS.plausibilityAlpha). */
  alpha?: number;
  /** Replacement candidates kept per sensitive position (default HSCR_DEFAULTS.replacementCandidates). */
  candidates?: number;
  plausibility?: PlausibilityRule;
}

/** The kernel's result for one sample (row). */
export interface ContrastiveRowResult {
  /** Sensitive positions (indices into the row's tokens), most sensitive first; at most n. */
  positions: number[];
  /** shift at each sensitive position. */
  shifts: number[];
  /** Per sensitive position: replacement token ids, ascending contrastive score. */
  candidates: number[][];
  /** Their contrastive scores (ascending). */
  scores: number[][];
  /** shift at every token of the row (0 where there is no target). */
  tokenShifts: number[];
  /** (1+β)·logit(full) − β·logit(drop) of the target at every token (0 where there is no target). */
  targetContrastive: number[];
}

/** A sample for the fused path: one batch row, teacher-forced on its answer y_w. */
export interface ContrastiveBatchRow extends Omit<BatchRow, 'perturb' | 'answer'> {
  answer: number[] | Int32Array;
  /**
   * 0/1 per answer token: which positions may be sensitive (default: all but BOS/EOS/PAD). The caller
   * knows the tokenizer: pass 0 for template and punctuation tokens.
   */
  eligible?: number[];
}

export interface ContrastiveBatch {
  pixels: Tensor;
  rows: ContrastiveBatchRow[];
}

export interface ModelContrastiveOptions extends ContrastiveOptions {
  /** How the dropped view i' is made (default 'token': visual tokens dropped after the projector, §3.1). */
  perturb?: Exclude<PerturbKind, 'none'>;
  /** Share dropped (default HSCR_DEFAULTS.dropRatio). */
  ratio?: number;
  /** A row's drop seed defaults to seed + its image index, as in model.logprobs. */
  seed?: number;
  /**
   * 'split' (default): the image encoding is shared, and each view is its own decoder batch, so the dropped
   * view's shorter rows are not padded to the full view's length. 'joint': both views of every row in ONE
   * batched forward pass, the dropped rows padded to the full view's length. With 70% of the visual tokens
   * dropped that padding roughly doubles the decoder's work, and fewer, larger calls do not win it back at
   * any image size measured (64, 196 and 576 visual tokens: bench/generate.ts, bench/RESULTS.md), so split
   * is the default whatever the input.
   */
  views?: ViewLayout;
  /** Tests only: also return each row's two [answer tokens, V] logit tensors. */
  debugLogits?: boolean;
}

export type ViewLayout = 'joint' | 'split';

export interface ModelContrastiveRow extends ContrastiveRowResult {
  logitsFull?: Tensor;
  logitsDrop?: Tensor;
}

interface ResolvedOptions {
  beta: number;
  n: number;
  alpha: number;
  candidates: number;
  plausibility: PlausibilityRule;
}

interface ContrastiveAddon {
  contrastiveScores(full: Tensor, drop: Tensor, targets: Tensor, eligible: Tensor, options: ResolvedOptions): Promise<ContrastiveRowResult[]>;
  contrastiveForModel(
    model: unknown,
    batch: ContrastiveBatch,
    options: ResolvedOptions & { perturb: string; ratio: number; seed: number; views: ViewLayout; debugLogits: boolean },
  ): Promise<ModelContrastiveRow[]>;
}

function addon(): ContrastiveAddon {
  return native() as unknown as ContrastiveAddon;
}

function resolve(opts: ContrastiveOptions): ResolvedOptions {
  const plausibility = opts.plausibility ?? 'alpha-drop';
  if (!PLAUSIBILITY_RULES.includes(plausibility)) {
    throw new HscrError(`plausibility must be one of ${PLAUSIBILITY_RULES.join(', ')}`, 'E_ARG', plausibility);
  }
  return {
    beta: opts.beta ?? HSCR_DEFAULTS.beta,
    n: opts.n ?? HSCR_DEFAULTS.topN,
    alpha: opts.alpha ?? HSCR_DEFAULTS.plausibilityAlpha,
    candidates: opts.candidates ?? HSCR_DEFAULTS.replacementCandidates,
    plausibility,
  };
}

/**
 * The kernel on given logits: logitsFull / logitsDrop [B, T, V] (float), targets int64 [B, T] (the token
 * whose logits sit at t; < 0 = none), eligible bool [B, T]. One result per b.
 */
export async function contrastiveScores(
  logitsFull: Tensor,
  logitsDrop: Tensor,
  targets: Tensor,
  eligible: Tensor,
  opts: ContrastiveOptions = {},
): Promise<ContrastiveRowResult[]> {
  return addon().contrastiveScores(logitsFull, logitsDrop, targets, eligible, resolve(opts));
}

/**
 * The fused path: every row teacher-forced on its answer under both views in ONE batched forward pass (the
 * two views share the image encoding), the kernel applied natively; only the per-row results come back.
 */
export async function modelContrastive(
  model: VisionLanguageModel,
  batch: ContrastiveBatch,
  opts: ModelContrastiveOptions = {},
): Promise<ModelContrastiveRow[]> {
  return addon().contrastiveForModel(model.handle, batch, {
    ...resolve(opts),
    perturb: opts.perturb ?? 'token',
    ratio: opts.ratio ?? HSCR_DEFAULTS.dropRatio,
    seed: opts.seed ?? 0,
    views: opts.views ?? 'split',
    debugLogits: opts.debugLogits ?? false,
  });
}

/** What buildDispreferred reads, for a row teacher-forced on answerTokenIds. */
export function toKernelOutput(answerTokenIds: readonly number[], row: ContrastiveRowResult): KernelOutput {
  return {
    answerTokenIds: [...answerTokenIds],
    positions: row.positions,
    shifts: row.shifts,
    candidates: row.candidates,
    scores: row.scores,
  };
}
