import t from 'tap';
import { judgeAnswer, judgeRecords, judgeReport, clauses } from '../lib/eval/judge';
import { phantomItems, type PhantomScene } from '../lib/data/phantom';

type Finding = PhantomScene['findings'][number];
const finding = (over: Partial<Finding>): Finding => ({ organ: 'lung', side: 'left', size: 'small', shape: 'round', cx: 40, cy: 30, r: 5, phase: 0, ...over });
const chest = (findings: Finding[], modality: PhantomScene['modality'] = 'ct'): PhantomScene => ({
  modality,
  ...(modality === 'ct' || modality === 'mri' ? { plane: 'axial' as const } : {}),
  region: 'chest',
  organs: ['lung'],
  findings,
  size: 64,
});
/** [kind, value, correct] of every claim, in the judge's order. */
const verdict = (text: string, scene: PhantomScene) => judgeAnswer(text, scene).claims.map((c) => [c.kind, c.value, c.correct]);

// Large lesion in the left lung, small one in the right lung.
const twoLungs = chest([finding({ side: 'left', size: 'large' }), finding({ side: 'right', size: 'small' })]);

t.test('each attribute is bound to its own finding: a swap is caught', async (t) => {
  t.same(verdict('a large lesion in the left lung and a small one in the right lung.', twoLungs), [
    ['size', 'large', true],
    ['location', 'left lung', true],
    ['size', 'small', true],
    ['location', 'right lung', true],
  ]);
  const swapped = verdict('a large lesion in the right lung and a small one in the left lung.', twoLungs);
  t.equal(swapped.filter((c) => c[2] === false).length, 2, 'the swap: one wrong attribute per lesion');
  t.same(swapped.map((c) => c[0]), ['size', 'location', 'size', 'location']);
});

t.test('negation: absence at a place is not a claim of no lesion at all', async (t) => {
  const leftSmall = chest([finding({ side: 'left', size: 'small' })]);
  t.same(verdict('no lesion in the right lung; a small lesion in the left.', leftSmall), [
    ['size', 'small', true],
    ['location', 'left half', true],
    ['absence', 'no lesion: right lung', true],
  ]);
  t.same(verdict('no lesion in the left lung.', leftSmall), [['absence', 'no lesion: left lung', false]], 'a denied lesion where there is one');
  t.same(verdict('there is no lesion.', leftSmall), [['count', '0', false]]);
  t.same(verdict('there is no lesion. the lungs appear normal.', chest([])), [
    ['absence', 'no lesion: lung', true],
    ['count', '0', true],
  ]);
  t.same(verdict('the right lung is clear.', leftSmall), [['absence', 'no lesion: right lung', true]]);
});

t.test('modality, plane and region are checked', async (t) => {
  const scene = chest([]);
  t.same(verdict('this is an axial ct scan of the chest.', scene), [
    ['modality', 'ct', true],
    ['plane', 'axial', true],
    ['region', 'chest', true],
  ]);
  t.same(verdict('this is a coronal mri of the head.', scene), [
    ['modality', 'mri', false],
    ['plane', 'coronal', false],
    ['region', 'head', false],
  ]);
  t.same(verdict('an axial chest x-ray.', chest([], 'x-ray')), [
    ['plane', 'axial', false],
    ['region', 'chest', true],
    ['modality', 'x-ray', true],
  ].sort((a, b) => ['modality', 'plane', 'region'].indexOf(a[0] as string) - ['modality', 'plane', 'region'].indexOf(b[0] as string)), 'an x-ray has no plane');
});

t.test('counts, plural claims and counted sub-locations', async (t) => {
  const three = chest([finding({ side: 'right' }), finding({ side: 'right' }), finding({ side: 'left' })]);
  t.same(verdict('there are three small round lesions, two in the right lung and one in the left lung.', three), [
    ['count', '3', true],
    ['size', 'small', true],
    ['shape', 'round', true],
    ['location', '2 in right lung', true],
    ['location', '1 in left lung', true],
  ]);
  const wrong = verdict('two lesions are seen. they are large, one in the right lung and one in the left lung.', three);
  t.same(wrong, [
    ['count', '2', false],
    ['size', 'large', false],
    ['location', '1 in right lung', false],
    ['location', '1 in left lung', true],
  ]);
  t.same(verdict('one lesion is present. it is large and irregular and lies in the liver.', { ...chest([]), region: 'abdomen', organs: ['liver', 'spleen'] }), [
    ['count', '1', false],
    ['size', 'large', false],
    ['shape', 'irregular', false],
    ['location', 'liver', false],
  ], 'every attribute of a lesion that is not there is a hallucination');
});

t.test('unparsed clauses are counted, remarks are not', async (t) => {
  const v = judgeAnswer('this is a ct scan. the weather is fine. no other abnormality is seen.', chest([]));
  t.same(v.unparsed, ['the weather is fine']);
  t.same(v.claims.map((c) => c.kind), ['modality']);
  t.same(judgeAnswer('', chest([])).claims, []);
  t.same(clauses('a large lesion, and a small one: two in the lung'), [['a', 'large', 'lesion'], ['and', 'a', 'small', 'one'], ['two', 'in', 'the', 'lung']]);
});

t.test('recall covers the scene facts; the generator\u2019s own answers score perfectly', async (t) => {
  const scene = chest([finding({ side: 'left', size: 'large', shape: 'irregular' })]);
  const partial = judgeAnswer('this is a ct scan. there is a large lesion.', scene);
  t.equal(partial.facts, 6, 'modality, region, plane, size, shape, location');
  t.equal(partial.covered, 2);
  const records = [...phantomItems('instruct-train', 600, 5), ...phantomItems('instruct-test', 600, 5)].map((i) => i.record);
  const report = judgeReport(judgeRecords(records, new Map(records.map((r) => [r.id, r.answer]))));
  t.equal(report.overall.precision, 1);
  t.equal(report.overall.recall, 1);
  t.equal(report.overall.unparsedClauses, 0);
  t.same(Object.keys(report.byModality), ['ct', 'mri', 'pathology', 'x-ray']);
  t.ok(report.byPrior['shape broken'].answers > 50, 'test scenes break the shape prior');
  // The answer of another scene: the judge sees the mismatch.
  const shifted = new Map(records.map((r, i) => [r.id, records[(i + 1) % records.length].answer]));
  const wrong = judgeReport(judgeRecords(records, shifted)).overall;
  t.ok(wrong.hallucinationRate! > 0.4, `answers of other scenes: ${(wrong.hallucinationRate! * 100).toFixed(1)}% hallucinated`);
  t.ok(wrong.recall! < 0.5);
});
