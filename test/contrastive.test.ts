/**
 * The native contrastive kernel against test/reference/contrastive_ref.py (plain float64 loops): every
 * output, on random logits and on inputs built to tie (equal rows, equal token scores, ties straddling the
 * top-c boundary, a row where every token ties).
 */
import t, { type Test } from 'tap';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { execFileSync } from 'child_process';
import { contrastiveScores, type ContrastiveRowResult, type PlausibilityRule } from '../lib/generate/contrastive';
import { readSafetensors, writeSafetensors } from '../lib/model/safetensors';
import { tensor } from '../lib/tensor';
import { mulberry32 } from '../lib/data/prng';
import { HscrError } from '../lib/errors';

const PYTHON = '/usr/bin/python3';
const REF = path.resolve(__dirname, 'reference', 'contrastive_ref.py');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-contrastive-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Case {
  B: number;
  T: number;
  V: number;
  full: Float32Array;
  drop: Float32Array;
  targets: number[];
  eligible: boolean[];
}

interface Options {
  beta: number;
  n: number;
  alpha: number;
  c: number;
}

function randomCase(seed: number, B: number, T: number, V: number, scale = 3): Case {
  const rand = mulberry32(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const full = Float32Array.from({ length: B * T * V }, () => scale * normal());
  const drop = Float32Array.from({ length: B * T * V }, () => scale * normal());
  const targets = Array.from({ length: B * T }, () => (rand() < 0.15 ? -1 : Math.floor(rand() * V)));
  const eligible = targets.map((y) => y >= 0 && rand() < 0.8);
  return { B, T, V, full, drop, targets, eligible };
}

function inputs(c: Case) {
  return {
    full: tensor(c.full, [c.B, c.T, c.V]),
    drop: tensor(c.drop, [c.B, c.T, c.V]),
    targets: tensor(BigInt64Array.from(c.targets, BigInt), [c.B, c.T]),
    eligible: tensor(Uint8Array.from(c.eligible, Number), [c.B, c.T], 'bool'),
  };
}

interface Reference {
  shift: Float32Array;
  positions: number[];
  candidates: number[];
  scores: Float32Array;
  targetContrastive: Float32Array;
}

/**
 * Each Python run pays ~2 s of torch import, so every case's input is written first and one process runs
 * the reference's own entry point (main(argv)) on all of them.
 */
const pending: { c: Case; o: Options; inFile: string; outFile: string }[] = [];
const results = new Map<string, Reference>();

function referenceCase(name: string, c: Case, o: Options): void {
  pending.push({ c, o, inFile: path.join(tmp, `${name}-in.safetensors`), outFile: path.join(tmp, `${name}-out.safetensors`) });
}

async function runReferences(): Promise<void> {
  for (const { c, o, inFile } of pending) {
    const x = inputs(c);
    await writeSafetensors(
      inFile,
      { logits_full: x.full, logits_drop: x.drop, targets: x.targets, eligible: x.eligible },
      { beta: String(o.beta), n: String(o.n), alpha: String(o.alpha), c: String(o.c) },
    );
  }
  const script = [
    'import sys',
    `sys.path.insert(0, ${JSON.stringify(path.dirname(REF))})`,
    'import contrastive_ref',
    'pairs = sys.argv[1:]',
    'codes = [contrastive_ref.main(pairs[i:i + 2]) for i in range(0, len(pairs), 2)]',
    'sys.exit(max(codes))',
  ].join('\n');
  execFileSync(PYTHON, ['-c', script, ...pending.flatMap((p) => [p.inFile, p.outFile])], { stdio: 'pipe' });
  for (const { outFile } of pending) {
    const out = (await readSafetensors(outFile)).tensors;
    results.set(outFile, {
      shift: out.shift.toArray() as Float32Array,
      positions: Array.from(out.positions.toArray() as BigInt64Array, Number),
      candidates: Array.from(out.candidates.toArray() as BigInt64Array, Number),
      scores: out.candidate_scores.toArray() as Float32Array,
      targetContrastive: out.target_contrastive.toArray() as Float32Array,
    });
  }
}

function reference(name: string): Reference {
  const ref = results.get(path.join(tmp, `${name}-out.safetensors`));
  if (!ref) throw new Error(`no reference output for ${name}`);
  return ref;
}

async function kernel(c: Case, o: Options, plausibility: PlausibilityRule = 'alpha-drop'): Promise<ContrastiveRowResult[]> {
  const x = inputs(c);
  return contrastiveScores(x.full, x.drop, x.targets, x.eligible, { beta: o.beta, n: o.n, alpha: o.alpha, candidates: o.c, plausibility });
}

function close(a: number, b: number, tol = 1e-5): boolean {
  return Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));
}

/** Every output of the kernel equals the reference's (orders exactly, values to fp32 rounding). */
function compare(t: Test, c: Case, o: Options, ref: Reference, got: ContrastiveRowResult[]): void {
  t.equal(got.length, c.B);
  got.forEach((row, b) => {
    const refPositions = ref.positions.slice(b * o.n, (b + 1) * o.n).filter((p) => p >= 0);
    t.same(row.positions, refPositions, `row ${b}: positions`);
    row.positions.forEach((p, s) => {
      t.ok(close(row.shifts[s], ref.shift[b * c.T + p]), `row ${b} slot ${s}: shift`);
      const base = (b * o.n + s) * o.c;
      const refIds = ref.candidates.slice(base, base + o.c).filter((v) => v >= 0);
      t.same(row.candidates[s], refIds, `row ${b} slot ${s}: candidates`);
      t.ok(row.scores[s].every((x, r) => close(x, ref.scores[base + r])), `row ${b} slot ${s}: scores`);
    });
    t.equal(row.tokenShifts.length, c.T);
    t.ok(row.tokenShifts.every((x, i) => close(x, ref.shift[b * c.T + i])), `row ${b}: every token's shift`);
    t.ok(row.targetContrastive.every((x, i) => close(x, ref.targetContrastive[b * c.T + i])), `row ${b}: target contrastive`);
  });
}

/** Row `to` of the flat [B*T] positions gets row `from`'s logits and target. */
function copyPosition(c: Case, from: number, to: number): void {
  c.full.copyWithin(to * c.V, from * c.V, (from + 1) * c.V);
  c.drop.copyWithin(to * c.V, from * c.V, (from + 1) * c.V);
  c.targets[to] = c.targets[from];
  c.eligible[to] = c.eligible[from] = true;
}

/** Row 0: positions 2, 5 and 6 share logits, target and the row's largest shift. Row 1, position 1: tokens
 * 3, 9 and 12 tie on the lowest score, 4 and 15 tie just above them (across the top-4 boundary). */
function tiedCase(): Case {
  const c = randomCase(5, 2, 8, 19);
  c.targets[2] = 7;
  for (let v = 0; v < c.V; v++) {
    c.full[2 * c.V + v] = v === 7 ? 8 : 0;
    c.drop[2 * c.V + v] = v === 7 ? -8 : 0;
  }
  copyPosition(c, 2, 5);
  copyPosition(c, 2, 6);
  const p = c.T + 1;
  c.targets[p] = 0;
  c.eligible[p] = true;
  c.full.fill(5, p * c.V, (p + 1) * c.V);
  c.drop.fill(5, p * c.V, (p + 1) * c.V);
  for (const v of [3, 9, 12]) c.full[p * c.V + v] = 1;
  for (const v of [4, 15]) c.full[p * c.V + v] = 2;
  return c;
}

function allTiedCase(): Case {
  const c = randomCase(6, 1, 3, 29);
  c.full.fill(1.5);
  c.drop.fill(-0.5);
  c.targets = [3, 0, 28];
  c.eligible = [true, true, true];
  return c;
}

const CASES: Record<string, { c: Case; o: Options }> = {
  random1: { c: randomCase(1, 3, 7, 23), o: { beta: 0.9, n: 4, alpha: 0.1, c: 5 } },
  // n beyond the eligible positions: padded in the reference, shorter here.
  random2: { c: randomCase(2, 3, 7, 23), o: { beta: 0.5, n: 10, alpha: 0.3, c: 3 } },
  // α = 0: every token but the target is plausible; c > V.
  random3: { c: randomCase(3, 3, 7, 23), o: { beta: 0.9, n: 2, alpha: 0, c: 40 } },
  alphaOne: { c: randomCase(4, 2, 6, 17), o: { beta: 0.9, n: 6, alpha: 1, c: 4 } },
  tied: { c: tiedCase(), o: { beta: 0.9, n: 3, alpha: 0.05, c: 4 } },
  allTied: { c: allTiedCase(), o: { beta: 0.9, n: 3, alpha: 0.1, c: 5 } },
};
for (const [name, { c, o }] of Object.entries(CASES)) referenceCase(name, c, o);
t.before(runReferences);

async function checkCase(t: Test, name: string): Promise<ContrastiveRowResult[]> {
  const { c, o } = CASES[name];
  const got = await kernel(c, o);
  compare(t, c, o, reference(name), got);
  return got;
}

t.test('random logits: every output equals the reference', async (t) => {
  for (const name of ['random1', 'random2', 'random3']) await checkCase(t, name);
});

t.test('α = 1 keeps only the dropped view’s argmax, and nothing where that is the target', async (t) => {
  const got = await checkCase(t, 'alphaOne');
  const sizes = got.flatMap((r) => r.candidates.map((x) => x.length));
  t.ok(sizes.every((s) => s <= 1) && sizes.includes(1) && sizes.includes(0), 'at most one candidate; some have one, some none');
});

t.test('deliberate ties: equal shifts go to the lower position, equal scores to the lower token id', async (t) => {
  const got = await checkCase(t, 'tied');
  t.same(got[0].positions, [2, 5, 6], 'tied positions in order');
  t.equal(got[0].shifts[0], got[0].shifts[1]);
  const slot = got[1].positions.indexOf(1);
  t.ok(slot >= 0, 'the prepared position is sensitive');
  t.same(got[1].candidates[slot], [3, 9, 12, 4], 'tied tokens in id order, the boundary tie broken to the lower id');
});

t.test('a row where every token ties: the c lowest ids other than the target', async (t) => {
  const got = await checkCase(t, 'allTied');
  t.same(got[0].positions, [0, 1, 2], 'equal shifts: position order');
  t.same(got[0].candidates, [[0, 1, 2, 4, 5], [1, 2, 3, 4, 5], [0, 1, 2, 3, 4]]);
});

/** float64 transcription of the candidate rule for the plausibility variants the reference does not have. */
function directCandidates(c: Case, flat: number, o: Options, rule: PlausibilityRule): number[] {
  const full = Array.from(c.full.subarray(flat * c.V, (flat + 1) * c.V));
  const drop = Array.from(c.drop.subarray(flat * c.V, (flat + 1) * c.V));
  const view = rule === 'alpha-full' ? full : drop;
  const max = Math.max(...view);
  const plausible = (v: number) => rule === 'none' || Math.exp(view[v] - max) >= o.alpha;
  return full
    .map((_, v) => ({ v, s: (1 + o.beta) * full[v] - o.beta * drop[v] }))
    .filter(({ v }) => v !== c.targets[flat] && plausible(v))
    .sort((a, b) => a.s - b.s || a.v - b.v)
    .slice(0, o.c)
    .map(({ v }) => v);
}

t.test('plausibility rules alpha-full and none follow their definitions', async (t) => {
  const c = randomCase(7, 2, 6, 31);
  const o = { beta: 0.9, n: 4, alpha: 0.2, c: 6 };
  const byRule = new Map<PlausibilityRule, ContrastiveRowResult[]>();
  for (const rule of ['alpha-drop', 'alpha-full', 'none'] as const) {
    const got = await kernel(c, o, rule);
    byRule.set(rule, got);
    got.forEach((row, b) => row.positions.forEach((p, s) => t.same(row.candidates[s], directCandidates(c, b * c.T + p, o, rule), `${rule} row ${b} slot ${s}`)));
  }
  t.same(byRule.get('none')![0].positions, byRule.get('alpha-drop')![0].positions, 'the rule does not move the positions');
  t.notSame(byRule.get('alpha-full')!.map((r) => r.candidates), byRule.get('alpha-drop')!.map((r) => r.candidates), 'the rules differ on these logits');
});

t.test('bad input is a typed error naming the value', async (t) => {
  const c = randomCase(8, 1, 4, 11);
  const x = inputs(c);
  const o = { beta: 0.9, n: 2, alpha: 0.1, candidates: 3 };
  const noTarget = { ...c, targets: [-1, 2, 3, 4], eligible: [true, true, true, true] };
  const y = inputs(noTarget);
  await t.rejects(contrastiveScores(y.full, y.drop, y.targets, y.eligible, o), { code: 'E_ARG', value: '-1' });
  const outside = inputs({ ...c, targets: [1, 11, 2, 3], eligible: [true, true, true, true] });
  await t.rejects(contrastiveScores(outside.full, outside.drop, outside.targets, outside.eligible, o), { code: 'E_ARG', value: '11' });
  const short = tensor(new Float32Array(4 * 10), [1, 4, 10]);
  await t.rejects(contrastiveScores(x.full, short, x.targets, x.eligible, o), { code: 'E_SHAPE' });
  await t.rejects(contrastiveScores(x.full, x.drop, x.targets, x.eligible, { ...o, n: 0 }), { code: 'E_ARG' });
  await t.rejects(contrastiveScores(x.full, x.drop, x.targets, x.eligible, { ...o, alpha: 1.5 }), { code: 'E_ARG' });
  await t.rejects(contrastiveScores(x.full, x.drop, x.targets, x.eligible, { ...o, plausibility: 'vcd' as PlausibilityRule }), HscrError);
  await t.rejects(contrastiveScores(x.full, x.drop, x.eligible, x.eligible, o), { code: 'E_DTYPE' });
});
