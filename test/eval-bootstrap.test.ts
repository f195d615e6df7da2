import t from 'tap';
import { pairedBootstrap, percentile, formatDifference, type ItemRatios } from '../lib/eval/bootstrap';
import { attributeSwaps } from '../lib/eval/swap';
import { judgeAnswer } from '../lib/eval/judge';
import { phantomItems } from '../lib/data/phantom';
import { Rng } from '../lib/data/prng';

const items = (values: number[][]): ItemRatios => values.map((seeds) => seeds.map((v) => ({ num: v, den: 1 })));

t.test('paired bootstrap: a real difference is outside 0, no difference is not', async (t) => {
  const rng = new Rng(3);
  const n = 1000;
  const base = Array.from({ length: n }, () => (rng.chance(0.6) ? 1 : 0));
  // The method fixes 80 of the baseline's wrong answers: +8 points exactly, on the same items.
  let fixed = 0;
  const better = base.map((v) => (v === 0 && fixed < 80 ? (fixed++, 1) : v));
  const d = pairedBootstrap(items(better.map((v) => [v])), items(base.map((v) => [v])), { replicates: 1000 });
  t.equal(d.diff.toFixed(4), '0.0800');
  t.ok(d.low > 0.05 && d.high < 0.11, `[${d.low}, ${d.high}]`);
  const same = pairedBootstrap(items(base.map((v) => [v])), items(base.map((v) => [v])), { replicates: 200 });
  t.same([same.diff, same.low, same.high], [0, 0, 0], 'the same answers: a zero-width interval at 0');
  // Unpaired noise: independent answers of equal accuracy give an interval around 0.
  const other = Array.from({ length: n }, () => (rng.chance(0.6) ? 1 : 0));
  const noise = pairedBootstrap(items(other.map((v) => [v])), items(base.map((v) => [v])), { replicates: 500 });
  t.ok(noise.low < 0 && noise.high > 0, `independent equal methods: [${noise.low.toFixed(3)}, ${noise.high.toFixed(3)}]`);
  t.equal(formatDifference(d).startsWith('+8.00 ['), true);
  t.equal(percentile([1, 2, 3, 4], 0.5), 2.5);
  t.throws(() => pairedBootstrap(items([[1]]), items([[1], [0]])), { code: 'E_ARG' });
});

t.test('ratio statistics with seeds: mean over seeds of Σnum/Σden', async (t) => {
  const m: ItemRatios = [[{ num: 1, den: 2 }, { num: 0, den: 2 }], [{ num: 1, den: 2 }, { num: 2, den: 2 }]];
  const b: ItemRatios = [[{ num: 0, den: 2 }, { num: 0, den: 2 }], [{ num: 0, den: 2 }, { num: 0, den: 2 }]];
  t.equal(pairedBootstrap(m, b, { replicates: 10 }).diff, (2 / 4 + 2 / 4) / 2);
});

t.test('one-attribute swaps are wrong about the scene in one more respect', async (t) => {
  const records = phantomItems('instruct-test', 300, 8).map((i) => i.record);
  let made = 0;
  for (const r of records) {
    const swaps = attributeSwaps(r.answer, r.scene!, new Rng(1), 3);
    made += swaps.length > 0 ? 1 : 0;
    for (const s of swaps) {
      t.not(s.text, r.answer);
      if (judgeAnswer(s.text, r.scene!).claims.filter((c) => !c.correct).length < 1) t.fail(`${r.id}: swap judged correct: ${s.text}`);
    }
  }
  t.equal(made, records.length, 'every instruction answer has a swap');
});
