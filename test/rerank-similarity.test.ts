import t, { type Test } from 'tap';
import { needShared, sharedPath } from './helpers/shared';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { corleyMihalcea, embeddingWordSimilarity, exactWordSimilarity, idfFromCorpus, words, type WordVectors } from '../lib/rerank/similarity';

const corpus = ['The left lung', 'the right lung.', 'Yes'];
// Smoothed idf over N = 3 documents: ln((1+N)/(1+df)) + 1.
const idfDf2 = Math.log(4 / 3) + 1; // "the", "lung"
const idfDf1 = Math.log(4 / 2) + 1; // "left", "right", "yes"
const idfUnseen = Math.log(4) + 1;

/** Equal up to float rounding: the test sums the formula's terms in another order than the code. */
function near(t: Test, actual: number, expected: number, message?: string): void {
  t.ok(Math.abs(actual - expected) < 1e-12, message ?? `${actual} ≈ ${expected}`);
}

function vectors(table: Record<string, number[]>): WordVectors {
  return { vector: (w) => (table[w] ? Float32Array.from(table[w]) : undefined) };
}

t.test('words: lower case, split on anything not a letter or digit', async (t) => {
  t.same(words('Left-sided, 3cm LESION?'), ['left', 'sided', '3cm', 'lesion']);
  t.same(words('Größe: T2/FLAIR'), ['größe', 't2', 'flair']);
  t.same(words(' ?! '), []);
});

t.test('idf: smoothed, unseen words get the largest value', async (t) => {
  const idf = idfFromCorpus(corpus);
  t.equal(idf.idf('the'), idfDf2);
  t.equal(idf.idf('left'), idfDf1);
  t.equal(idf.idf('mass'), idfUnseen);
  t.ok(idfUnseen > idfDf1 && idfDf1 > idfDf2);
  t.throws(() => idfFromCorpus([]), { code: 'E_ARG' });
});

t.test('hand-computed Corley–Mihalcea values with exact word match', async (t) => {
  const sim = corleyMihalcea({ idf: idfFromCorpus(corpus) });
  // the→the, left→nothing, lung→lung, in both directions.
  near(t, sim('the left lung', 'the right lung'), (2 * idfDf2) / (2 * idfDf2 + idfDf1));
  // "left lung" is fully covered; of "the left lung mass" only left and lung are.
  const covered = (idfDf1 + idfDf2) / (idfDf2 + idfDf1 + idfDf2 + idfUnseen);
  near(t, sim('Left lung', 'the left lung mass'), 0.5 * (1 + covered));
  t.equal(sim('yes', 'no'), 0);
  t.equal(sim('Yes.', 'yes'), 1);
  t.equal(sim('', '?'), 1, 'two texts without words are alike');
  t.equal(sim('', 'yes'), 0);
});

t.test('hand-computed values with embedding word similarity', async (t) => {
  const wordSimilarity = embeddingWordSimilarity(
    vectors({ left: [1, 0, 0], right: [3, 4, 0], lung: [0, 0, 1], below: [-1, 0, 0], zero: [0, 0, 0] }),
  );
  t.equal(wordSimilarity('left', 'right'), 3 / 5, 'cosine');
  t.equal(wordSimilarity('left', 'below'), 0, 'negative cosine clamps to 0');
  t.equal(wordSimilarity('left', 'the'), 0, 'a word without a vector only matches itself');
  t.equal(wordSimilarity('the', 'the'), 1);
  t.equal(wordSimilarity('zero', 'left'), 0, 'a zero vector counts as no vector');
  const sim = corleyMihalcea({ idf: idfFromCorpus(corpus), wordSimilarity });
  const cos = wordSimilarity('left', 'right');
  near(t, sim('the left lung', 'the right lung'), (2 * idfDf2 + cos * idfDf1) / (2 * idfDf2 + idfDf1));
  // "left lung" vs "right": left→right 0.6, lung→right 0; right→left 0.6.
  const leftLung = (cos * idfDf1) / (idfDf1 + idfDf2);
  near(t, sim('left lung', 'right'), 0.5 * (leftLung + cos));
  const mismatched = embeddingWordSimilarity(vectors({ a: [1, 0], b: [1, 0, 0] }));
  t.throws(() => mismatched('a', 'b'), { code: 'E_ARG' });
});

t.test('properties on real answers: symmetric, 1 on itself, within [0, 1]', { skip: needShared('data/vqa-rad/testset.json') }, async (t) => {
  const vqa = JSON.parse(readFileSync(sharedPath('data/vqa-rad/testset.json'), 'utf8')) as Array<{ answer: string; question: string }>;
  const texts = vqa.slice(0, 120).flatMap((r) => [r.answer, r.question]);
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const table = new Map<string, Float32Array>();
  const randomVectors: WordVectors = {
    vector: (w) => {
      if (!table.has(w)) table.set(w, Float32Array.from({ length: 16 }, random));
      return table.get(w);
    },
  };
  for (const wordSimilarity of [exactWordSimilarity, embeddingWordSimilarity(randomVectors)]) {
    const sim = corleyMihalcea({ idf: idfFromCorpus(vqa.map((r) => r.answer)), wordSimilarity });
    let failures = 0;
    for (let i = 0; i + 1 < texts.length; i += 2) {
      const [a, b] = [texts[i], texts[i + 1]];
      const ab = sim(a, b);
      if (Math.abs(ab - sim(b, a)) > 1e-12 || ab < 0 || ab > 1 || Math.abs(sim(a, a) - 1) > 1e-12) failures++;
    }
    t.equal(failures, 0);
  }
});
