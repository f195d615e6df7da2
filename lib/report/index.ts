/**
 * The run report: one self-contained HTML file per run folder (train, ablate, demo, run) with the config,
 * the environment, training curves per preference level, results with intervals, image reliance and a
 * browsable sample of ranked lists. Plots are Vega-Lite rendered to SVG here and inlined: the file needs
 * no network and no script to show them (the one inline script only filters the ranked-list sample).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { doctor, type DoctorReport } from '../doctor';
import { HscrError } from '../errors';
import { writeFileAtomic } from '../model/config';
import { lossChart, levelChart, relianceChart, scoreChart, type ReliancePoint, type ScorePoint } from './charts';
import { findRunFiles, readCurves, readEvaluations, readJsonObject, readReliance, runLabel, sampleRanked, type CurvePoint, type RankedSample } from './collect';
import { esc, figure, FILTER_SCRIPT, jsonBlock, pct, section, STYLE, table } from './html';
import { wilsonInterval } from './intervals';
import { renderVegaLite, type VegaLiteSpec } from './vega';

export const REPORT_FILE = 'report.html';

export interface RunReportOptions {
  /** Heading of the page (default: 'hscr run report'). */
  title?: string;
  /** The run's settings as the command saw them (shown first). */
  config?: unknown;
  /**
   * The environment (`hscr doctor`). Default: <runDir>/environment.json when there is one, else a short
   * doctor probe now; false leaves the section out.
   */
  environment?: DoctorReport | Record<string, unknown> | false;
  /** ranked.jsonl files to sample besides those found in the run folder (e.g. `hscr train --prefs`). */
  ranked?: string[];
  /** Ranked-list records shown per file (default 24). */
  sampleSize?: number;
  /** Where the report goes (default <runDir>/report.html). */
  file?: string;
}

export interface RunReport {
  file: string;
  /** Plot names, in page order; each is one inline SVG. */
  plots: string[];
  runs: number;
  results: number;
  rankedRecords: number;
  bytes: number;
}

function resultLabel(runDir: string, file: string): string {
  const label = runLabel(runDir, file);
  return label.endsWith('/results.json') ? label.slice(0, -'/results.json'.length) : label.replace(/\.json$/, '');
}

async function environmentOf(runDir: string, given: RunReportOptions['environment']): Promise<Record<string, unknown> | undefined> {
  if (given === false) return undefined;
  if (given) return given as Record<string, unknown>;
  const saved = readJsonObject(path.join(runDir, 'environment.json'));
  if (saved) return saved;
  return (await doctor({ gemmSize: 256, gemmSeconds: 0.2 })) as unknown as Record<string, unknown>;
}

function environmentTable(env: Record<string, unknown>): string {
  const rows = Object.entries(env).map(([k, v]) => [esc(k), typeof v === 'object' && v !== null ? `<code>${esc(JSON.stringify(v))}</code>` : esc(v)]);
  return table(['what', 'value'], rows, 9);
}

function curvesSummary(curves: CurvePoint[]): string {
  const runs = [...new Set(curves.map((c) => c.run))];
  const last = (run: string, metric: string) => {
    const pts = curves.filter((c) => c.run === run && c.metric === metric);
    return pts.length ? pts[pts.length - 1] : undefined;
  };
  const fmt = (p: CurvePoint | undefined, digits = 4) => (p ? p.value.toFixed(digits) : '–');
  const rows = runs.map((run) => [
    esc(run),
    String(Math.max(...curves.filter((c) => c.run === run).map((c) => c.step))),
    fmt(curves.find((c) => c.run === run && c.metric === 'loss')),
    fmt(last(run, 'loss')),
    fmt(last(run, 'rewards/margins')),
    fmt(last(run, 'rewards_implicit/margins')),
    fmt(last(run, 'rewards/accuracies'), 3),
    fmt(last(run, 'rewards_implicit/accuracies'), 3),
  ]);
  return table(['run', 'steps', 'first loss', 'last loss', 'last margin (explicit)', 'last margin (implicit)', 'last accuracy (explicit)', 'last accuracy (implicit)'], rows);
}

function scorePoints(runDir: string, evals: ReturnType<typeof readEvaluations>): ScorePoint[] {
  const points: ScorePoint[] = [];
  for (const { file, result } of evals) {
    const run = resultLabel(runDir, file);
    const { closed, open } = result.overall;
    if (closed.accuracy !== null && closed.n > 0) {
      const [low, high] = wilsonInterval(closed.accuracy, closed.n);
      points.push({ run, measure: 'closed accuracy', value: closed.accuracy, low, high, n: closed.n });
    }
    if (open.score !== null && open.n > 0) {
      const [low, high] = wilsonInterval(open.score, open.n);
      points.push({ run, measure: 'open score', value: open.score, low, high, n: open.n });
    }
  }
  return points;
}

function withInterval(value: number | null, n: number): string {
  if (value === null || n === 0) return '–';
  const [lo, hi] = wilsonInterval(value, n);
  return `${pct(value)} <span class="score">[${pct(lo, 1)}, ${pct(hi, 1)}]</span> <span class="score">n=${n}</span>`;
}

function resultsTable(runDir: string, evals: ReturnType<typeof readEvaluations>): string {
  const rows: string[][] = [];
  for (const { file, result } of evals) {
    const groups = Object.keys(result.datasets).length > 1 ? { ...result.datasets, all: result.overall } : result.datasets;
    for (const [dataset, g] of Object.entries(groups)) {
      rows.push([esc(resultLabel(runDir, file)), esc(dataset), esc(result.variant), withInterval(g.open.score, g.open.n), withInterval(g.closed.accuracy, g.closed.n)]);
    }
  }
  return table(['run', 'dataset', 'metric variant', 'open score % [95% CI]', 'closed accuracy % [95% CI]'], rows, 3);
}

function relianceSection(runDir: string, found: ReturnType<typeof readReliance>): { html: string; points: ReliancePoint[] } {
  const points: ReliancePoint[] = [];
  const rows: string[][] = [];
  for (const { file, reliance } of found) {
    const run = runLabel(runDir, file).replace(/\.reliance\.json$/, '');
    for (const [dataset, d] of Object.entries({ ...reliance.datasets, ...(Object.keys(reliance.datasets).length > 1 ? { all: reliance.overall } : {}) })) {
      rows.push([esc(run), esc(dataset), pct(d.closed), pct(d.open)]);
    }
    if (reliance.overall.closed !== null) points.push({ run, measure: 'closed accuracy', points: reliance.overall.closed * 100 });
    if (reliance.overall.open !== null) points.push({ run, measure: 'open score', points: reliance.overall.open * 100 });
  }
  const html = `<p>Score with the real image minus the score with a blank grey image, in points: a model that ignores the picture scores ~0, and then has no modality-coupled tokens for HSCR §3.1 to find.</p>${table(['evaluation', 'dataset', 'closed (points)', 'open (points)'], rows, 2)}`;
  return { html, points };
}

/** Answer tokens: SentencePiece/BPE pieces carry their own spaces (▁, Ġ); word-level tokens are joined by spaces. */
function tokenSpans(tokens: string[], swaps: Map<number, { from: string; to: string; score: number }>): string {
  const pieces = tokens.some((t) => /^[▁Ġ]/.test(t));
  return tokens
    .map((t, i) => {
      const swap = swaps.get(i);
      const shown = swap ? swap.to : t;
      const text = pieces ? shown.replace(/[▁Ġ]/g, ' ') : `${i > 0 ? ' ' : ''}${shown}`;
      if (!swap) return `<span class="tok">${esc(text)}</span>`;
      const lead = text.startsWith(' ') ? ' ' : '';
      return `${lead}<mark class="swap" title="${esc(`${swap.from} → ${swap.to}, contrastive score ${swap.score.toFixed(3)}`)}">${esc(text.trimStart())}</mark>`;
    })
    .join('');
}

function rankedRecordHtml(r: RankedSample): string {
  const tokens = r.tokens;
  const chosen = tokens ? tokenSpans(tokens, new Map()) : esc(r.chosen);
  const items = r.rejected.map((c) => {
    const swaps = new Map(c.replacements.map((x) => [x.position, x]));
    const fits = tokens !== undefined && c.replacements.every((x) => x.position < tokens.length);
    const body = fits ? tokenSpans(tokens, swaps) : esc(c.text);
    const piece = (t: string) => esc(t.replace(/^[▁Ġ]/, ''));
    const list = c.replacements.map((x) => `${piece(x.from)} → <b>${piece(x.to)}</b> (${x.score.toFixed(3)})`).join(', ');
    const sim = c.similarity === undefined ? '' : `<span class="sim">sim ${c.similarity.toFixed(3)}</span>`;
    return `<li>${sim}<span class="tokens">${body}</span><br><span class="score">replaced: ${list || 'none'}</span></li>`;
  });
  return `<details class="rank"><summary><b>${esc(r.id)}</b> — ${esc(r.question)} <span class="score">(${r.rejected.length} ranked)</span></summary>
<div>y<sub>w</sub> (chosen): <span class="tokens">${chosen}</span></div>
<ol class="rejected">${items.join('\n')}</ol></details>`;
}

async function rankedSection(runDir: string, files: string[], size: number): Promise<{ html: string; count: number }> {
  const blocks: string[] = [];
  let count = 0;
  for (const file of files) {
    if (!fs.existsSync(file)) continue;
    const { records, scanned } = await sampleRanked(file, size);
    count += records.length;
    const name = path.isAbsolute(path.relative(runDir, file)) || path.relative(runDir, file).startsWith('..') ? file : runLabel(runDir, file);
    blocks.push(`<h3>${esc(name)} <span class="score">(${records.length} of the first ${scanned} records, evenly spaced)</span></h3>\n${records.map(rankedRecordHtml).join('\n')}`);
  }
  if (count === 0) return { html: '<p class="empty">no ranked.jsonl in this run</p>', count };
  const intro = `<p>Dispreferred answers y<sub>l</sub> in rank order (most similar to y<sub>w</sub> first, HSCR §3.2). <mark class="swap">Highlighted</mark> tokens replaced a modality-coupled token of y<sub>w</sub> (§3.1); the number is the replacement's contrastive score (lower = less supported by the image).</p>
<p><input id="rank-filter" type="search" placeholder="filter by id, question or token"> <span id="rank-count" class="score"></span></p>`;
  return { html: intro + blocks.join('\n'), count };
}

/**
 * Writes <runDir>/report.html from what the run folder holds (every section is optional) and returns
 * what went in. Never throws for a missing or unreadable part; a folder that does not exist is E_IO.
 */
export async function writeRunReport(runDir: string, opts: RunReportOptions = {}): Promise<RunReport> {
  const root = path.resolve(runDir);
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) throw new HscrError(`${runDir}: no such run folder`, 'E_IO', runDir);
  const files = findRunFiles(root);
  const plots: string[] = [];
  const plot = async (name: string, spec: VegaLiteSpec | undefined): Promise<string> => {
    if (!spec) return '';
    plots.push(name);
    return figure(name, await renderVegaLite(spec));
  };

  const sections: string[] = [];
  // Settings kept at the top of the folder: a whole *config*.json, or the `config` of another file (ablation.json).
  const rootConfigs = files.rootJson.flatMap((f) => {
    const obj = readJsonObject(f);
    if (!obj) return [];
    const name = path.basename(f);
    if (/config/.test(name)) return opts.config === undefined ? [jsonBlock(name, obj)] : [];
    return typeof obj.config === 'object' && obj.config !== null ? [jsonBlock(`${name} → config`, obj.config)] : [];
  });
  const configs = [...rootConfigs, ...files.trainConfigs.map((f) => jsonBlock(`${runLabel(root, f)}`, readJsonObject(f) ?? 'unreadable'))];
  const configHtml = [opts.config !== undefined ? jsonBlock('settings of this run', opts.config, true) : '', ...configs].join('\n');
  sections.push(section('config', 'Config', configHtml || '<p class="empty">no config recorded</p>'));

  const env = await environmentOf(root, opts.environment);
  if (env) sections.push(section('environment', 'Environment', environmentTable(env)));

  const curves = files.metrics.flatMap((f) => readCurves(f, runLabel(root, path.dirname(f)) === '.' ? path.basename(root) : runLabel(root, path.dirname(f))));
  const runs = new Set(curves.map((c) => c.run)).size;
  const curveHtml = curves.length
    ? [curvesSummary(curves), await plot('loss', lossChart(curves)), await plot('reward-margins', levelChart(curves, 'margins')), await plot('reward-accuracies', levelChart(curves, 'accuracies'))].join('\n')
    : '<p class="empty">no metrics.jsonl in this run</p>';
  sections.push(section('training', 'Training curves', curveHtml));

  const evals = readEvaluations(files.results);
  const resultsHtml = evals.length ? [resultsTable(root, evals), await plot('scores', scoreChart(scorePoints(root, evals)))].join('\n') : '<p class="empty">no evaluation results in this run</p>';
  sections.push(section('results', 'Results', resultsHtml));

  const reliance = readReliance(files.reliance);
  if (reliance.length) {
    const r = relianceSection(root, reliance);
    sections.push(section('reliance', 'Image reliance', `${r.html}\n${await plot('image-reliance', relianceChart(r.points))}`));
  } else {
    sections.push(section('reliance', 'Image reliance', '<p class="empty">no image-reliance results in this run</p>'));
  }

  if (files.summaries.length) {
    sections.push(section('tables', 'Printed tables', files.summaries.map((f) => `<h3>${esc(path.basename(f))}</h3><pre>${esc(fs.readFileSync(f, 'utf8'))}</pre>`).join('\n')));
  }

  const rankedFiles = [...new Set([...files.ranked, ...(opts.ranked ?? []).map((f) => path.resolve(f))])];
  const ranked = await rankedSection(root, rankedFiles, opts.sampleSize ?? 24);
  sections.push(section('ranked', 'Ranked lists (sample)', ranked.html));

  const title = opts.title ?? 'hscr run report';
  const nav = sections.map((s) => /<section id="([^"]+)"><h2>([^<]+)<\/h2>/.exec(s)).filter((m): m is RegExpExecArray => m !== null).map((m) => `<a href="#${m[1]}">${m[2]}</a>`).join('');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title><style>${STYLE}</style></head>
<body><h1>${esc(title)}</h1>
<p class="meta">${esc(root)} · written ${esc(new Date().toISOString())} · ${plots.length} plots, ${runs} training runs, ${evals.length} evaluations</p>
<nav>${nav}</nav>
${sections.join('\n')}
<script>${FILTER_SCRIPT}</script>
</body></html>
`;
  const file = path.resolve(opts.file ?? path.join(root, REPORT_FILE));
  writeFileAtomic(file, html);
  return { file, plots, runs, results: evals.length, rankedRecords: ranked.count, bytes: Buffer.byteLength(html) };
}
