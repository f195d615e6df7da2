/** 95% intervals for the report's scores, from what results.json keeps (n and the mean). */

const Z95 = 1.959963984540054;

/**
 * Wilson score interval of a proportion p over n items. Closed accuracy is a proportion. The open score
 * (recall, exact match) is a mean of per-item values in [0, 1], whose variance is at most p(1 − p): the
 * same interval is then conservative (wider than the true one), which is the honest choice when only the
 * mean and n are kept.
 */
export function wilsonInterval(p: number, n: number, z = Z95): [number, number] {
  if (!(n > 0) || !Number.isFinite(p)) return [Number.NaN, Number.NaN];
  const z2n = (z * z) / n;
  const centre = (p + z2n / 2) / (1 + z2n);
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / (1 + z2n);
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}
