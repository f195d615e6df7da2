import t from 'tap';
import { checkDescription, hallucinationRate } from '../lib/eval';
import { describeScene, phantomItems, type PhantomScene } from '../lib/data/phantom';
import type { VqaRecord } from '../lib/data';

const finding = (over: Partial<PhantomScene['findings'][number]>): PhantomScene['findings'][number] => ({ organ: 'lung', side: 'left', size: 'large', shape: 'round', cx: 40, cy: 30, r: 9, phase: 0, ...over });
const chest = (findings: PhantomScene['findings']): PhantomScene => ({ modality: 'ct', plane: 'axial', region: 'chest', organs: ['lung'], findings, size: 64 });

t.test('attributes stated and checked against the scene', async (t) => {
  const scene = chest([finding({})]);
  t.same(checkDescription('axial ct showing a large round lesion in the left lung', scene).filter((a) => a.hallucinated), []);
  const wrong = checkDescription('axial ct showing a small oval lesion in the right lung', scene);
  t.same(wrong.map((a) => [a.kind, a.value, a.hallucinated]), [
    ['count', '1', false],
    ['organ', 'lung', false],
    ['side', 'right', true],
    ['size', 'small', true],
    ['shape', 'oval', true],
  ]);
  t.same(checkDescription('2 small round lesions in both lungs', scene).filter((a) => a.hallucinated).map((a) => a.kind).sort(), ['count', 'side', 'size']);
  const none = checkDescription('axial ct of the chest with no lesion', chest([]));
  t.same(none, [{ kind: 'count', value: '0', hallucinated: false }]);
  const missed = checkDescription('no lesion in the left lung', scene);
  t.same(missed.map((a) => [a.kind, a.hallucinated]), [['count', true], ['organ', false]], 'a denied lesion: only the count and the organs are checked');
  t.same(checkDescription('yes', scene), [], 'nothing stated, nothing counted');
});

t.test('rate over phantom descriptions: 0 for the truth, high for a wrong scene', async (t) => {
  const records: VqaRecord[] = phantomItems('test', 400, 21).map((i) => ({ ...i.record, image: `/x/${i.record.image}` })).filter((r) => r.family === 'description');
  t.ok(records.length > 15);
  const truth = new Map(records.map((r) => [r.id, describeScene(r.scene!)]));
  const exact = hallucinationRate(records, truth);
  t.equal(exact.descriptions, records.length);
  t.equal(exact.hallucinated, 0);
  t.ok(exact.stated >= records.length, 'every description states something');
  const fixed = new Map(records.map((r) => [r.id, 'axial ct showing a large round lesion in the left lung']));
  const blind = hallucinationRate(records, fixed);
  t.ok(blind.rate! > 0.3, `one fixed description for every image: ${(blind.rate! * 100).toFixed(1)}% hallucinated`);
  t.equal(blind.byKind.count.stated, records.length);
  const expectedCountErrors = records.filter((r) => r.scene!.findings.length !== 1).length;
  t.equal(blind.byKind.count.hallucinated, expectedCountErrors);
});
