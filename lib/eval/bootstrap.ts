/**
 * Paired bootstrap over test items for a method's difference to a baseline (our tables' 95% intervals).
 * Every method answers the same test items, so the items are resampled jointly: each replicate draws n
 * item indices with replacement and recomputes both methods' statistic on the SAME items. With several
 * seeds, each item carries one (numerator, denominator) per seed; a replicate's statistic is the mean over
 * seeds of Σ num / Σ den over the drawn items, so the interval covers item sampling with the seeds' models
 * held fixed (the seeds' spread is reported beside it as mean ± std).
 *
 * Ratio statistics cover accuracy (num = correct, den = 1), open recall (num = recall, den = 1) and
 * the judge's rates (num = hallucinated attributes, den = stated attributes).
 */
import { HscrError } from '../errors';
import { Rng } from '../data/prng';

/** Per item, per seed: the statistic's numerator and denominator. items[i][s]. */
export type ItemRatios = { num: number; den: number }[][];

export interface PairedDifference {
  /** Method − baseline on the full test set (mean over seeds). */
  diff: number;
  low: number;
  high: number;
  /** Replicates where the difference is ≤ 0 (one-sided bootstrap p of "method > baseline"), as a share. */
  shareNotAbove: number;
  replicates: number;
}

function ratioOf(items: ItemRatios, picks: Int32Array | null, seed: number): number {
  let num = 0;
  let den = 0;
  const n = picks ? picks.length : items.length;
  for (let k = 0; k < n; k++) {
    const it = items[picks ? picks[k] : k][seed];
    num += it.num;
    den += it.den;
  }
  return den > 0 ? num / den : NaN;
}

function meanOverSeeds(items: ItemRatios, picks: Int32Array | null, seeds: number): number {
  let s = 0;
  for (let j = 0; j < seeds; j++) s += ratioOf(items, picks, j);
  return s / seeds;
}

/** Percentile with linear interpolation (numpy's default) of sorted values. */
export function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** The 95% (or 1 − alpha) percentile interval of method − baseline. */
export function pairedBootstrap(method: ItemRatios, baseline: ItemRatios, opts: { replicates?: number; seed?: number; alpha?: number } = {}): PairedDifference {
  const n = method.length;
  if (n === 0 || baseline.length !== n) throw new HscrError(`pairedBootstrap: both methods need the same non-empty item list (${n} vs ${baseline.length})`, 'E_ARG', [n, baseline.length]);
  const seeds = method[0].length;
  if (seeds === 0 || method.some((s) => s.length !== seeds) || baseline.some((s) => s.length !== seeds)) throw new HscrError('pairedBootstrap: every item needs one value per seed for both methods', 'E_ARG', seeds);
  const replicates = opts.replicates ?? 2000;
  const alpha = opts.alpha ?? 0.05;
  const rng = new Rng(opts.seed ?? 12345);
  const diffs: number[] = [];
  const picks = new Int32Array(n);
  for (let r = 0; r < replicates; r++) {
    for (let k = 0; k < n; k++) picks[k] = rng.int(0, n - 1);
    const d = meanOverSeeds(method, picks, seeds) - meanOverSeeds(baseline, picks, seeds);
    if (Number.isFinite(d)) diffs.push(d);
  }
  diffs.sort((a, b) => a - b);
  return {
    diff: meanOverSeeds(method, null, seeds) - meanOverSeeds(baseline, null, seeds),
    low: percentile(diffs, alpha / 2),
    high: percentile(diffs, 1 - alpha / 2),
    shareNotAbove: diffs.filter((d) => d <= 0).length / Math.max(1, diffs.length),
    replicates: diffs.length,
  };
}

/** "+1.23 [−0.40, +2.90]" in points (×100), or "–". */
export function formatDifference(d: PairedDifference | undefined, scale = 100): string {
  if (!d || !Number.isFinite(d.diff)) return '–';
  const f = (v: number) => `${v >= 0 ? '+' : '−'}${Math.abs(v * scale).toFixed(2)}`;
  return `${f(d.diff)} [${f(d.low)}, ${f(d.high)}]`;
}

/** True when the interval excludes 0. */
export function outsideZero(d: PairedDifference): boolean {
  return d.low > 0 || d.high < 0;
}
