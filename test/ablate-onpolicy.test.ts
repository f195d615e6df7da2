import t from 'tap';
import { onPolicyPair, resolveAblationConfig, ABLATION_DEFAULTS, controlLimit, controlLr } from '../lib/train/ablate';
import type { PhantomScene } from '../lib/data/phantom';
import { judgeAnswer } from '../lib/eval/judge';
import { correctAnswer } from '../lib/eval/swap';
import type { VqaRecord } from '../lib/data/types';

type Finding = PhantomScene['findings'][number];
const finding = (over: Partial<Finding>): Finding => ({ organ: 'lung', side: 'left', size: 'small', shape: 'round', cx: 40, cy: 30, r: 5, phase: 0, ...over });
// Axial chest CT: a large oval lesion in the left lung.
const scene: PhantomScene = { modality: 'ct', plane: 'axial', region: 'chest', organs: ['lung'], findings: [finding({ size: 'large', shape: 'oval' })], size: 64 };
const reference = 'the image is an axial ct scan of the chest. there is a large oval lesion in the left lung.';
const record: VqaRecord = { id: 'instruct-train-00007', image: '/data/instruct-train-00007.png', question: 'describe the image.', answer: reference, answer_type: 'open', scene };

t.test('a wrong answer gives one pair: the reference chosen, the model answer rejected', async (t) => {
  const wrong = 'this image shows an axial ct scan of the chest. there is a small round lesion in the right lung.';
  const pair = onPolicyPair(record, `${wrong}  `);
  t.ok(pair, 'a pair');
  t.equal(pair!.chosen, reference);
  t.equal(pair!.rejected.length, 1);
  t.equal(pair!.rejected[0].text, wrong, 'the answer as the model wrote it (trimmed)');
  t.same(pair!.rejected[0].wrong, ['size: small', 'shape: round', 'location: right lung'], 'exactly the three wrong attributes');
  t.same([pair!.id, pair!.image, pair!.question, pair!.answer_type], [record.id, record.image, record.question, 'open']);
});

t.test('one wrong attribute among right ones is enough; a denied lesion counts', async (t) => {
  t.same(onPolicyPair(record, 'an axial mri of the chest showing a large oval lesion in the left lung.')?.rejected[0].wrong, ['modality: mri']);
  t.same(onPolicyPair(record, 'an axial ct of the chest. there is no lesion.')?.rejected[0].wrong, ['count: 0']);
});

t.test('a right answer, the reference itself, an empty answer or a record without a scene give no pair', async (t) => {
  t.equal(onPolicyPair(record, 'axial ct of the chest showing a large oval lesion in the left lung.'), undefined, 'right paraphrase');
  t.equal(onPolicyPair(record, reference), undefined, 'the reference word for word');
  t.equal(onPolicyPair(record, '   '), undefined, 'empty');
  const { scene: _omit, ...noScene } = record;
  t.equal(onPolicyPair(noScene, 'a small round lesion in the right lung.'), undefined, 'no scene to judge against');
});

t.test("chosen 'corrected': the model's own answer with its wrong words fixed, the reference where that fails", async (t) => {
  const wrong = 'this image shows an axial ct scan of the chest. there is a small round lesion in the right lung.';
  const pair = onPolicyPair(record, wrong, 'corrected');
  t.equal(pair!.chosen, 'this image shows an axial ct scan of the chest. there is a large oval lesion in the left lung.');
  t.equal(pair!.corrected, true);
  t.equal(pair!.rejected[0].text, wrong);
  t.same(judgeAnswer(pair!.chosen, scene).claims.filter((c) => !c.correct), [], 'the corrected answer is right');
  t.equal(correctAnswer('an axial mri of the chest showing a large oval lesion in the left lung.', scene), 'an axial ct of the chest showing a large oval lesion in the left lung.', 'the article follows the word');
  t.equal(onPolicyPair(record, 'an axial ct of the chest. there is no lesion.', 'corrected')!.chosen, 'an axial ct of the chest. there is one lesion.', 'a denied lesion: "no" → "one"');
  // No alternative word turns "liver" into the lung: the reference is chosen.
  const unfixable = onPolicyPair(record, 'an axial ct of the chest. there is a large oval lesion in the liver.', 'corrected');
  t.ok(unfixable!.rejected[0].wrong.length > 0);
  t.equal(unfixable!.chosen, reference);
  t.equal(unfixable!.corrected, false);
  t.equal(onPolicyPair(record, 'axial ct of the chest showing a large oval lesion in the left lung.', 'corrected'), undefined, 'a right answer: still no pair');
});

t.test('control.kind is checked and merges with the default absenceSwaps', async (t) => {
  const c = resolveAblationConfig({ control: { kind: 'onPolicy' } });
  t.same(c.control, { ...ABLATION_DEFAULTS.control, kind: 'onPolicy' });
  t.throws(() => resolveAblationConfig({ control: { chosen: 'model' } }), { code: 'E_CONFIG', message: /control\.chosen/ });
  t.throws(() => resolveAblationConfig({ control: { kind: 'random' } }, 'cfg.json'), { code: 'E_CONFIG', message: /control\.kind/ });
  t.throws(() => resolveAblationConfig({ control: { absenceSwaps: 'yes' } }), { code: 'E_CONFIG' });
});

t.test("control.lr / control.limit: the control's own, the methods' when null, checked", async (t) => {
  const own = resolveAblationConfig({ control: { lr: 2e-4, limit: 1000 }, train: { lr: 1e-4 }, generate: { limit: 500 } });
  t.same([controlLr(own), controlLimit(own)], [2e-4, 1000]);
  t.same([own.train.lr, own.generate.limit], [1e-4, 500], "the methods' settings untouched");
  const shared = resolveAblationConfig({ control: { lr: null, limit: null }, train: { lr: 3e-4 }, generate: { limit: 700 } });
  t.same([controlLr(shared), controlLimit(shared)], [3e-4, 700], 'null follows train.lr and generate.limit');
  t.throws(() => resolveAblationConfig({ control: { lr: 0 } }), { code: 'E_CONFIG', message: /control\.lr/ });
  t.throws(() => resolveAblationConfig({ control: { lr: '1e-4' } }), { code: 'E_CONFIG', message: /control\.lr/ });
  t.throws(() => resolveAblationConfig({ control: { limit: 2.5 } }, 'cfg.json'), { code: 'E_CONFIG', message: /cfg\.json.*control\.limit/ });
  t.throws(() => resolveAblationConfig({ control: { limit: 0 } }), { code: 'E_CONFIG', message: /control\.limit/ });
});
