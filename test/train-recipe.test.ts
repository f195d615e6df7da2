import t from 'tap';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { phantomItems } from '../lib/data/phantom';
import { Rng } from '../lib/data/prng';
import { attributeSwaps } from '../lib/eval/swap';
import { formatRecipe, recipeSummary } from '../lib/train/recipe';

t.test('recipe summary: per-seed numbers, intervals vs SFT, the control verdict', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'hscr-recipe-'));
  const vqa = phantomItems('test', 300, 2).map((i) => i.record);
  const instruct = phantomItems('instruct-test', 120, 2).map((i) => i.record);
  const write = (seed: number, key: string, answer: (r: (typeof vqa)[number], i: number) => string) => {
    const dir = path.join(root, `seed-${seed}`, 'eval', key);
    mkdirSync(dir, { recursive: true });
    const lines = [...vqa, ...instruct].map((r, i) => JSON.stringify({ id: r.id, prediction: answer(r, i) }));
    writeFileSync(path.join(dir, 'predictions.jsonl'), lines.join('\n') + '\n');
  };
  const swapped = (r: (typeof vqa)[number]) => attributeSwaps(r.answer, r.scene!, new Rng(5), 1)[0].text;
  for (const seed of [1, 2]) {
    // SFT: right on every other VQA item, every instruction answer one attribute off.
    write(seed, 'sft', (r, i) => (r.family === 'instruction' ? swapped(r) : i % 2 === 0 ? r.answer : 'wrong'));
    // Oracle: the same VQA answers, the instruction answers right.
    write(seed, 'oracle', (r, i) => (r.family === 'instruction' ? r.answer : i % 2 === 0 ? r.answer : 'wrong'));
  }
  const variants = [
    { key: 'sft', label: 'SFT' },
    { key: 'oracle', label: 'oracle DPO (control)' },
    { key: 'hscr', label: 'HSCR' },
  ];
  const s = await recipeSummary(root, { eval: { variant: 'strict', bootstrap: 300 } }, variants, [1, 2], vqa, instruct);
  t.equal(s.items.instruction, 120);
  const [sft, oracle, hscr] = s.rows;
  t.equal(oracle.metrics.hallucination!.mean, 0);
  t.ok(sft.metrics.hallucination!.mean! > 0.1, 'one attribute off in every SFT answer');
  t.same(sft.metrics.closed!.perSeed.length, 2);
  t.equal(oracle.metrics.closed!.vsSft!.diff, 0, 'identical VQA answers: no difference');
  t.ok(oracle.metrics.hallucination!.vsSft!.high < 0);
  t.equal(s.control.worked, true);
  t.same(s.outsideIntervals.sort(), ['oracle:hallucination', 'oracle:precision', 'oracle:recall'].sort());
  t.same(hscr.metrics, {}, 'a method without runs has no numbers');
  const text = formatRecipe(s);
  t.match(text, /Positive control .*WORKED/);
  t.match(text, /\| oracle DPO \(control\) \| .* \| \+0\.00 \[\+0\.00, \+0\.00\] \|/);
});
