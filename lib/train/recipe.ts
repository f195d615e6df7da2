/**
 * The recipe's tables with their statistics: Table 1 (VQA: closed accuracy, open recall), Table 2 (the
 * exact judge on the instruction test split: precision, recall, F1, CHAIR-style hallucination rate) and the
 * Figure-4 gap, for SFT, binary DPO, oracle DPO (the positive control) and HSCR. Each method's difference to
 * SFT comes with a paired-bootstrap 95% interval over the test items (lib/eval/bootstrap.ts), the seeds'
 * models held fixed; mean ± std over seeds beside it. The whole summary is written as recipe.json so a
 * report can render it without re-reading the runs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { VqaRecord } from '../data/types';
import { pairedBootstrap, formatDifference, outsideZero, type ItemRatios, type PairedDifference } from '../eval/bootstrap';
import { judgeAnswer, judgeRecords, judgeReport } from '../eval/judge';
import { closedCorrect, openScore, type MetricVariant } from '../eval/metrics';
import type { GapItem } from '../eval/figure4';

/** Loaded lazily to avoid a cycle with ablate.ts (which imports this module). */
interface RecipeConfig {
  eval: { variant: MetricVariant; bootstrap: number };
}
interface RecipeVariant {
  key: string;
  label: string;
}

/** gapImage: the Figure-4 gap with the real image minus with a blank one (the part the image accounts for). */
export const RECIPE_METRICS = ['closed', 'open', 'precision', 'recall', 'hallucination', 'gap', 'gapImage'] as const;
export type RecipeMetric = (typeof RECIPE_METRICS)[number];

export interface MetricCell {
  /** One value per seed (null where the seed lacks it). */
  perSeed: (number | null)[];
  mean: number | null;
  std: number | null;
  /** Difference to SFT with its paired-bootstrap 95% interval (absent for SFT itself). */
  vsSft?: PairedDifference;
}

export interface RecipeRow {
  key: string;
  label: string;
  metrics: Partial<Record<RecipeMetric, MetricCell>>;
  /** Judge F1 per seed, mean over seeds. */
  f1: number | null;
  /** Hallucination rate per modality and per prior state (mean over seeds). */
  hallucinationByModality: Record<string, number | null>;
  hallucinationByPrior: Record<string, number | null>;
  /** Figure-4 mean gap per modality (mean over seeds). */
  gapByModality: Record<string, number | null>;
  unparsedShare: number | null;
}

export interface RecipeSummary {
  seeds: number[];
  items: { closed: number; open: number; instruction: number };
  rows: RecipeRow[];
  /** The positive control: did oracle DPO lower the hallucination rate with an interval below 0? */
  control: { worked: boolean | null; hallucination?: PairedDifference };
  /** Method × metric: which differences to SFT have an interval that excludes 0. */
  outsideIntervals: string[];
}

const meanOf = (v: number[]): number | null => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : null);
function stdOf(v: number[]): number | null {
  const m = meanOf(v);
  if (m === null) return null;
  return v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1)) : 0;
}

function readPredictions(file: string): Map<string, string> | undefined {
  if (!fs.existsSync(file)) return undefined;
  const out = new Map<string, string>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const p = JSON.parse(line) as { id: string; prediction: string };
    out.set(p.id, p.prediction);
  }
  return out;
}

type PerItem = Record<RecipeMetric, { num: number; den: number }[]>;

/** Per test item, the numerator and denominator of every metric, for one method and seed. */
function perItem(predictions: Map<string, string>, gaps: GapItem[] | undefined, vqa: VqaRecord[], instruct: VqaRecord[], variant: MetricVariant, blankGaps?: GapItem[]): PerItem {
  const closed = vqa.filter((r) => r.answer_type === 'closed').map((r) => ({ num: closedCorrect(predictions.get(r.id) ?? '', r.answer, variant) ? 1 : 0, den: 1 }));
  const open = vqa.filter((r) => r.answer_type === 'open').map((r) => ({ num: openScore(predictions.get(r.id) ?? '', r.answer, variant).recall, den: 1 }));
  const verdicts = instruct.map((r) => judgeAnswer(predictions.get(r.id) ?? '', r.scene!));
  const wrong = (v: (typeof verdicts)[number]) => v.claims.filter((c) => !c.correct).length;
  const byId = new Map((gaps ?? []).map((g) => [g.id, g.gap]));
  const blankById = new Map((blankGaps ?? []).map((g) => [g.id, g.gap]));
  return {
    closed,
    open,
    precision: verdicts.map((v) => ({ num: v.claims.length - wrong(v), den: v.claims.length })),
    recall: verdicts.map((v) => ({ num: v.covered, den: v.facts })),
    hallucination: verdicts.map((v) => ({ num: wrong(v), den: v.claims.length })),
    gap: gaps ? instruct.filter((r) => byId.has(r.id)).map((r) => ({ num: byId.get(r.id)!, den: 1 })) : [],
    gapImage: gaps && blankGaps ? instruct.filter((r) => byId.has(r.id) && blankById.has(r.id)).map((r) => ({ num: byId.get(r.id)! - blankById.get(r.id)!, den: 1 })) : [],
  };
}

function ratio(items: { num: number; den: number }[]): number | null {
  const den = items.reduce((a, b) => a + b.den, 0);
  return den > 0 ? items.reduce((a, b) => a + b.num, 0) / den : null;
}

/** items[seed] → ItemRatios (item-major), only when every seed has the same number of items. */
function transpose(perSeed: { num: number; den: number }[][]): ItemRatios | undefined {
  if (perSeed.length === 0 || perSeed.some((s) => s.length !== perSeed[0].length) || perSeed[0].length === 0) return undefined;
  return perSeed[0].map((_, i) => perSeed.map((s) => s[i]));
}

export async function recipeSummary(root: string, c: RecipeConfig, variants: RecipeVariant[], seeds: number[], vqa: VqaRecord[], instruct: VqaRecord[]): Promise<RecipeSummary> {
  const judged = instruct.filter((r) => r.scene !== undefined);
  const data = new Map<string, { seed: number; items: PerItem; predictions: Map<string, string>; gaps?: GapItem[] }[]>();
  for (const v of variants) {
    const list = [];
    for (const seed of seeds) {
      const dir = path.join(root, `seed-${seed}`, 'eval', v.key);
      const predictions = readPredictions(path.join(dir, 'predictions.jsonl'));
      if (!predictions) continue;
      const gapFile = path.join(dir, 'figure4.json');
      const gaps = fs.existsSync(gapFile) ? (JSON.parse(fs.readFileSync(gapFile, 'utf8')) as GapItem[]) : undefined;
      const blankFile = path.join(dir, 'figure4.blank.json');
      const blankGaps = fs.existsSync(blankFile) ? (JSON.parse(fs.readFileSync(blankFile, 'utf8')) as GapItem[]) : undefined;
      list.push({ seed, items: perItem(predictions, gaps, vqa, judged, c.eval.variant, blankGaps), predictions, gaps });
    }
    data.set(v.key, list);
  }
  const sft = data.get('sft') ?? [];
  const rows: RecipeRow[] = variants.map((v, vi) => {
    const runs = data.get(v.key) ?? [];
    const metrics: RecipeRow['metrics'] = {};
    for (const m of RECIPE_METRICS) {
      const perSeed = seeds.map((s) => {
        const run = runs.find((r) => r.seed === s);
        return run ? ratio(run.items[m]) : null;
      });
      const present = perSeed.filter((x): x is number => x !== null);
      if (present.length === 0) continue;
      const cell: MetricCell = { perSeed, mean: meanOf(present), std: stdOf(present) };
      if (v.key !== 'sft') {
        // Paired on the seeds both have.
        const both = runs.filter((r) => sft.some((b) => b.seed === r.seed));
        const method = transpose(both.map((r) => r.items[m]));
        const base = transpose(both.map((r) => sft.find((b) => b.seed === r.seed)!.items[m]));
        if (method && base && method.length === base.length) cell.vsSft = pairedBootstrap(method, base, { replicates: c.eval.bootstrap, seed: 1000 + vi });
      }
      metrics[m] = cell;
    }
    const reports = runs.map((r) => judgeReport(judgeRecords(judged, r.predictions)));
    const meanKey = (get: (i: number) => number | null | undefined) => meanOf(reports.map((_, i) => get(i)).filter((x): x is number => typeof x === 'number'));
    const keys = (pick: (i: number) => Record<string, unknown>) => [...new Set(reports.flatMap((_, i) => Object.keys(pick(i))))].sort();
    const gapMods = [...new Set(runs.flatMap((r) => (r.gaps ?? []).map((g) => g.modality)))].sort();
    return {
      key: v.key,
      label: v.label,
      metrics,
      f1: meanKey((i) => reports[i].overall.f1),
      hallucinationByModality: Object.fromEntries(keys((i) => reports[i].byModality).map((k) => [k, meanKey((i) => reports[i].byModality[k]?.hallucinationRate)])),
      hallucinationByPrior: Object.fromEntries(keys((i) => reports[i].byPrior).map((k) => [k, meanKey((i) => reports[i].byPrior[k]?.hallucinationRate)])),
      gapByModality: Object.fromEntries(gapMods.map((mod) => [mod, meanOf(runs.map((r) => meanOf((r.gaps ?? []).filter((g) => g.modality === mod).map((g) => g.gap))).filter((x): x is number => x !== null))])),
      unparsedShare: meanKey((i) => reports[i].overall.unparsedShare),
    };
  });
  const oracle = rows.find((r) => r.key === 'oracle')?.metrics.hallucination?.vsSft;
  const outsideIntervals = rows.flatMap((r) => RECIPE_METRICS.flatMap((m) => (r.metrics[m]?.vsSft && outsideZero(r.metrics[m]!.vsSft!) ? [`${r.key}:${m}`] : [])));
  return {
    seeds,
    items: { closed: vqa.filter((r) => r.answer_type === 'closed').length, open: vqa.filter((r) => r.answer_type === 'open').length, instruction: judged.length },
    rows,
    control: { worked: oracle ? oracle.high < 0 : null, ...(oracle ? { hallucination: oracle } : {}) },
    outsideIntervals,
  };
}

const pct = (v: number | null | undefined, scale = 100): string => (v === null || v === undefined || !Number.isFinite(v) ? '–' : (v * scale).toFixed(2));
function cell(m: MetricCell | undefined, scale = 100): string {
  if (!m || m.mean === null) return '–';
  return `${pct(m.mean, scale)} ± ${pct(m.std, scale)}`;
}

/** Markdown: Tables 1 and 2, Figure 4, and the control's verdict. */
export function formatRecipe(s: RecipeSummary): string {
  const out: string[] = [];
  const seeds = `seeds ${s.seeds.join(', ')}: mean ± std over seeds; Δ = method − SFT with a paired-bootstrap 95% interval over test items`;
  out.push(`### Table 1 — phantom VQA test (${s.items.closed} closed, ${s.items.open} open questions; ${seeds})`, '');
  out.push('| Method | Closed (accuracy) | Δ closed vs SFT | Open (token recall) | Δ open vs SFT |', '| --- | ---: | ---: | ---: | ---: |');
  for (const r of s.rows) out.push(`| ${r.label} | ${cell(r.metrics.closed)} | ${formatDifference(r.metrics.closed?.vsSft)} | ${cell(r.metrics.open)} | ${formatDifference(r.metrics.open?.vsSft)} |`);
  out.push('', `### Table 2 — instruction test (${s.items.instruction} prompts), exact judge: attribute precision, recall, F1, hallucination rate (CHAIR-style, lower is better)`, '');
  out.push('| Method | Precision | Recall | F1 | Hallucination | Δ hallucination vs SFT | Δ recall vs SFT | unparsed answers |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of s.rows) {
    out.push(`| ${r.label} | ${cell(r.metrics.precision)} | ${cell(r.metrics.recall)} | ${pct(r.f1)} | ${cell(r.metrics.hallucination)} | ${formatDifference(r.metrics.hallucination?.vsSft)} | ${formatDifference(r.metrics.recall?.vsSft)} | ${pct(r.unparsedShare)}% |`);
  }
  const mods = [...new Set(s.rows.flatMap((r) => Object.keys(r.hallucinationByModality)))];
  const priors = [...new Set(s.rows.flatMap((r) => Object.keys(r.hallucinationByPrior)))];
  out.push('', `Hallucination rate by modality and by training prior (held/broken in the test scene), %:`, '');
  out.push(`| Method | ${[...mods, ...priors].join(' | ')} |`, `| --- |${[...mods, ...priors].map(() => ' ---: |').join('')}`);
  for (const r of s.rows) out.push(`| ${r.label} | ${[...mods.map((m) => pct(r.hallucinationByModality[m])), ...priors.map((p) => pct(r.hallucinationByPrior[p]))].join(' | ')} |`);
  const gmods = [...new Set(s.rows.flatMap((r) => Object.keys(r.gapByModality)))];
  if (gmods.length > 0) {
    out.push('', '### Figure 4 — log p(correct answer) − log p(one-attribute swap), nats (higher = the image decides)', '');
    out.push(`| Method | mean gap | Δ vs SFT | image part (real − blank image) | Δ image part vs SFT | ${gmods.join(' | ')} |`, `| --- | ---: | ---: | ---: | ---: |${gmods.map(() => ' ---: |').join('')}`);
    for (const r of s.rows) out.push(`| ${r.label} | ${cell(r.metrics.gap, 1)} | ${formatDifference(r.metrics.gap?.vsSft, 1)} | ${cell(r.metrics.gapImage, 1)} | ${formatDifference(r.metrics.gapImage?.vsSft, 1)} | ${gmods.map((m) => pct(r.gapByModality[m], 1)).join(' | ')} |`);
  }
  const c = s.control;
  out.push(
    '',
    c.worked === null
      ? 'Positive control: oracle DPO was not run.'
      : `Positive control (oracle DPO, rejected answers made or judged wrong against the known scene, config control.kind): hallucination Δ ${formatDifference(c.hallucination)} → ${c.worked ? 'WORKED (interval below 0): the benchmark can detect a hallucination reduction' : 'DID NOT WORK: the benchmark cannot detect the effect at this size; read HSCR\u2019s numbers with that in mind'}.`,
    `Differences whose 95% interval excludes 0: ${s.outsideIntervals.length ? s.outsideIntervals.join(', ') : 'none'}.`,
  );
  return out.join('\n');
}
