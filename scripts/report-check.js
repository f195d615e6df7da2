#!/usr/bin/env node
'use strict';
// Headless check of a run report (issue 14, acceptance 3), as test/report.test.ts does for its own run:
//   node scripts/report-check.js <report.html> [--screenshot FILE] [--require-plots a,b,…]
// Opens the file in Debian's Chromium (HSCR_CHROMIUM overrides /usr/bin/chromium) through playwright-core with
// every network request refused, prints each assertion as `ok`/`FAIL`, writes a full-page PNG screenshot
// (default: beside the report, <name>.png), and exits 1 when any assertion failed.
// Asserted: the Config and Environment sections are there and not empty; every figure.plot holds an SVG that
// is laid out and whose marks all have a size (at least one plot; --require-plots names ones that must be
// there); the results section has a table with rows; every table on the page has rows; the ranked-list
// sample, when it has records, highlights replaced tokens; no console error or warning, no page error, and
// no request but the page itself (the report is self-contained).
const fs = require('fs');
const path = require('path');

function parseArgs(argv) {
  const args = { file: undefined, screenshot: undefined, requirePlots: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--screenshot') args.screenshot = argv[++i];
    else if (a === '--require-plots') args.requirePlots = argv[++i].split(',').filter(Boolean);
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else args.file = a;
  }
  if (!args.file) throw new Error('usage: node scripts/report-check.js <report.html> [--screenshot FILE] [--require-plots a,b]');
  args.file = path.resolve(args.file);
  args.screenshot = path.resolve(args.screenshot || args.file.replace(/\.html?$/i, '') + '.png');
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(args.file)) throw new Error(`no report at ${args.file}`);
  const chromiumPath = process.env.HSCR_CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(chromiumPath)) throw new Error(`no Chromium at ${chromiumPath} (apt-get install chromium, or set HSCR_CHROMIUM)`);
  const { chromium } = require('playwright-core');
  let failures = 0;
  const check = (ok, what) => {
    if (!ok) failures++;
    process.stdout.write(`${ok ? 'ok  ' : 'FAIL'}  ${what}\n`);
  };

  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = [];
    const requests = [];
    const url = `file://${args.file}`;
    page.on('console', (m) => (m.type() === 'error' || m.type() === 'warning' ? errors.push(`${m.type()}: ${m.text()}`) : undefined));
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('request', (r) => requests.push(r.url()));
    await page.route('**/*', (route) => (route.request().url() === url ? route.continue() : route.abort()));
    await page.goto(url, { waitUntil: 'load' });

    const facts = await page.evaluate(() => {
      const text = (sel) => (document.querySelector(sel)?.textContent || '').trim();
      const plots = Array.from(document.querySelectorAll('figure.plot')).map((fig) => {
        const svg = fig.querySelector('svg');
        const marks = Array.from(fig.querySelectorAll('g.role-mark > *'));
        const drawn = marks.filter((m) => {
          const b = m.getBBox();
          return b.width > 0 || b.height > 0;
        });
        return { name: fig.getAttribute('data-plot'), laidOut: !!svg && svg.getBoundingClientRect().width > 0, marks: marks.length, drawn: drawn.length };
      });
      const tables = Array.from(document.querySelectorAll('table')).map((tb) => ({
        section: tb.closest('section')?.id || '',
        rows: tb.querySelectorAll('tbody tr').length || Math.max(0, tb.querySelectorAll('tr').length - 1),
      }));
      return {
        title: document.title,
        sections: Array.from(document.querySelectorAll('section')).map((s) => s.id),
        config: text('section#config').length,
        environment: text('section#environment').length,
        plots,
        tables,
        ranked: document.querySelectorAll('details.rank').length,
        swaps: document.querySelectorAll('details.rank mark.swap').length,
      };
    });

    process.stdout.write(`report ${args.file} ("${facts.title}"): sections ${facts.sections.join(', ')}\n`);
    check(facts.config > 'Config'.length, `Config section present with content (${facts.config} characters)`);
    check(facts.environment > 'Environment'.length, `Environment section present with content (${facts.environment} characters)`);
    check(facts.plots.length > 0, `${facts.plots.length} plot(s): ${facts.plots.map((p) => p.name).join(', ')}`);
    for (const p of facts.plots) check(p.laidOut && p.marks > 0 && p.drawn === p.marks, `plot ${p.name}: SVG laid out, ${p.drawn} of ${p.marks} marks drawn with a size`);
    for (const name of args.requirePlots) check(facts.plots.some((p) => p.name === name), `required plot ${name} present`);
    const results = facts.tables.filter((tb) => tb.section === 'results');
    check(results.some((tb) => tb.rows > 0), `results section: ${results.length} table(s), rows ${results.map((tb) => tb.rows).join('/') || 'none'}`);
    check(facts.tables.length > 0 && facts.tables.every((tb) => tb.rows > 0), `${facts.tables.length} table(s) on the page, every one with rows`);
    if (facts.ranked > 0) check(facts.swaps > 0, `ranked-list sample: ${facts.ranked} record(s), ${facts.swaps} highlighted replacement(s)`);
    else process.stdout.write('note  ranked-list sample: no records in this run\n');
    check(errors.length === 0, `no console error/warning or page error${errors.length ? `: ${errors.join(' | ')}` : ''}`);
    const others = requests.filter((r) => r !== url);
    check(others.length === 0, `no request but the page itself${others.length ? `: ${others.slice(0, 5).join(', ')}` : ''}`);

    await page.evaluate(() => document.querySelectorAll('details.rank').forEach((d, i) => (d.open = i < 3)));
    await page.screenshot({ path: args.screenshot, fullPage: true });
    const size = fs.statSync(args.screenshot).size;
    check(size > 10000, `screenshot ${args.screenshot} (${size} bytes)`);
  } finally {
    await browser.close();
  }
  process.stdout.write(failures ? `report-check: ${failures} assertion(s) FAILED\n` : 'report-check: all assertions passed\n');
  process.exitCode = failures ? 1 : 0;
}

main().catch((e) => {
  process.stderr.write(`report-check: ${e.message}\n`);
  process.exitCode = 1;
});
