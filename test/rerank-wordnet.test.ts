import t from 'tap';
import { openWordNet, wordnetWordSimilarity } from '../lib/rerank/wordnet';
import { corleyMihalcea, idfFromCorpus } from '../lib/rerank/similarity';

const wn = openWordNet();
t.teardown(() => wn.close());

t.test('Wu–Palmer over WordNet 3.1 hypernyms', async (t) => {
  // dog.n.01 / cat.n.01: LCS carnivore.n.01 (depth 12); NLTK's wup_similarity gives 0.857 as well.
  t.equal(wn.wuPalmer('dog', 'cat')!.toFixed(3), '0.857');
  t.equal(wn.wuPalmer('lungs', 'lung'), 1, 'morphological reduction');
  const lr = wn.wuPalmer('left', 'right')!;
  t.ok(lr > 0.5 && lr < 1, `left/right ${lr.toFixed(3)}: near, not equal`);
  t.ok(wn.wuPalmer('liver', 'spleen')! > wn.wuPalmer('liver', 'lesion')!, 'two organs are nearer than an organ and a lesion');
  t.equal(wn.wuPalmer('qzxv', 'lung'), undefined, 'a word WordNet lacks');
});

t.test('text similarity: semantic near-misses score between exact and unrelated', async (t) => {
  const texts = ['there is a large lesion in the right lung.', 'there is a large lesion in the left lung.', 'there is a large lesion in the right qzxv.'];
  const idf = idfFromCorpus(texts);
  const exact = corleyMihalcea({ idf });
  const semantic = corleyMihalcea({ idf, wordSimilarity: wordnetWordSimilarity(wn) });
  t.ok(semantic(texts[0], texts[1]) > exact(texts[0], texts[1]), 'left ~ right counts');
  t.ok(semantic(texts[0], texts[2]) < semantic(texts[0], texts[1]), 'a word WordNet lacks is nearer to nothing');
  t.equal(semantic(texts[0], texts[0]), 1);
  const fallback = wordnetWordSimilarity(wn, () => 0.25);
  t.equal(fallback('qzxv', 'lung'), 0.25, 'the fallback answers for words WordNet lacks');
});

t.test('gap on list-rescaled similarities keeps spaced answers of long texts', async (t) => {
  const { rerank } = await import('../lib/rerank/rerank');
  const record = { id: 'a', image: 'x.png', question: 'q', chosen: 'y', candidates: [0.99, 0.985, 0.97, 0.96, 0.95].map((s) => ({ text: String(s), replacements: [] })) };
  const sim = (_a: string, b: string) => Number(b);
  t.same(rerank(record, sim, { j: 3, minGap: 0.1 }).record.rejected.map((c) => c.text), ['0.99'], 'raw: all within 0.05, one kept');
  t.same(rerank(record, sim, { j: 3, minGap: 0.1, gapScale: 'list' }).record.rejected.map((c) => c.text), ['0.99', '0.985', '0.97'], 'rescaled: 1, 0.875, 0.5, … are 0.1 apart');
  t.throws(() => rerank(record, sim, { gapScale: 'log' as never }), { code: 'E_ARG' });
});
