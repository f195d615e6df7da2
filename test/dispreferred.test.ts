import t from 'tap';
import { MISTRAL_TOKENIZER, needShared, sharedPath } from './helpers/shared';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { buildDispreferred, replacementCount, type ReplacementSchedule } from '../lib/generate/dispreferred';
import { parseRankedRecord, type Candidate, type KernelOutput, type PrefRecord } from '../lib/generate/types';
import { rerankFile } from '../lib/rerank/rerank';

/** A toy vocabulary: token id i reads "t<i>", words joined by spaces, id 0 is silent like a special token. */
const toyText = (id: number) => (id === 0 ? '' : `t${id}`);
const toyDecode = (ids: number[]) => ids.map(toyText).filter((s) => s !== '').join(' ');

function kernel(answerTokenIds: number[], positions: number[], candidates: number[][]): KernelOutput {
  return {
    answerTokenIds,
    positions,
    shifts: positions.map((_, i) => 10 - i),
    candidates,
    scores: candidates.map((ids) => ids.map((_, c) => -5 + c)),
  };
}

t.test('replacement counts of the two schedules', async (t) => {
  const counts = (n: number, k: number, s: ReplacementSchedule) => Array.from({ length: k }, (_, i) => replacementCount(i + 1, n, k, s));
  t.same(counts(10, 6, 'spread'), [2, 4, 5, 7, 9, 10]);
  t.same(counts(10, 6, 'prefix'), [1, 2, 3, 4, 5, 6]);
  t.same(counts(3, 6, 'prefix'), [1, 2, 3, 3, 3, 3]);
  t.same(counts(2, 4, 'spread'), [1, 1, 2, 2]);
  t.same(counts(10, 10, 'spread'), counts(10, 10, 'prefix'));
});

t.test('hand-worked example: first candidates, and the next one when a text repeats (k > n)', async (t) => {
  const out = kernel([1, 2, 3], [2, 0], [[10, 11], [20, 21]]);
  const answers = buildDispreferred(out, toyDecode, toyText, { k: 4, schedule: 'spread' });
  t.same(
    answers.map((a) => a.text),
    ['t1 t2 t10', 't1 t2 t11', 't20 t2 t10', 't21 t2 t10'],
  );
  t.same(answers[2].replacements, [
    { position: 2, from: 't3', to: 't10', score: -5, fromId: 3, toId: 10 },
    { position: 0, from: 't1', to: 't20', score: -5, fromId: 1, toId: 20 },
  ]);
  t.same(answers[3].replacements[1], { position: 0, from: 't1', to: 't21', score: -4, fromId: 1, toId: 21 });
  t.same(out.answerTokenIds, [1, 2, 3], 'y_w untouched');
});

t.test('candidates that change nothing visible are skipped', async (t) => {
  // 3 is the ground-truth token itself; 0 decodes to nothing, which leaves y_w short of a token, not y_w itself.
  const silentFirst = kernel([1, 2, 3], [2], [[3, 0, 12]]);
  t.same(
    buildDispreferred(silentFirst, toyDecode, toyText, { k: 2 }).map((a) => a.text),
    ['t1 t2', 't1 t2 t12'],
  );
  // A token that renders like the ground truth (another id, same text) is not a replacement.
  const lookalike = (id: number) => (id === 33 ? 't3' : toyText(id));
  const sameText = kernel([1, 2, 3], [2], [[33, 14]]);
  t.same(buildDispreferred(sameText, (ids) => ids.map(lookalike).join(' '), lookalike, { k: 1 })[0].replacements[0].toId, 14);
  // A decoder that merges the change away: the whole text is compared, not just the token.
  const mergeAway = (ids: number[]) => toyDecode(ids.map((id) => (id === 15 ? 3 : id)));
  t.same(buildDispreferred(kernel([1, 2, 3], [2], [[15, 16]]), mergeAway, toyText, { k: 1 })[0].text, 't1 t2 t16');
});

t.test('fewer than k when no new text can be made; none without sensitive positions', async (t) => {
  t.equal(buildDispreferred(kernel([1, 2], [0], [[10]]), toyDecode, toyText, { k: 3 }).length, 1);
  t.same(buildDispreferred(kernel([1, 2], [], []), toyDecode, toyText, { k: 3 }), []);
  t.same(buildDispreferred(kernel([1, 2], [0, 1], [[], [2]]), toyDecode, toyText, { k: 2 }), [], 'no usable candidate anywhere');
});

t.test('malformed kernel output or options are E_ARG with the value', async (t) => {
  const good = () => kernel([1, 2, 3], [2, 0], [[10, 11], [20]]);
  const bad: Array<[string, (k: KernelOutput) => void]> = [
    ['shifts', (k) => k.shifts.pop()],
    ['scores', (k) => k.scores[1].push(0)],
    ['positions\\[1\\] is not an index', (k) => (k.positions[1] = 3)],
    ['repeats position 2', (k) => (k.positions[1] = 2)],
    ['ascending', (k) => (k.scores[0] = [1, 0])],
    ['not finite', (k) => (k.scores[0] = [0, NaN])],
    ['candidates\\[0\\] must be token ids', (k) => (k.candidates[0] = [10, -1])],
    ['answerTokenIds', (k) => (k.answerTokenIds = [1, 2.5, 3])],
  ];
  for (const [message, spoil] of bad) {
    const out = good();
    spoil(out);
    t.throws(() => buildDispreferred(out, toyDecode, toyText, { k: 2 }), { code: 'E_ARG', message: new RegExp(message) });
  }
  t.throws(() => buildDispreferred(good(), toyDecode, toyText, { k: 0 }), { code: 'E_ARG', value: 0 });
  t.throws(() => buildDispreferred(good(), toyDecode, toyText, { k: 2, schedule: 'all' as ReplacementSchedule }), { code: 'E_ARG', value: 'all' });
});

// Property checks on real answers through the real Mistral-7B tokenizer, with random kernel outputs.
const tokenizerDir = sharedPath(MISTRAL_TOKENIZER);
const REAL = needShared(MISTRAL_TOKENIZER, 'data/vqa-rad/testset.json', 'data/llava-med-predictions/answer-file.qid.jsonl');
let tokenizer: Tokenizer | undefined;
function realTokenizer(): Tokenizer {
  tokenizer ??= new Tokenizer(
    JSON.parse(readFileSync(path.join(tokenizerDir, 'tokenizer.json'), 'utf8')),
    JSON.parse(readFileSync(path.join(tokenizerDir, 'tokenizer_config.json'), 'utf8')),
  );
  return tokenizer;
}
const decode = (ids: number[]) => realTokenizer().decode(ids, { skip_special_tokens: true });
const tokenText = (id: number) => realTokenizer().id_to_token(id) ?? `<${id}>`;

function answers(): string[] {
  const vqa = JSON.parse(readFileSync(sharedPath('data/vqa-rad/testset.json'), 'utf8')) as Array<{ answer: string }>;
  const predictions = readFileSync(sharedPath('data/llava-med-predictions/answer-file.qid.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { text: string }).text);
  return [...vqa.slice(0, 60).map((r) => r.answer), ...predictions.slice(0, 60)];
}

function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** What the kernel could return: up to n distinct positions, a few plausible ids each, scores ascending. */
function randomKernel(ids: number[], n: number, random: () => number): KernelOutput {
  const order = ids.map((_, i) => i).sort(() => random() - 0.5);
  const positions = order.slice(0, Math.min(n, ids.length));
  const candidates = positions.map(() => Array.from({ length: 1 + Math.floor(random() * 6) }, () => 259 + Math.floor(random() * 31741)));
  const scores = candidates.map((c) => c.map(() => random() * 10 - 5).sort((a, b) => a - b));
  return { answerTokenIds: ids, positions, shifts: positions.map(() => random()), candidates, scores };
}

function applied(out: KernelOutput, candidate: Candidate): number[] {
  const ids = out.answerTokenIds.slice();
  for (const r of candidate.replacements) ids[r.position] = r.toId as number;
  return ids;
}

t.test('properties on real answers: y_w unchanged, ≤ n replacements, distinct, growing', { skip: REAL }, async (t) => {
  const random = mulberry32(42);
  const n = 10;
  let checked = 0;
  const problems: string[] = [];
  for (const answer of answers()) {
    const ids = realTokenizer().encode(answer, { add_special_tokens: false }).ids;
    const out = randomKernel(ids, n, random);
    const before = JSON.stringify(out);
    for (const schedule of ['spread', 'prefix'] as const) {
      const k = 1 + Math.floor(random() * 8);
      const made = buildDispreferred(out, decode, tokenText, { k, schedule });
      const chosen = decode(ids);
      const texts = new Set([chosen, ...made.map((c) => c.text)]);
      if (texts.size !== made.length + 1) problems.push(`duplicate or y_w among answers of "${answer}"`);
      if (made.length > k) problems.push(`more than k for "${answer}"`);
      made.forEach((c, i) => {
        const positions = c.replacements.map((r) => r.position);
        if (positions.length === 0 || positions.length > Math.min(n, out.positions.length)) problems.push(`replacement count ${positions.length}`);
        if (new Set(positions).size !== positions.length || !positions.every((p) => out.positions.includes(p))) problems.push('positions');
        if (decode(applied(out, c)) !== c.text) problems.push(`text does not match its replacements: "${c.text}"`);
        for (const r of c.replacements) {
          const slot = out.positions.indexOf(r.position);
          const at = out.candidates[slot].indexOf(r.toId as number);
          if (r.fromId !== ids[r.position] || r.from !== tokenText(ids[r.position]) || r.to !== tokenText(r.toId as number) || r.score !== out.scores[slot][at]) {
            problems.push(`replacement record ${JSON.stringify(r)}`);
          }
        }
        if (i > 0 && positions.length < made[i - 1].replacements.length) problems.push('wrongness decreased');
      });
      checked += made.length;
    }
    if (JSON.stringify(out) !== before) problems.push('kernel output mutated');
  }
  t.same(problems, []);
  t.ok(checked > 300, `${checked} dispreferred answers checked`);
});

t.test('generated output through re-ranking: every ranked list keeps y_w, ≤ n replacements, descending with gaps', { skip: REAL }, async (t) => {
  const random = mulberry32(7);
  const n = 10;
  const minGap = 0.1;
  const records: PrefRecord[] = answers().map((answer, i) => {
    const ids = realTokenizer().encode(answer, { add_special_tokens: false }).ids;
    const out = randomKernel(ids, n, random);
    const candidates = buildDispreferred(out, decode, tokenText, { k: 6 });
    return { id: `s${i}`, image: `img${i}.jpg`, question: 'q?', chosen: decode(ids), candidates, tokens: ids };
  });
  const dir = t.testdir({ 'prefs.jsonl': records.map((r) => JSON.stringify(r)).join('\n') + '\n' });
  const rankedPath = path.join(dir, 'ranked.jsonl');
  const counts = await rerankFile(path.join(dir, 'prefs.jsonl'), rankedPath, { j: 3, minGap, quiet: true });
  const ranked = readFileSync(rankedPath, 'utf8').trim().split('\n').map((l, i) => parseRankedRecord(JSON.parse(l), { file: rankedPath, line: i + 1, index: i }));
  t.equal(ranked.length, records.length);
  const problems: string[] = [];
  ranked.forEach((r, i) => {
    const source = records[i];
    if (r.id !== source.id || r.chosen !== source.chosen || JSON.stringify(r.tokens) !== JSON.stringify(source.tokens)) problems.push(`${r.id}: y_w or fields changed`);
    if (r.rejected.length > 3) problems.push(`${r.id}: more than j`);
    r.rejected.forEach((c, m) => {
      if (c.text === r.chosen) problems.push(`${r.id}: y_w among rejected`);
      if (c.replacements.length < 1 || c.replacements.length > n) problems.push(`${r.id}: ${c.replacements.length} replacements`);
      if (!source.candidates.some((s) => s.text === c.text)) problems.push(`${r.id}: rejected answer not among candidates`);
      const previous = r.rejected[m - 1];
      if (previous && !(previous.similarity > c.similarity && previous.similarity - c.similarity >= minGap - 1e-9)) {
        problems.push(`${r.id}: similarities ${previous.similarity} then ${c.similarity}`);
      }
    });
  });
  t.same(problems, []);
  const kept = counts.keptHistogram.reduce((sum, samples, m) => sum + samples * m, 0);
  t.equal(kept, ranked.reduce((sum, r) => sum + r.rejected.length, 0), 'the histogram counts what was written');
  t.equal(counts.shortfall, ranked.filter((r) => r.rejected.length < 3).length);
  t.ok(counts.keptHistogram[3] > 0 && counts.keptHistogram.length >= 3, `kept per sample ${JSON.stringify(counts.keptHistogram)}`);
});

t.test('screened replacement tokens are never used; positive shifts only', async (t) => {
  const out = kernel([1, 2, 3], [2, 0], [[10, 11], [20, 21]]);
  const answers = buildDispreferred(out, toyDecode, toyText, { k: 4, schedule: 'spread', usable: (id) => id !== 10 && id !== 20 });
  t.same(answers.map((a) => a.text), ['t1 t2 t11', 't21 t2 t11']);
  t.notOk(answers.some((a) => a.replacements.some((r) => r.toId === 10 || r.toId === 20)));
  const { positiveShifts } = await import('../lib/generate/pipeline');
  const row = { positions: [4, 1, 2], shifts: [0.5, 0, -0.2], candidates: [[7], [8], [9]], scores: [[1], [2], [3]], tokenShifts: [], targetContrastive: [] };
  t.same(positiveShifts(row), { ...row, positions: [4], shifts: [0.5], candidates: [[7]], scores: [[1]] });
});
