import t from 'tap';
import { MISTRAL_TOKENIZER, needShared, sharedPath } from './helpers/shared';
import * as path from 'node:path';
import { HscrError } from '../lib/errors';
import { loadDataset, loadLlavaMed, loadPathVqa, loadSlake, loadVqaRad, loadHscr, detectFormat, readJsonArray, readJsonlAll } from '../lib/data';

const fx = (...p: string[]) => path.resolve(__dirname, 'fixtures', ...p);
const shared = (...p: string[]) => sharedPath('data', ...p);

/** Asserts an E_DATA error naming file, line and field. */
async function rejectsAt(t: Tap.Test, p: Promise<unknown>, file: string, line: number, field?: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof HscrError, 'an HscrError');
  const e = err as HscrError;
  t.equal(e.code, 'E_DATA');
  t.match(e.message, `${file}, line ${line}`);
  if (field) t.match(e.message, `field "${field}"`);
}

t.test('JSONL and JSON-array readers give 1-based start lines', async (t) => {
  const lines = await readJsonlAll(fx('llava-med/test.jsonl'));
  t.same(lines.map((l) => l.line), [1, 2, 3]);
  const arr = await readJsonArray(fx('vqa-rad/testset.json'));
  t.same(arr.map((l) => l.line), [2, 12, 22]);
  await rejectsAt(t, readJsonlAll(fx('llava-med/bad-json.jsonl')), 'bad-json.jsonl', 3);
  await rejectsAt(t, readJsonArray(fx('vqa-rad/bad-json.json')), 'bad-json.json', 13);
});

t.test('VQA-RAD fixture', async (t) => {
  const r = await loadVqaRad(fx('vqa-rad/testset.json'));
  t.equal(r.loaded, 3);
  t.same(r.skipped, []);
  t.same(r.records.map((x) => [x.id, x.answer_type, x.answer]), [
    ['11', 'closed', 'yes'],
    ['12', 'open', 'Right upper lobe'],
    ['13', 'closed', '2'],
  ]);
  t.equal(r.records[0].image, fx('vqa-rad/images/synpic1.jpg'));
  t.equal(r.records[0].dataset, 'vqa-rad');
  await rejectsAt(t, loadVqaRad(fx('vqa-rad/bad-json.json')), 'bad-json.json', 13);
  await rejectsAt(t, loadVqaRad(fx('vqa-rad/missing-field.json')), 'missing-field.json', 9, 'answer');
  await rejectsAt(t, loadVqaRad(fx('vqa-rad/missing-image.json')), 'missing-image.json', 9, 'image_name');
  const skipping = await loadVqaRad(fx('vqa-rad/missing-image.json'), { missingImage: 'skip' });
  t.equal(skipping.loaded, 1);
  t.same(skipping.skipped, [{ reason: 'image file missing', count: 1 }]);
});

t.test('SLAKE fixture: English only, empty answers counted', async (t) => {
  const r = await loadSlake(fx('slake/test.json'));
  t.same(r.records.map((x) => [x.id, x.answer_type, x.answer, x.modality]), [
    ['100', 'open', 'CT', 'CT'],
    ['102', 'closed', 'Yes', 'X-Ray'],
  ]);
  t.equal(r.records[1].image, fx('slake/imgs/xmlab2/source.jpg'));
  t.same(r.skipped, [
    { reason: 'q_lang "zh" (English only)', count: 1 },
    { reason: 'empty answer', count: 1 },
  ]);
  await rejectsAt(t, loadSlake(fx('slake/bad-json.json')), 'bad-json.json', 1);
  await rejectsAt(t, loadSlake(fx('slake/missing-field.json')), 'missing-field.json', 1, 'img_name');
  await t.rejects(loadSlake(fx('slake/missing-field.json')), /record 2/);
  await rejectsAt(t, loadSlake(fx('slake/missing-image.json')), 'missing-image.json', 1, 'img_name');
});

t.test('PathVQA fixture: one record per question, yes/no closed', async (t) => {
  const r = await loadPathVqa(fx('pathvqa/pvqa_test.json'));
  t.same(r.records.map((x) => [x.id, x.answer_type, x.answer]), [
    ['test_0001_0', 'open', 'squamous cell carcinoma'],
    ['test_0001_1', 'closed', 'yes'],
    ['test_0001_2', 'open', 'apoptosis '],
  ]);
  t.equal(r.records[0].image, fx('pathvqa/images/test/test_0001.jpg'));
  t.same(r.skipped, [{ reason: 'image record without questions', count: 1 }]);
  await rejectsAt(t, loadPathVqa(fx('pathvqa/bad-json.json')), 'bad-json.json', 14);
  await rejectsAt(t, loadPathVqa(fx('pathvqa/missing-field.json')), 'missing-field.json', 17, 'sentf');
  await rejectsAt(t, loadPathVqa(fx('pathvqa/missing-image.json')), 'missing-image.json', 2, 'img_id');
});

t.test('LLaVA-Med fixture: conversations, text+answer, multi-turn', async (t) => {
  const r = await loadLlavaMed(fx('llava-med/test.jsonl'));
  t.same(r.records.map((x) => [x.id, x.question, x.answer, x.answer_type]), [
    ['q1', 'Is there a pleural effusion?', 'No', 'closed'],
    ['7', 'What organ is shown?', 'Lung', 'open'],
    ['chat3#1', 'What modality is this?', 'A chest X-ray.', 'open'],
    ['chat3#2', 'Is the heart enlarged?', 'yes', 'closed'],
  ]);
  await rejectsAt(t, loadLlavaMed(fx('llava-med/bad-json.jsonl')), 'bad-json.jsonl', 3);
  await rejectsAt(t, loadLlavaMed(fx('llava-med/missing-field.jsonl')), 'missing-field.jsonl', 2, 'image');
  await rejectsAt(t, loadLlavaMed(fx('llava-med/missing-image.jsonl')), 'missing-image.jsonl', 2, 'image');
});

t.test('hscr JSONL fixture', async (t) => {
  const r = await loadHscr(fx('hscr/data.jsonl'));
  t.same(r.records.map((x) => [x.id, x.answer_type, x.dataset, x.family]), [
    ['a1', 'closed', 'phantom', 'presence'],
    ['a2', 'open', 'hscr', undefined],
  ]);
  await rejectsAt(t, loadHscr(fx('hscr/bad-json.jsonl')), 'bad-json.jsonl', 3);
  await rejectsAt(t, loadHscr(fx('hscr/missing-field.jsonl')), 'missing-field.jsonl', 2, 'question');
  await rejectsAt(t, loadHscr(fx('hscr/missing-image.jsonl')), 'missing-image.jsonl', 2, 'image');
});

t.test('format detection', async (t) => {
  t.equal(await detectFormat(fx('vqa-rad/testset.json')), 'vqa-rad');
  t.equal(await detectFormat(fx('slake/test.json')), 'slake');
  t.equal(await detectFormat(fx('pathvqa/pvqa_test.json')), 'pathvqa');
  t.equal(await detectFormat(fx('llava-med/test.jsonl')), 'llava-med');
  t.equal(await detectFormat(fx('hscr/data.jsonl')), 'hscr');
  await t.rejects(loadDataset(fx('hscr/data.jsonl'), { format: 'nope' as 'hscr' }), { code: 'E_ARG' });
});

t.test('the real benchmarks load with the counts their READMEs state', { skip: needShared('data/vqa-rad/testset.json', 'data/vqa-rad/trainset.json', 'data/slake/test.json', 'data/slake/train.json', 'data/pathvqa/pvqa_test.json') }, async (t) => {
  const rad = await loadDataset(shared('vqa-rad/testset.json'));
  t.equal(rad.format, 'vqa-rad');
  t.equal(rad.loaded, 451);
  t.equal(rad.records.filter((r) => r.answer_type === 'closed').length, 272);
  const radTrain = await loadDataset(shared('vqa-rad/trainset.json'));
  t.equal(radTrain.loaded, 3064, 'both "CLOSED " records with a trailing space are read');
  const slake = await loadDataset(shared('slake/test.json'));
  t.equal(slake.loaded, 1061);
  t.equal(slake.records.filter((r) => r.answer_type === 'closed').length, 416);
  const slakeTrain = await loadDataset(shared('slake/train.json'), { missingImage: 'skip' });
  t.same(slakeTrain.skipped, [
    { reason: 'image file missing', count: 4918 },
    { reason: 'empty answer', count: 1 },
  ], 'images not shipped: every record is accounted for');
  const pvqa = await loadDataset(shared('pathvqa/pvqa_test.json'));
  t.equal(pvqa.loaded, 458);
  t.equal(pvqa.records.filter((r) => r.answer_type === 'closed').length, 242);
  t.equal(pvqa.records.filter((r) => r.answer === 'yes').length, 127);
});

t.test('plain {id, image, question, answer} records get their answer type from the answer', async (t) => {
  const dir = t.testdir({
    'plain.jsonl': ['{"id":"p1","image":"x.png","question":"is it big?","answer":"Yes"}', '{"id":"p2","image":"x.png","question":"which organ?","answer":"liver"}'].join('\n'),
    'x.png': Buffer.from([0x89, 0x50, 0x4e, 0x47]),
  });
  const r = await loadHscr(path.join(dir, 'plain.jsonl'));
  t.same(r.records.map((x) => x.answer_type), ['closed', 'open']);
});
