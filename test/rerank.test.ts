import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { registerRerankCommands } from '../lib/cli/rerank';
import type { PrefRecord } from '../lib/generate/types';
import { rerank, rerankFile, selectSpaced } from '../lib/rerank/rerank';

function record(id: string, chosen: string, texts: string[], extra: Record<string, unknown> = {}): PrefRecord {
  return {
    id,
    image: `${id}.jpg`,
    question: 'Which side is the mass on?',
    chosen,
    candidates: texts.map((text, i) => ({ text, replacements: [{ position: i, from: '▁left', to: '▁right', score: -1 - i, fromId: 1749, toId: 1103 }] })),
    ...extra,
  };
}

/** A similarity read from a table: the candidate text is its own similarity. */
const tableSimilarity = (_chosen: string, text: string) => Number(text);

t.test('selectSpaced: greedy from the most similar, gaps ≥ minGap, stops at j', async (t) => {
  t.same(selectSpaced([0.95, 0.9, 0.8, 0.75, 0.5, 0.3], 3, 0.1), [0, 2, 4]);
  t.same(selectSpaced([0.9, 0.8, 0.7], 3, 0.1), [0, 1, 2], '0.9 − 0.8 is a gap of 0.1 despite float rounding');
  t.same(selectSpaced([0.9, 0.85, 0.81], 3, 0.1), [0]);
  t.same(selectSpaced([0.5, 0.5, 0.4], 3, 0), [0, 2], 'strictly descending even with no gap asked for');
  t.same(selectSpaced([], 3, 0.1), []);
});

t.test('selectSpaced keeps as many as any spaced subset could (brute force on random lists)', async (t) => {
  let seed = 3;
  const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  let mismatches = 0;
  for (let trial = 0; trial < 300; trial++) {
    const sims = Array.from({ length: 1 + Math.floor(random() * 8) }, () => Math.round(random() * 20) / 20).sort((a, b) => b - a);
    const j = 1 + Math.floor(random() * 4);
    let best = 0;
    for (let mask = 1; mask < 1 << sims.length; mask++) {
      const subset = sims.filter((_, i) => mask & (1 << i));
      if (subset.every((s, i) => i === 0 || (subset[i - 1] > s && subset[i - 1] - s >= 0.1 - 1e-9))) best = Math.max(best, subset.length);
    }
    if (selectSpaced(sims, j, 0.1).length !== Math.min(j, best)) mismatches++;
  }
  t.equal(mismatches, 0);
});

t.test('rerank: rank order, spacing, shortfall flag, other fields kept', async (t) => {
  const input = record('a', 'left', ['0.3', '0.95', '0.5', '0.9', '0.8'], { tokens: [1, 2], sensitive: [0] });
  const { record: ranked, shortfall } = rerank(input, tableSimilarity, { j: 3, minGap: 0.1 });
  t.same(ranked.rejected.map((c) => c.similarity), [0.95, 0.8, 0.5]);
  t.same(ranked.rejected[0].replacements, input.candidates[1].replacements);
  t.equal(shortfall, false);
  t.same(ranked.tokens, [1, 2]);
  t.same(ranked.sensitive, [0]);
  t.notOk('candidates' in ranked);
  t.same(input.candidates.length, 5, 'the input record is not changed');
  const short = rerank(record('b', 'left', ['0.9', '0.85']), tableSimilarity, { j: 3, minGap: 0.1 });
  t.same(short.record.rejected.map((c) => c.text), ['0.9']);
  t.equal(short.shortfall, true);
});

t.test('rerank drops a candidate that reads exactly like y_w', async (t) => {
  const sim = (a: string, b: string) => (a === b ? 1 : 0.2);
  const { record: ranked } = rerank(record('c', 'left lung', ['left lung', 'right lung']), sim, { j: 3 });
  t.same(ranked.rejected.map((c) => c.text), ['right lung']);
});

t.test('binary mode: y_w against the single least similar answer', async (t) => {
  const { record: ranked, shortfall } = rerank(record('d', 'x', ['0.7', '0.2', '0.9', '0.2']), tableSimilarity, { mode: 'binary' });
  t.equal(ranked.rejected.length, 1);
  t.equal(ranked.rejected[0].similarity, 0.2);
  t.equal(ranked.rejected[0].replacements[0].position, 3, 'of equal similarities, the later (more replaced) answer');
  t.equal(shortfall, false);
  t.equal(rerank(record('e', 'x', []), tableSimilarity, { mode: 'binary' }).shortfall, true);
});

t.test('rerank: bad options and a broken similarity are E_ARG', async (t) => {
  const r = record('f', 'x', ['0.5']);
  t.throws(() => rerank(r, tableSimilarity, { j: 0 }), { code: 'E_ARG', value: 0 });
  t.throws(() => rerank(r, tableSimilarity, { minGap: -0.1 }), { code: 'E_ARG', value: -0.1 });
  t.throws(() => rerank(r, tableSimilarity, { mode: 'pairs' as 'binary' }), { code: 'E_ARG', value: 'pairs' });
  t.throws(() => rerank(r, () => NaN), { code: 'E_ARG', message: /sample f/ });
});

const prefs = [
  record('p1', 'the left lung', ['the right lung', 'the left liver', 'a right liver mass', 'no']),
  record('p2', 'yes', ['no', 'maybe']),
  record('p3', 'a mass in the left lobe', ['a mass in the right lobe', 'a cyst in the right lobe', 'no cyst in the right kidney']),
  record('p4', 'ct', []),
  record('p5', 'left kidney', ['right kidney', 'left liver', 'right liver']),
];
const prefsText = prefs.map((r) => JSON.stringify(r)).join('\n') + '\n';

t.test('rerankFile: counts, and a killed run resumes to the same file as an uninterrupted one', async (t) => {
  const dir = t.testdir({ 'prefs.jsonl': prefsText });
  const input = path.join(dir, 'prefs.jsonl');
  const whole = path.join(dir, 'whole.jsonl');
  const counts = await rerankFile(input, whole, { quiet: true });
  t.equal(counts.samples, 5);
  t.equal(counts.written, 5);
  t.equal(counts.resumed, 0);
  const expected = readFileSync(whole, 'utf8');
  const rejectedLengths = expected.trim().split('\n').map((l) => JSON.parse(l).rejected.length);
  const histogram: number[] = [];
  for (const m of rejectedLengths) histogram[m] = (histogram[m] ?? 0) + 1;
  t.same(counts.keptHistogram, Array.from(histogram, (v) => v ?? 0));
  t.ok(new Set(rejectedLengths).size >= 3, `varied kept counts ${rejectedLengths}`);
  t.equal(counts.shortfall, rejectedLengths.filter((m) => m < 3).length);

  // A kill in the middle of line 3: two whole lines and the start of the third.
  const lines = expected.split('\n');
  const killed = path.join(dir, 'killed.jsonl');
  writeFileSync(killed, `${lines[0]}\n${lines[1]}\n${lines[2].slice(0, 25)}`);
  // A killed run leaves its fingerprint beside the output, as the uninterrupted one did.
  writeFileSync(`${killed}.run.json`, readFileSync(`${whole}.run.json`));
  const resumed = await rerankFile(input, killed, { quiet: true });
  t.equal(resumed.resumed, 2);
  t.equal(resumed.written, 3);
  t.equal(resumed.truncated?.line, 3);
  t.equal(readFileSync(killed, 'utf8'), expected, 'same bytes: the idf corpus is the whole input on resume too');
  const again = await rerankFile(input, killed, { quiet: true });
  t.same([again.resumed, again.written], [5, 0]);
});

t.test('rerankFile: bad input is E_DATA with file, line and field, before anything is written', async (t) => {
  const bad: Array<[string, (lines: string[]) => void, RegExp]> = [
    ['missing chosen', (l) => (l[1] = l[1].replace('"chosen"', '"answer"')), /prefs\.jsonl, line 2, field "chosen": record 2: missing/],
    ['bad position', (l) => (l[2] = l[2].replace('"position":1', '"position":-1')), /line 3, field "candidates\[1\]\.replacements\[0\]\.position"/],
    ['not JSON', (l) => (l[3] = '{"id": "p4",'), /line 4: not valid JSON/],
    ['repeated id', (l) => (l[4] = l[4].replace('"p5"', '"p1"')), /line 5, field "id": repeats the id/],
    ['not an object', (l) => (l[0] = '[1, 2]'), /line 1: record 1 is not a JSON object/],
  ];
  for (const [name, spoil, message] of bad) {
    const lines = prefsText.split('\n');
    spoil(lines);
    const dir = t.testdir({ 'prefs.jsonl': lines.join('\n'), 'old.jsonl': '{"id":"p1","rejected":[]}\n' });
    const fresh = path.join(dir, 'ranked.jsonl');
    await t.rejects(rerankFile(path.join(dir, 'prefs.jsonl'), fresh, { quiet: true }), { code: 'E_DATA', message }, name);
    t.notOk(existsSync(fresh), `${name}: no output file`);
    await t.rejects(rerankFile(path.join(dir, 'prefs.jsonl'), path.join(dir, 'old.jsonl'), { quiet: true }), { code: 'E_DATA' });
    t.equal(readFileSync(path.join(dir, 'old.jsonl'), 'utf8'), '{"id":"p1","rejected":[]}\n', `${name}: existing output untouched`);
  }
  const dir = t.testdir({ 'prefs.jsonl': prefsText });
  await t.rejects(rerankFile(path.join(dir, 'prefs.jsonl'), path.join(dir, './prefs.jsonl')), { code: 'E_ARG' });
  await t.rejects(rerankFile(path.join(dir, 'missing.jsonl'), path.join(dir, 'out.jsonl')), { code: 'E_IO' });
});

async function cli(args: string[]): Promise<string> {
  const program = new Command('hscr').exitOverride();
  registerRerankCommands(program);
  const printed: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => (printed.push(chunk), true)) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'hscr', 'rerank', ...args]);
  } finally {
    process.stdout.write = write;
  }
  return printed.join('');
}

t.test('hscr rerank: writes ranked.jsonl and prints the counts', async (t) => {
  const dir = t.testdir({ 'prefs.jsonl': prefsText });
  const out = path.join(dir, 'ranked.jsonl');
  const binary = await cli(['--in', path.join(dir, 'prefs.jsonl'), '--out', out, '--mode', 'binary', '--quiet']);
  t.match(binary, /rerank: 5 samples, 0 already in .*ranked\.jsonl, 5 written\nkept per sample \(kept: samples\): 0: 1, 1: 4\nfell short of 1 \(binary\): 1/);
  const ranked = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.same(ranked.map((r) => r.rejected.length), [1, 1, 1, 0, 1]);
  t.equal(ranked[1].rejected[0].text, 'maybe', 'of two equally unlike answers, the later one');
  const same = await cli(['--in', path.join(dir, 'prefs.jsonl'), '--out', out, '--mode', 'binary', '--quiet']);
  t.match(same, /5 already in .*, 0 written/);
  // Other settings would mix two rankings in one file: refused, unless the user starts over.
  const before = readFileSync(out, 'utf8');
  await t.rejects(cli(['--in', path.join(dir, 'prefs.jsonl'), '--out', out, '--quiet', '--j', '2', '--min-gap', '0.05']), { code: 'E_DATA', message: /made by another run \(j: 3 when it was written, 2 now\)/ });
  t.equal(readFileSync(out, 'utf8'), before, 'refused resume leaves the output as it was');
  const again = await cli(['--in', path.join(dir, 'prefs.jsonl'), '--out', out, '--quiet', '--j', '2', '--min-gap', '0.05', '--overwrite']);
  t.match(again, /0 already in .*, 5 written/);
});

t.test('hscr rerank: bad arguments are E_ARG; a missing --model folder is E_IO; nothing is written', async (t) => {
  const dir = t.testdir({ 'prefs.jsonl': prefsText });
  const base = ['--in', path.join(dir, 'prefs.jsonl'), '--out', path.join(dir, 'r.jsonl'), '--quiet'];
  await t.rejects(cli([...base, '--j', '0']), { code: 'E_ARG', value: '0' });
  await t.rejects(cli([...base, '--j', '2.5']), { code: 'E_ARG', value: '2.5' });
  await t.rejects(cli([...base, '--min-gap', 'big']), { code: 'E_ARG', value: 'big' });
  await t.rejects(cli([...base, '--mode', 'pairs']), { code: 'E_ARG', value: 'pairs' });
  await t.rejects(cli([...base, '--model', path.join(dir, 'no-such-model')]), { code: 'E_IO', message: /tokenizer\.json/ });
  t.notOk(existsSync(path.join(dir, 'r.jsonl')));
});
