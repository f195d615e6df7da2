import t from 'tap';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { generatePhantom, phantomItems, phantomCorpus, scenePriors, tokenCount, BREAK_SHARE, TRAIN_PRIOR_SHARE } from '../lib/data/phantom';
import { judgeAnswer } from '../lib/eval/judge';
import { answerText } from '../lib/data/phantom/instruct';
import { Rng } from '../lib/data/prng';

t.test('instruction answers: 20–60 tokens, several attributes, single- and multi-turn, all in the corpus', async (t) => {
  const items = phantomItems('instruct-train', 2000, 11).map((i) => i.record);
  const lengths = items.map((r) => tokenCount(r.answer));
  t.ok(Math.min(...lengths) >= 20 && Math.max(...lengths) <= 60, `tokens ${Math.min(...lengths)}–${Math.max(...lengths)}`);
  const stated = items.map((r) => new Set(judgeAnswer(r.answer, r.scene!).claims.map((c) => c.kind)).size);
  t.ok(Math.min(...stated) >= 3, `every answer states ≥ 3 kinds of attribute (min ${Math.min(...stated)})`);
  const multi = items.filter((r) => r.question.split('?').length > 2 || /\?.+\./.test(r.question)).length / items.length;
  t.ok(multi > 0.2 && multi < 0.4, `multi-turn share ${multi.toFixed(3)}`);
  t.ok(new Set(items.map((r) => r.answer.split('.')[0].split(' ').slice(0, 3).join(' '))).size > 15, 'several phrasings and orders');
  t.ok(items.every((r) => r.family === 'instruction' && r.dataset === 'phantom-instruct' && r.answer_type === 'open'));
  const words = new Set(phantomCorpus().words);
  const missing = new Set<string>();
  for (const r of items) for (const w of `${r.question} ${r.answer}`.replace(/([?.,:])/g, ' $1 ').split(/\s+/).filter(Boolean)) if (!words.has(w) && w !== ':' && w !== ',') missing.add(w);
  t.same([...missing], []);
});

t.test('language priors: held in most training scenes, broken in a known share of test scenes', async (t) => {
  const share = (split: 'instruct-train' | 'instruct-test', prior: 'shape' | 'side') => {
    const states = phantomItems(split, 3000, 4).map((i) => scenePriors(i.record.scene!)[prior]).filter((s) => s !== undefined);
    return { n: states.length, held: states.filter((s) => s === 'held').length / states.length };
  };
  for (const prior of ['shape', 'side'] as const) {
    const train = share('instruct-train', prior);
    const test = share('instruct-test', prior);
    const se = (p: number, n: number) => 4 * Math.sqrt((p * (1 - p)) / n);
    t.ok(Math.abs(train.held - TRAIN_PRIOR_SHARE) < se(TRAIN_PRIOR_SHARE, train.n), `${prior} prior holds in ${(train.held * 100).toFixed(1)}% of ${train.n} training scenes`);
    t.ok(Math.abs(1 - test.held - BREAK_SHARE) < se(BREAK_SHARE, test.n), `${prior} prior broken in ${((1 - test.held) * 100).toFixed(1)}% of ${test.n} test scenes`);
  }
});

t.test('splits are written only when asked for, deterministically', async (t) => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'hscr-instruct-'));
  const a = await generatePhantom({ outDir: path.join(tmp, 'a'), train: 4, test: 4, val: 3, instruct: { train: 5, val: 2, test: 3 }, seed: 3, size: 32 });
  const b = await generatePhantom({ outDir: path.join(tmp, 'b'), train: 4, test: 4, val: 3, instruct: { train: 5, val: 2, test: 3 }, seed: 3, size: 32 });
  t.same(a.files, b.files);
  t.equal(a.files.length, 7 + 21);
  for (const f of a.files) t.ok(readFileSync(path.join(tmp, 'a', f)).equals(readFileSync(path.join(tmp, 'b', f))), f);
  t.equal(a.instruct.test.length, 3);
  t.equal(a.val.length, 3);
  t.notOk(a.instruct.train.some((r) => a.instruct.test.some((s) => s.id === r.id)), 'ids differ across splits');
  const c = await generatePhantom({ outDir: path.join(tmp, 'c'), train: 2, test: 2, seed: 3, size: 32 });
  t.notOk(existsSync(path.join(tmp, 'c', 'val.jsonl')));
  t.equal(c.files.length, 3 + 4);
});

t.test("the oracle control's absence swap: a scan with lesions described as lesion-free is judged a hallucination", async (t) => {
  const items = phantomItems('instruct-train', 200, 5).map((i) => i.record).filter((r) => r.scene!.findings.length > 0).slice(0, 40);
  for (const r of items) {
    const denial = answerText({ ...r.scene!, findings: [] }, new Rng(1), true);
    const v = judgeAnswer(denial, r.scene!);
    // The judge reads a denial as a wrong absence at a named location, or as a wrong count of 0.
    t.ok(v.claims.some((c) => (c.kind === 'absence' || (c.kind === 'count' && c.value === '0')) && !c.correct), `"${denial}" denies the lesions of ${r.id}`);
    t.ok(v.claims.filter((c) => c.kind === 'modality').every((c) => c.correct), 'and keeps the scan kind right');
  }
});
