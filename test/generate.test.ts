/**
 * `hscr generate` end to end on a tiny random model and phantom records, then `hscr rerank` on its output
 * (acceptance 3): y_w unchanged, at most n replaced tokens per y_l, replacements only at sensitive
 * positions, resumable, and ranked lists with strictly descending similarities spaced by min-gap.
 */
import t from 'tap';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { main } from '../lib/cli/index';
import { initModel } from '../lib/cli/model';
import { generatePhantom } from '../lib/data/phantom';
import type { PrefRecord, RankedRecord } from '../lib/generate/types';
import { HscrError } from '../lib/errors';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-generate-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const modelDir = path.join(tmp, 'model');
const dataDir = path.join(tmp, 'phantom');
const data = path.join(dataDir, 'train.jsonl');
const N = 5;
const K = 4;

interface Sensitive {
  position: number;
  token: string;
  shift: number;
}
type Pref = PrefRecord & { tokens: string[]; sensitive: Sensitive[] };

/** Runs the CLI in this process and returns what it printed on stdout. */
async function hscr(...args: string[]): Promise<string> {
  const write = process.stdout.write.bind(process.stdout);
  let printed = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    printed += chunk.toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    await main(['node', 'hscr', ...args]);
  } finally {
    process.stdout.write = write;
  }
  return printed;
}

function lines<T>(file: string): T[] {
  return fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as T);
}

const answers = new Map<string, string>();

t.before(async () => {
  await initModel({ preset: 'tiny', out: modelDir, seed: 1 });
  const phantom = await generatePhantom({ outDir: dataDir, train: 8, test: 0, seed: 1 });
  for (const r of phantom.train) answers.set(r.id, r.answer);
});

const common = ['--model', modelDir, '--data', data, '--n', String(N), '--k', String(K), '--seed', '7', '--quiet'];

t.test('generate: y_w unchanged, ≤ n replacements per y_l, all at sensitive positions; resume skips written ids', async (t) => {
  const out = path.join(tmp, 'prefs.jsonl');
  const first = await hscr('generate', ...common, '--out', out, '--limit', '3', '--batch', '2');
  t.match(first, /8 records, 3 within the limit, 0 already in .*, 3 written/);
  const second = await hscr('generate', ...common, '--out', out, '--batch', '3');
  t.match(second, /8 within the limit, 3 already in .*, 5 written/);
  const third = await hscr('generate', ...common, '--out', out);
  t.match(third, /8 already in .*, 0 written/);

  const prefs = lines<Pref>(out);
  t.same(prefs.map((p) => p.id).sort(), [...answers.keys()].sort(), 'every record once');
  let answersMade = 0;
  for (const p of prefs) {
    t.equal(p.chosen, answers.get(p.id), `${p.id}: y_w unchanged`);
    const sensitive = new Set(p.sensitive.map((s) => s.position));
    t.ok(p.sensitive.length <= N && p.sensitive.every((s) => s.shift > 0), `${p.id}: at most n sensitive positions, each with a positive shift`);
    t.ok(p.sensitive.every((s) => /[\p{L}\p{N}]/u.test(s.token) && s.token === p.tokens[s.position]), `${p.id}: sensitive tokens are words of y_w`);
    t.ok(p.candidates.length <= K, `${p.id}: at most k answers`);
    t.equal(new Set([p.chosen, ...p.candidates.map((c) => c.text)]).size, p.candidates.length + 1, `${p.id}: answers differ from y_w and each other`);
    for (const c of p.candidates) {
      t.ok(c.replacements.length >= 1 && c.replacements.length <= N, `${p.id}: 1..n replacements`);
      t.ok(c.replacements.every((r) => sensitive.has(r.position) && r.from === p.tokens[r.position] && r.toId !== r.fromId), `${p.id}: replacements at sensitive positions`);
    }
    for (let i = 1; i < p.candidates.length; i++) {
      t.ok(p.candidates[i].replacements.length >= p.candidates[i - 1].replacements.length, `${p.id}: growing wrongness`);
    }
    answersMade += p.candidates.length;
  }
  t.ok(answersMade >= prefs.length, 'dispreferred answers were made');
  t.ok(prefs.some((p) => p.candidates.length === K && p.sensitive.length === N), 'a long answer gets k answers over n positions');

  // One uninterrupted run with another batching: the same answers (drop seeds follow the ids, not the batches).
  const whole = path.join(tmp, 'prefs-whole.jsonl');
  await hscr('generate', ...common, '--out', whole, '--batch', '8');
  const key = (p: Pref) => JSON.stringify([p.id, p.sensitive.map((s) => s.position), p.candidates.map((c) => c.text)]);
  t.same(lines<Pref>(whole).map(key).sort(), prefs.map(key).sort(), 'resumed = uninterrupted');

  // Binary mode keeps only the most replaced answer.
  const binary = path.join(tmp, 'prefs-binary.jsonl');
  await hscr('generate', ...common, '--out', binary, '--mode', 'binary');
  const ranked = new Map(prefs.map((p) => [p.id, p]));
  // (Scores differ in the last bits between batchings, so the answers are compared by text and tokens.)
  const made = (p: Pref) => p.candidates.map((c) => [c.text, c.replacements.map((r) => [r.position, r.toId])]);
  for (const p of lines<Pref>(binary)) t.same(made(p), made(ranked.get(p.id)!).slice(-1), `${p.id}: binary = last ranked answer`);
});

t.test('rerank on generated output: strictly descending similarities with gaps ≥ min-gap', async (t) => {
  const prefs = path.join(tmp, 'prefs.jsonl');
  let longest = 0;
  for (const [name, extra] of [['exact', []], ['embeddings', ['--model', modelDir]]] as const) {
    for (const minGap of [0.1, 0.02]) {
      const out = path.join(tmp, `ranked-${name}-${minGap}.jsonl`);
      await hscr('rerank', '--in', prefs, '--out', out, '--min-gap', String(minGap), '--quiet', ...extra);
      const ranked = lines<RankedRecord>(out);
      t.equal(ranked.length, answers.size);
      for (const r of ranked) {
        t.equal(r.chosen, answers.get(r.id), `${name} ${r.id}: y_w unchanged`);
        t.ok(r.rejected.length <= 3, `${name} ${r.id}: at most j`);
        t.ok(r.rejected.every((c) => c.replacements.length <= N && c.text !== r.chosen), `${name} ${r.id}: ≤ n replacements, none equal to y_w`);
        const s = r.rejected.map((c) => c.similarity);
        t.ok(s.every((x, i) => i === 0 || (x < s[i - 1] && s[i - 1] - x >= minGap - 1e-9)), `${name} ${r.id}: descending, gaps ≥ ${minGap}: ${s}`);
        longest = Math.max(longest, r.rejected.length);
      }
    }
  }
  t.ok(longest >= 2, 'some lists rank several answers');
});

t.test('bad input: typed errors, and the output already written is untouched', async (t) => {
  const out = path.join(tmp, 'prefs.jsonl');
  const before = fs.readFileSync(out);
  const bad = path.join(dataDir, 'bad.jsonl');
  fs.writeFileSync(bad, fs.readFileSync(data, 'utf8').replace(/"question":"[^"]*"/, '"question":[]'));
  await t.rejects(hscr('generate', ...common, '--data', bad, '--out', out), { code: 'E_DATA', message: /bad\.jsonl.*line 1.*question/ });
  await t.rejects(hscr('generate', ...common, '--out', out, '--k', '0'), HscrError);
  await t.rejects(hscr('generate', ...common, '--out', out, '--perturb', 'none'), { code: 'E_ARG' });
  await t.rejects(hscr('generate', ...common, '--out', data), { code: 'E_ARG' });
  t.same(fs.readFileSync(out), before, 'prefs.jsonl unchanged');
});
