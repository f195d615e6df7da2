/// <reference lib="dom" />
/**
 * Issue 14, acceptance 3: the run report. A real run folder (hscr run on the phantom benchmark, tiny model,
 * a few steps) gets report.html; headless Chromium (Debian's, through playwright-core) opens it with every
 * network request refused and checks that each plot drew its data (SVG marks with real geometry), that
 * nothing logged an error, that the ranked-list sample shows highlighted replacements and filters, and
 * keeps a screenshot under .tap/report/ (gitignored; the path is printed).
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { resolvePipelineConfig, runPipeline } from '../lib/pipeline';
import { writeRunReport } from '../lib/report';
import { readMetrics } from '../lib/train/metrics';
import { thin } from '../lib/report/charts';
import { wilsonInterval } from '../lib/report/intervals';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-report-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const CHROMIUM = process.env.HSCR_CHROMIUM ?? '/usr/bin/chromium';
const KEEP = path.resolve(__dirname, '..', '.tap', 'report');

t.test('a folder with nothing in it, or with files it cannot read, still gets a report', async (t) => {
  const empty = path.join(tmp, 'empty');
  fs.mkdirSync(empty);
  const r = await writeRunReport(empty, { environment: false });
  t.same(r.plots, [], 'no plot without data');
  const html = fs.readFileSync(r.file, 'utf8');
  t.match(html, 'no metrics.jsonl in this run');
  t.match(html, 'no evaluation results in this run');
  t.match(html, 'no ranked.jsonl in this run');

  const broken = path.join(tmp, 'broken');
  fs.mkdirSync(path.join(broken, 'eval'), { recursive: true });
  fs.writeFileSync(path.join(broken, 'metrics.jsonl'), '{"step":1,"loss":2.5}\n{"step":2,"loss":2.0}\n{"step": 3, "lo');
  fs.writeFileSync(path.join(broken, 'eval', 'results.json'), '{"variant": "strict", "datasets": 3}');
  fs.writeFileSync(path.join(broken, 'ranked.jsonl'), 'not json\n{"id": 1}\n');
  const b = await writeRunReport(broken, { environment: { node: 'v0' } });
  t.same(b.plots, ['loss'], 'the two whole metrics lines make the loss plot; the torn third is left out');
  t.equal(b.results, 0, 'a results.json of another shape is not a result');
  t.equal(b.rankedRecords, 0);

  await t.rejects(writeRunReport(path.join(tmp, 'nowhere')), { name: 'HscrError', code: 'E_IO' }, 'a run folder that does not exist is E_IO');
});

t.test('95% Wilson intervals and line thinning', async (t) => {
  const [lo, hi] = wilsonInterval(0.5, 100);
  t.ok(Math.abs(lo - 0.4038) < 1e-4 && Math.abs(hi - 0.5962) < 1e-4, `50/100 → [${lo.toFixed(4)}, ${hi.toFixed(4)}] (textbook: [0.4038, 0.5962])`);
  const [lo0, hi0] = wilsonInterval(0, 10);
  t.ok(lo0 === 0 && Math.abs(hi0 - 0.2775) < 1e-4, `0/10 → [0, ${hi0.toFixed(4)}] (textbook: [0, 0.2775])`);
  t.ok(wilsonInterval(0.5, 0).every(Number.isNaN), 'no interval without items');
  const curve = Array.from({ length: 2001 }, (_, i) => ({ run: 'sft', metric: 'loss', step: i + 1, value: 1 / (i + 1) }));
  const thinned = thin(curve);
  t.ok(thinned.length <= 500 && thinned.length >= 250, `2,001 points drawn as ${thinned.length}`);
  t.same([thinned[0].step, thinned[thinned.length - 1].step], [1, 2001], 'first and last step kept');
  t.equal(thin(curve.slice(0, 500)).length, 500, 'a short curve is drawn whole');
});

const noChromium = !fs.existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM} (bash scripts/setup.sh installs Debian's chromium; HSCR_CHROMIUM points elsewhere)`;

t.test('hscr run writes a report that headless Chromium draws without an error', { skip: noChromium }, async (t) => {
  const config = resolvePipelineConfig(
    {
      out: 'run',
      data: { source: 'phantom', train: 32, test: 16, seed: 7, size: 64 },
      sft: { maxSteps: 12, batch: 8 },
      generate: { k: 4, n: 6, batch: 8, limit: 12 },
      train: { maxSteps: 8, batch: 2 },
      eval: { batch: 16, maxNewTokens: 6, imageReliance: true },
    },
    'report-test',
    tmp,
  );
  const run = await runPipeline(config, { quiet: true });
  t.ok(run.report, 'the run wrote its report');
  const file = run.report as string;
  const rankedLines = fs.readFileSync(path.join(config.out, 'prefs', 'ranked.jsonl'), 'utf8').trim().split('\n').length;

  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => (m.type() === 'error' || m.type() === 'warning' ? errors.push(`${m.type()}: ${m.text()}`) : undefined));
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  // Self-contained means nothing is fetched: every request but the page itself fails.
  await page.route('**/*', (route) => (route.request().url() === `file://${file}` ? route.continue() : route.abort()));
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(`file://${file}`, { waitUntil: 'load' });

  const plots = await page.evaluate(() =>
    Array.from(document.querySelectorAll('figure.plot')).map((fig) => {
      const svg = fig.querySelector('svg');
      const marks = Array.from(fig.querySelectorAll('g.role-mark > *')) as SVGGraphicsElement[];
      const drawn = marks.filter((m) => {
        const b = m.getBBox();
        return b.width > 0 || b.height > 0;
      });
      const lines = Array.from(fig.querySelectorAll('g.mark-line > path')).map((p) => (p.getAttribute('d')?.match(/L/g) ?? []).length + 1);
      return { name: fig.getAttribute('data-plot'), svg: svg !== null && svg.getBoundingClientRect().width > 0, marks: marks.length, drawn: drawn.length, symbols: fig.querySelectorAll('g.mark-symbol > path').length, lines };
    }),
  );
  t.same(plots.map((p) => p.name), ['loss', 'reward-margins', 'reward-accuracies', 'scores', 'image-reliance'], 'every plot of a preference run with evaluation and image reliance');
  for (const p of plots) {
    t.ok(p.svg, `${p.name}: an SVG on the page`);
    t.ok(p.drawn > 0 && p.drawn === p.marks, `${p.name}: ${p.drawn} of ${p.marks} marks drawn with a size`);
  }
  const loss = plots[0];
  // What the plots must show, from the metrics files: per run, one line per series with a vertex per step
  // it was measured at (a level is measured at the steps that had pairs of it).
  const stepsWith = (file: string, metric: string, pairs?: string) =>
    readMetrics(file).filter((m) => m[metric] !== undefined && (pairs === undefined || m[pairs] > 0)).length;
  const sftMetrics = path.join(config.out, 'sft', 'metrics.jsonl');
  const mlpoMetrics = path.join(config.out, 'train', 'metrics.jsonl');
  const nonEmpty = (xs: number[]) => xs.filter((x) => x > 0).sort((a, b) => a - b);
  const levels = [stepsWith(mlpoMetrics, 'rewards/margins', 'pairs_explicit'), stepsWith(mlpoMetrics, 'rewards_implicit/margins', 'pairs_implicit')];
  const lossLines = nonEmpty([stepsWith(sftMetrics, 'loss'), stepsWith(mlpoMetrics, 'loss'), stepsWith(mlpoMetrics, 'loss/explicit', 'pairs_explicit'), stepsWith(mlpoMetrics, 'loss/implicit', 'pairs_implicit')]);
  t.same(lossLines.slice(-1), [12], 'the SFT run logged its 12 steps');
  t.same(loss.lines.sort((a, b) => a - b), lossLines, `loss: a line per run and series with a vertex per step (${lossLines.join(', ')})`);
  t.same(plots[1].lines.sort((a, b) => a - b), nonEmpty(levels), `reward margins: a line per level with pairs (explicit ${levels[0]} steps, implicit ${levels[1]})`);
  t.ok(levels[0] >= 1, 'the explicit level had pairs');
  t.equal(plots[3].symbols, 8, 'scores: a dot per evaluation (sft, hscr, each with a blank-image run) and measure (closed, open)');

  t.equal(await page.locator('details.rank').count(), Math.min(24, rankedLines), 'the ranked-list sample holds the records of ranked.jsonl');
  t.ok((await page.locator('details.rank mark.swap').count()) >= 1, 'replaced tokens are highlighted');
  t.match(await page.locator('#results table').innerText(), /eval\/hscr[\s\S]*eval\/sft/, 'the results table has both evaluated models');
  await page.fill('#rank-filter', 'train-00003');
  t.equal(await page.locator('#rank-count').innerText(), `1 of ${Math.min(24, rankedLines)} shown`, 'the filter box narrows the sample');
  await page.fill('#rank-filter', '');
  await page.evaluate(() => document.querySelectorAll('details.rank').forEach((d, i) => ((d as HTMLDetailsElement).open = i < 3)));

  t.same(errors, [], 'no console error or warning');
  t.same(requests, [`file://${file}`], 'no request but the page itself');

  fs.mkdirSync(KEEP, { recursive: true });
  const shot = path.join(KEEP, 'run-report.png');
  await page.screenshot({ path: shot, fullPage: true });
  fs.copyFileSync(file, path.join(KEEP, 'report.html'));
  t.ok(fs.statSync(shot).size > 10_000, 'a screenshot was taken');
  t.comment(`screenshot: ${shot} (report: ${path.join(KEEP, 'report.html')})`);
});
