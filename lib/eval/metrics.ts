/**
 * Closed-question accuracy and open-question recall, as the field computes them. The published scripts
 * disagree, so each is a named variant:
 *
 * - `med-moe` (default): Med-MoE's run_eval.py, the eval script of the HSCR authors' previous codebase and
 *   the likeliest source of the paper's numbers. Both sides lower-cased only. Closed: the ground truth is
 *   a substring of the prediction ("no" is found in "not", "normal" and "unknown" too). Open: recall of
 *   LLaVA-Med's calculate_f1score (normalised once inside), with its quirk that a matching word counts as
 *   often as it occurs in the prediction.
 * - `llava-med-v1`: LLaVA-Med's run_eval.py. Both sides lower-cased and normalised (the word scores then
 *   normalise again, as the script does); every ground-truth id must have a prediction and no other id may
 *   appear; closed is correct when the prediction contains "yes" or "no" (substrings) and contains the
 *   ground truth. (The first release appended nothing for a yes/no prediction without the ground truth,
 *   shrinking the denominator; the later fix counts it as wrong, and so does this variant.)
 * - `strict`: normalised exact match for closed and open; recall/precision/F1 are textbook token overlap.
 *
 * For open questions every variant also reports exact match (LLaVA-Med's calculate_exactmatch for the two
 * field variants, which is really a word precision; equality for strict), F1, precision and the
 * "ground truth in prediction" hit. Predictions are paired with ground truth by id, never by position.
 */
import { HscrError } from '../errors';
import type { AnswerType, VqaRecord } from '../data/types';
import { llavaExactMatch, llavaF1, normalizeWord, pySplit, tokenF1 } from './normalize';

export const METRIC_VARIANTS = ['med-moe', 'llava-med-v1', 'strict'] as const;
export type MetricVariant = (typeof METRIC_VARIANTS)[number];
export const DEFAULT_VARIANT: MetricVariant = 'med-moe';

export interface OpenItemScore {
  recall: number;
  precision: number;
  f1: number;
  exactMatch: number;
  hit: number;
}

export function checkVariant(v: string): MetricVariant {
  if ((METRIC_VARIANTS as readonly string[]).includes(v)) return v as MetricVariant;
  throw new HscrError(`unknown metric variant "${v}" (one of ${METRIC_VARIANTS.join(', ')})`, 'E_ARG', v);
}

const norm = (s: string): string => normalizeWord(s.toLowerCase());

/** Whether a closed answer counts as correct under the variant. */
export function closedCorrect(prediction: string, answer: string, variant: MetricVariant): boolean {
  switch (variant) {
    case 'med-moe':
      return prediction.toLowerCase().includes(answer.toLowerCase());
    case 'llava-med-v1': {
      const [p, a] = [norm(prediction), norm(answer)];
      return (p.includes('yes') || p.includes('no')) && p.includes(a);
    }
    case 'strict':
      return norm(prediction) === norm(answer);
  }
}

/** True when the reference's words appear, in order and as whole words, in the prediction. */
function containsWords(prediction: string[], reference: string[]): boolean {
  if (reference.length === 0) return false;
  for (let i = 0; i + reference.length <= prediction.length; i++) {
    if (reference.every((w, j) => prediction[i + j] === w)) return true;
  }
  return false;
}

/** The word scores of an open answer under the variant. */
export function openScore(prediction: string, answer: string, variant: MetricVariant): OpenItemScore {
  if (variant === 'strict') {
    const [p, a] = [norm(prediction), norm(answer)];
    const [pw, aw] = [pySplit(p), pySplit(a)];
    return { ...tokenF1(pw, aw), exactMatch: p === a ? 1 : 0, hit: containsWords(pw, aw) ? 1 : 0 };
  }
  const [p, a] = variant === 'med-moe' ? [prediction.toLowerCase(), answer.toLowerCase()] : [norm(prediction), norm(answer)];
  return { ...llavaF1(p, a), exactMatch: llavaExactMatch(p, a), hit: p.includes(a) ? 1 : 0 };
}

export interface ItemScore {
  id: string;
  dataset: string;
  answer_type: AnswerType;
  answer: string;
  prediction: string;
  /** Closed questions. */
  correct?: boolean;
  /** Open questions. */
  open?: OpenItemScore;
  /** No prediction had this id (scored as the empty answer). */
  missing?: boolean;
}

export interface ClosedSummary {
  n: number;
  /** Share correct, in [0, 1]; null when n is 0. */
  accuracy: number | null;
}

export interface OpenSummary {
  n: number;
  /** The open column of the paper's table: recall for the field variants, exact match for strict. */
  score: number | null;
  recall: number | null;
  precision: number | null;
  f1: number | null;
  exactMatch: number | null;
  hit: number | null;
}

export interface GroupSummary {
  closed: ClosedSummary;
  open: OpenSummary;
}

export interface ScoreReport {
  variant: MetricVariant;
  /** Per dataset (the record's `dataset`, else 'default'). */
  datasets: Record<string, GroupSummary>;
  /** All records pooled. */
  overall: GroupSummary;
  /** Ground-truth ids without a prediction. */
  missing: string[];
  /** Prediction ids without a ground-truth record (not scored). */
  unmatched: string[];
  items: ItemScore[];
}

/** Predicted answer text by record id. */
export type Predictions = ReadonlyMap<string, string>;

export interface ScoreOptions {
  /** Which published metric script to follow (default 'med-moe'). */
  variant?: MetricVariant;
}

const mean = (xs: number[]): number | null => (xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length);

export function summarize(items: ItemScore[], variant: MetricVariant): GroupSummary {
  const closed = items.filter((i) => i.correct !== undefined);
  const open = items.map((i) => i.open).filter((o): o is OpenItemScore => o !== undefined);
  const avg = (k: keyof OpenItemScore) => mean(open.map((o) => o[k]));
  return {
    closed: { n: closed.length, accuracy: mean(closed.map((i) => (i.correct ? 1 : 0))) },
    open: { n: open.length, score: avg(variant === 'strict' ? 'exactMatch' : 'recall'), recall: avg('recall'), precision: avg('precision'), f1: avg('f1'), exactMatch: avg('exactMatch'), hit: avg('hit') },
  };
}

function checkIds(records: readonly VqaRecord[], predictions: Predictions, variant: MetricVariant): { missing: string[]; unmatched: string[] } {
  const ids = new Set<string>();
  for (const r of records) {
    if (ids.has(r.id)) throw new HscrError(`ground truth has id "${r.id}" twice; predictions are paired by id`, 'E_DATA', r.id);
    ids.add(r.id);
  }
  const missing = records.filter((r) => !predictions.has(r.id)).map((r) => r.id);
  const unmatched = [...predictions.keys()].filter((id) => !ids.has(id));
  if (variant === 'llava-med-v1' && (missing.length > 0 || unmatched.length > 0)) {
    const what = missing.length > 0 ? `no prediction for id "${missing[0]}"` : `prediction id "${unmatched[0]}" is not in the ground truth`;
    throw new HscrError(`llava-med-v1 needs the prediction ids to match the ground truth exactly: ${what} (${missing.length} missing, ${unmatched.length} unmatched)`, 'E_DATA', missing[0] ?? unmatched[0]);
  }
  return { missing, unmatched };
}

/** Predictions as a Map; a plain `{id: answer}` object is accepted too. Anything else is E_ARG. */
function asPredictions(predictions: unknown): Predictions {
  if (predictions instanceof Map) return predictions as Predictions;
  if (predictions !== null && typeof predictions === 'object' && !Array.isArray(predictions)) {
    const entries = Object.entries(predictions as Record<string, unknown>);
    const bad = entries.find(([, v]) => typeof v !== 'string');
    if (bad) throw new HscrError(`scorePredictions: the prediction for id "${bad[0]}" is not a string`, 'E_ARG', bad[1]);
    return new Map(entries as [string, string][]);
  }
  throw new HscrError('scorePredictions: predictions must be a Map or an object of id → answer text', 'E_ARG', predictions);
}

/**
 * Scores predictions (id → answer text) against records, per dataset and pooled.
 * @param records ground truth, e.g. from `loadDataset(file).records`
 * @param predictions a Map (or plain object) of record id → predicted answer text
 * @param options `{ variant }`; a bare variant name is still accepted
 */
export function scorePredictions(
  records: readonly VqaRecord[],
  predictions: Predictions | Readonly<Record<string, string>>,
  options: ScoreOptions | MetricVariant = {},
): ScoreReport {
  if (!Array.isArray(records)) throw new HscrError('scorePredictions: records must be an array of VqaRecord', 'E_ARG', records);
  const variant = typeof options === 'string' ? options : (options?.variant ?? DEFAULT_VARIANT);
  checkVariant(variant);
  const byId = asPredictions(predictions);
  const { missing, unmatched } = checkIds(records, byId, variant);
  const items: ItemScore[] = records.map((r) => {
    const prediction = byId.get(r.id);
    const base = { id: r.id, dataset: r.dataset ?? 'default', answer_type: r.answer_type, answer: r.answer, prediction: prediction ?? '', ...(prediction === undefined ? { missing: true } : {}) };
    return r.answer_type === 'closed' ? { ...base, correct: closedCorrect(base.prediction, r.answer, variant) } : { ...base, open: openScore(base.prediction, r.answer, variant) };
  });
  const datasets: Record<string, GroupSummary> = {};
  for (const name of [...new Set(items.map((i) => i.dataset))]) datasets[name] = summarize(items.filter((i) => i.dataset === name), variant);
  return { variant, datasets, overall: summarize(items, variant), missing, unmatched, items };
}
