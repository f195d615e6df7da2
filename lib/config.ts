/**
 * The paper's hyper-parameters, in one place (Jiang et al., 2025, "Hierarchical Self-Contrastive
 * Rewarding for Medical VLM Alignment"). Every CLI default and library default reads from here.
 */
export const HSCR_DEFAULTS = {
  /** §3.1: share of visual tokens dropped (after the projector) for the degraded view i'. */
  dropRatio: 0.7,
  /** §3.1: contrastive logits (1+β)·logit(y|i,x) − β·logit(y|i',x). */
  beta: 0.9,
  /** §3.1: number of modality-coupled ("sensitive") token positions. */
  topN: 10,
  /**
   * §3.1 reading: a sensitive position must have a positive shift log p(y_t|i) − log p(y_t|i') (the image
   * props the token up); the top n are taken among those only, so fewer than n when fewer qualify.
   */
  positiveShiftsOnly: true,
  /** §3.1: dispreferred answers generated per sample (the paper leaves k open; see lib/generate). */
  k: 6,
  /**
   * §3.1 leaves open how many sensitive tokens each of the k dispreferred answers replaces; hscr's reading:
   * 'spread' = y_l_i replaces the ceil(i·n/k) most sensitive (see lib/generate/dispreferred.ts).
   */
  dispreferredSchedule: 'spread' as 'spread' | 'prefix',
  /**
   * §3.1 plausibility cut (VCD-style α): a replacement token must have, in the dropped view,
   * p ≥ α·max p. Keeps replacements fluent so the wrongness comes from the image, not from grammar.
   */
  plausibilityAlpha: 0.1,
  /**
   * §3.1 leaves open how many replacement tokens to keep per sensitive position; hscr keeps this many (lowest
   * contrastive score first) so a dispreferred answer that collides with an earlier one can move on to the next.
   */
  replacementCandidates: 5,
  /** §3.2: dispreferred answers kept after re-ranking. */
  j: 3,
  /** §3.2: minimum pairwise similarity gap between kept answers. */
  minGap: 0.1,
  /** §3.2: the gap is read on raw similarities (the paper's literal reading); 'list' rescales per list (lib/rerank/rerank.ts). */
  gapScale: 'raw' as 'raw' | 'list',
  /** §3.3: reward scale γ in r(y) = γ·(log πθ − log πsft). */
  gamma: 0.1,
  /** §3.3: weights of the explicit and implicit terms, L = λE·L_E + λI·L_I. */
  lambdaExplicit: 1,
  lambdaImplicit: 1,
  /** §4.1 implementation details. */
  loraR: 16,
  loraAlpha: 32,
  loraDropout: 0.05,
  lr: 5e-7,
  schedule: 'cosine' as const,
  warmupRatio: 0.03,
  epochs: 2,
  batchPerDevice: 2,
  samples: 2000,
  weightDecay: 0,
  /** §3.3: per-sample losses sum over pairs ('mean' divides each level by its pair count, an ablation). */
  pairWeighting: 'sum' as 'sum' | 'mean',
  /** §4.1 trains with HF Trainer + DeepSpeed, whose default clip is a global grad-norm of 1.0. */
  maxGradNorm: 1,
  /** §4.1: 8 GPUs × batch 2 with no accumulation stated (HF Trainer's default 1). */
  gradAccum: 1,
  /** SFT (LLaVA-Med 1.5's instruction tuning, the paper's starting point): LLaVA's fine-tuning lr. */
  sftLr: 2e-5,
} as const;

export type HscrDefaults = typeof HSCR_DEFAULTS;

/**
 * Where the phantom recipe (`hscr demo`, `hscr ablate`, and `hscr run`'s defaults) departs from the paper's
 * settings, and why: its model is the 0.8M-parameter `tiny` preset trained from scratch on 64-px phantom
 * scans, not LLaVA-Med 1.5 (7B, a pretrained CLIP tower). Every value was chosen on the VALIDATION splits,
 * never on test (measurements in docs/RESULTS-recipe.md).
 */
export const PHANTOM_RECIPE_DEFAULTS = {
  /**
   * SFT from random weights, all parameters (vision tower and projector included: there is no pretrained
   * CLIP to keep frozen). The paper's lr 2e-5 would not move a random model; 2e-3 takes the loss 5.6 → 0.2.
   * 4 epochs, not 2: after 2 epochs over VQA + instruction data the model reads global attributes from the
   * image (modality 82% vs 21% with a blank image, organ 47% vs 14%) but lesion attributes at chance (size,
   * shape, count equal to the blank-image scores) and its instruction answers hallucinate 42% of their
   * attributes; 2 more epochs bring that to 33% (size errors 65% → 47%, shape 77% → 54%, absence 58% → 40%,
   * plane 35% → 9%; 200 instruction-val prompts; measured as 2 epochs + 2 more at lr 1e-3), and these
   * settings (one 4-epoch cosine run, seed 1) to 36.5% with recall 47.9% → 53.0%, modality 100%, plane 90%,
   * size 63% vs 56% blank on VQA-val, while shape and count stay at chance. Twice the VQA
   * data at 2 epochs (1.5× the CPU) reached 40.6% only; in 1-epoch VQA-only probes neither 8-px patches
   * (2× the CPU), a 128-wide 3-layer vision tower, nor lr 5e-4 learned lesion size or shape either.
   * Closed yes/no questions stay at chance in every variant (p(yes) = p(no) ± 0.05 on training items too).
   */
  sft: { finetune: 'full' as 'full' | 'lora', lr: 2e-3, epochs: 4, batch: 8 },
  /**
   * Vision-alignment pretraining before SFT (LLaVA's stage 1 in spirit: there is no pretrained CLIP): one
   * caption per training scan, "describe the image." → describeScene (lib/data/phantom/alignment.ts), all
   * weights trained, then SFT starts from it with the same captions kept in its data (`captionsInSft`).
   * Why: the renderer is not the bottleneck — a 4-layer CNN on the same 64-px training scans reaches lesion
   * presence 97%, count 82%, size 87% on VQA-val in 4 epochs, and a ViT of the tiny tower's shape (16-px
   * patches, width 64, one layer) presence 100%, count 94%, size 92% in 8 — but through the language model's
   * loss on VQA + instruction data alone the tiny VLM never learns them (size, count, presence at their
   * blank-image scores). A caption asks every lesion attribute of every scan and only the pixels answer it.
   * Validation (seed 1, VQA-val real / blank image, %): 3 caption epochs (≈ 250 CPU-s) then SFT 4 epochs
   * with the captions in its data (+≈ 220 CPU-s): count 81/24, size 88/56, presence 92/51, location 84/16
   * (before: 21/25, 63/56, chance, 45/16); instruction-val hallucination 20.6% (before 36.5%), recall 80.0%
   * (53.0%), closed VQA 65.8% (chance before). Without the captions in SFT, SFT wipes the stage out (count
   * 17/21, size 63/56, presence 49/51); SFT at lr 5e-4 keeps part (count 48/21, presence 70/49, size 60/56).
   * Lesion shape stays at chance in every variant. Details: docs/RESULTS-recipe.md §5.
   */
  pretrain: { epochs: 3, lr: 2e-3, batch: 8, captionsInSft: true },
  /**
   * Preference training (DPO, oracle DPO, MLPO) lr with LoRA r 16: the paper's 5e-7 is for 7B weights and
   * does not move the tiny model. Chosen on validation with the oracle-DPO control on the 4-epoch SFT model
   * (200 instruction-val prompts, SFT hallucination 32.6%): 1e-4 → 32.9%, 2e-4 → 35.0%, 3e-4 → 39.8% (the
   * answers collapse to "there is no lesion … appears normal"); with the absence swaps below, 1e-4 → 31.9%
   * and 3e-4 → 35.2% (counts go wrong instead). The lowest rate is 1e-4; no setting tried is clearly below SFT.
   * Re-checked on the SFT model with the caption-alignment stage (instruction-val SFT 20.58%): 1e-4 → 20.75%,
   * 3e-4 → 27.32%, 1e-3 → 29.40%; one-attribute swaps only at 1e-4 → 20.05%. Kept at 1e-4.
   */
  preferenceLr: 1e-4,
  /**
   * The oracle-DPO control's rejected answers: one-attribute swaps only never deny a lesion, and DPO on them
   * moves the tiny model to "there is no lesion … appears normal" for every scan (validation, 4-epoch SFT,
   * 200 prompts: 2,000 pairs at lr 1e-4 → hallucination 39.0%, absence claims 74% wrong). With every other
   * lesion entry's rejected answer the lesion-free description of the same scan: 31.9% at 1e-4 (SFT 32.6%),
   * no collapse (recall 55.7%, as SFT).
   */
  oracleAbsenceSwaps: true,
  /**
   * The oracle control's kind (config `control.kind`): 'swap' (the reference with one attribute swapped, or the
   * lesion-free description) or 'onPolicy' (the SFT model answers instruction-train prompts itself; an answer
   * the exact judge finds wrong is rejected, and the chosen answer is oracleOnPolicyChosen).
   * Chosen on validation, 3 Dec 2026: instruct-val enlarged to 1,500 prompts (its 200 gave intervals of ±1.5–3
   * points, as wide as the effect), the three seeds' SFT models of the demo's recipe, hallucination Δ vs SFT
   * with its paired 95% interval (SFT 22.28 / 26.38 / 31.14%):
   *   swap (500 pairs, the default until then)  +0.81 [+0.17, +1.49]  −0.62 [−1.36, +0.12]  −0.62 [−1.26, +0.04]
   *   onPolicy corrected, first 1,000 entries   −1.19 [−1.83, −0.54]  −1.20 [−1.96, −0.41]  +1.73 [+0.36, +3.05]
   *   onPolicy corrected, first 1,500 entries   −1.94 [−2.79, −1.04]  +0.88 [−0.16, +1.93]  +5.73 [+4.39, +7.08]
   *   onPolicy corrected, first 750 pairs       −1.59 [−2.41, −0.80]  −0.16 [−1.08, +0.75]  +1.25 [−0.16, +2.59]
   *   onPolicy corrected, first 500 pairs       −0.86 [−1.44, −0.24]  −1.10 [−1.80, −0.42]  −2.53 [−3.73, −1.31]
   * Only the last is below SFT on every seed, so it is the default (oraclePairs, oracleLimit). With more pairs
   * the control teaches the model to state more attributes (recall +5 to +14 points on seed 3), right and wrong
   * alike, and the weaker seeds err on more entries, hence the fixed pair count. (Earlier, on 200 val prompts:
   * swap +0.17 [−1.56, +2.00]; onPolicy with y_w chosen +1.44 [−0.23, +3.24]; docs/RESULTS-recipe.md §5.5–5.7.)
   */
  oracleControl: 'onPolicy' as 'swap' | 'onPolicy',
  /**
   * The on-policy control's chosen answer (config `control.chosen`): 'reference' = y_w, which differs from the
   * model's answer in phrasing as much as in facts, so DPO pushes down the model's own wording (lr 3e-4: 14.5% of
   * answers unparsable); 'corrected' = the model's answer with its wrong words fixed (210 of 264 pairs), the
   * pair then differs only where the model erred. 'corrected' is the better on validation (above): the default.
   */
  oracleOnPolicyChosen: 'corrected' as 'reference' | 'corrected',
  /**
   * The oracle control's own preference lr (config `control.lr`; null = preferenceLr, as HSCR and DPO: lr 2e-4
   * and 4 epochs were no better on validation, §5.6), the entries it may draw from (`control.limit`: the whole
   * 2,000-entry instruction split, the paper's budget) and the pairs it keeps (`control.pairs`, above).
   */
  oracleLr: null as number | null,
  oracleLimit: 2000 as number | null,
  oraclePairs: 500 as number | null,
} as const;

