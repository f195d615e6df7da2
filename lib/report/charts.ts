/** The report's Vega-Lite specs: plain data in, a spec out; rendering is vega.ts's job. */
import type { VegaLiteSpec } from './vega';
import type { CurvePoint } from './collect';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const FACET_WIDTH = 250;
const FACET_HEIGHT = 150;

/** At most this many points per line: a 2,000-step SFT curve drawn at 250 px loses nothing at 500. */
const MAX_POINTS = 500;

/** Every k-th point of each (run, series) line, the last one always kept. */
export function thin<T extends CurvePoint>(points: T[], key: (p: T) => string = (p) => `${p.run}\0${p.metric}`): T[] {
  const groups = new Map<string, T[]>();
  for (const p of points) {
    const k = key(p);
    const group = groups.get(k);
    if (group) group.push(p);
    else groups.set(k, [p]);
  }
  return [...groups.values()].flatMap((g) => {
    if (g.length <= MAX_POINTS) return g;
    const stride = Math.ceil(g.length / MAX_POINTS);
    return g.filter((_, i) => i % stride === 0 || i === g.length - 1);
  });
}

/** One small panel per run, each with its own y scale (an SFT loss and a preference loss differ tenfold). */
function facetByRun(title: string, values: object[], layer: VegaLiteSpec, runs: number): VegaLiteSpec {
  return {
    $schema: SCHEMA,
    title,
    data: { values },
    facet: { field: 'run', type: 'nominal', title: null, header: { labelFontSize: 11, labelLimit: 260 } },
    columns: Math.min(3, runs),
    spec: { width: FACET_WIDTH, height: FACET_HEIGHT, ...layer },
    resolve: { scale: { y: 'independent', x: 'independent' } },
  };
}

const LOSS_SERIES: Record<string, string> = { loss: 'total', 'loss/explicit': 'explicit level', 'loss/implicit': 'implicit level' };

/** Loss per optimizer step, one panel per training run: the total and, for MLPO, each level's term. */
export function lossChart(points: CurvePoint[]): VegaLiteSpec | undefined {
  const values = thin(points.flatMap((p) => (LOSS_SERIES[p.metric] ? [{ ...p, series: LOSS_SERIES[p.metric] }] : [])));
  if (values.length === 0) return undefined;
  const runs = new Set(values.map((p) => p.run)).size;
  return facetByRun('Training loss per step (total and per level)', values, {
    mark: { type: 'line', strokeWidth: 1.2 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'optimizer step' },
      y: { field: 'value', type: 'quantitative', title: 'loss', scale: { zero: false } },
      color: { field: 'series', type: 'nominal', title: 'loss', scale: { domain: Object.values(LOSS_SERIES) }, legend: { orient: 'bottom' } },
    },
  }, runs);
}

/** The TRL metric names of the two preference levels (lib/train/mlpo.ts). */
const LEVELS: Record<string, { level: string; kind: 'margins' | 'accuracies' }> = {
  'rewards/margins': { level: 'explicit (y_w ≻ y_l)', kind: 'margins' },
  'rewards_implicit/margins': { level: 'implicit (y_l_j ≻ y_l_m)', kind: 'margins' },
  'rewards/accuracies': { level: 'explicit (y_w ≻ y_l)', kind: 'accuracies' },
  'rewards_implicit/accuracies': { level: 'implicit (y_l_j ≻ y_l_m)', kind: 'accuracies' },
};

/** Reward margins (or accuracies) per level, one panel per preference run, the two levels as two colours. */
export function levelChart(points: CurvePoint[], kind: 'margins' | 'accuracies'): VegaLiteSpec | undefined {
  const values = thin(points.flatMap((p) => (LEVELS[p.metric]?.kind === kind ? [{ ...p, level: LEVELS[p.metric].level }] : [])));
  if (values.length === 0) return undefined;
  const runs = new Set(values.map((p) => p.run)).size;
  const zeroRule = kind === 'margins' ? [{ mark: { type: 'rule', strokeDash: [3, 3], color: '#888' }, encoding: { y: { datum: 0 } } }] : [];
  return facetByRun(kind === 'margins' ? 'Reward margin per level (γ·log-ratio, higher = preferred answer favoured)' : 'Reward accuracy per level (share of pairs ordered right)', values, {
    layer: [
      {
        mark: { type: 'line', strokeWidth: 1.2 },
        encoding: {
          x: { field: 'step', type: 'quantitative', title: 'optimizer step' },
          y: { field: 'value', type: 'quantitative', title: kind === 'margins' ? 'margin' : 'accuracy', ...(kind === 'accuracies' ? { scale: { domain: [0, 1] } } : {}) },
          color: { field: 'level', type: 'nominal', title: 'level', legend: { orient: 'bottom', labelLimit: 320 } },
        },
      },
      ...zeroRule,
    ],
  }, runs);
}

export interface ScorePoint {
  run: string;
  measure: string;
  value: number;
  low: number;
  high: number;
  n: number;
}

/** Scores with their 95% intervals: a dot and a bar per evaluated model, one panel per measure. */
export function scoreChart(points: ScorePoint[]): VegaLiteSpec | undefined {
  if (points.length === 0) return undefined;
  return {
    $schema: SCHEMA,
    title: 'Scores with 95% Wilson intervals',
    data: { values: points.map((p) => ({ ...p, value: p.value * 100, low: p.low * 100, high: p.high * 100 })) },
    facet: { column: { field: 'measure', type: 'nominal', title: null } },
    spec: {
      width: 260,
      layer: [
        { mark: { type: 'rule', strokeWidth: 2, color: '#4c78a8' }, encoding: { y: { field: 'run', type: 'nominal', title: null, axis: { labelLimit: 240 } }, x: { field: 'low', type: 'quantitative', title: '%', scale: { domain: [0, 100] } }, x2: { field: 'high' } } },
        { mark: { type: 'point', filled: true, size: 50, color: '#e45756' }, encoding: { y: { field: 'run', type: 'nominal' }, x: { field: 'value', type: 'quantitative' }, tooltip: [{ field: 'run' }, { field: 'value', format: '.2f' }, { field: 'n' }] } },
      ],
    },
  };
}

export interface ReliancePoint {
  run: string;
  measure: string;
  points: number;
}

/** Image reliance: score with the real image minus with a blank one, in points, per evaluated model. */
export function relianceChart(values: ReliancePoint[]): VegaLiteSpec | undefined {
  if (values.length === 0) return undefined;
  return {
    $schema: SCHEMA,
    title: 'Image reliance (real − blank image, points)',
    data: { values },
    facet: { column: { field: 'measure', type: 'nominal', title: null } },
    spec: {
      width: 260,
      layer: [
        { mark: { type: 'bar', color: '#54a24b' }, encoding: { y: { field: 'run', type: 'nominal', title: null, axis: { labelLimit: 240 } }, x: { field: 'points', type: 'quantitative', title: 'points' } } },
        { mark: { type: 'rule', color: '#333' }, encoding: { x: { datum: 0 } } },
      ],
    },
  };
}
