import t from 'tap';
import { MISTRAL_TOKENIZER, needShared, sharedPath } from './helpers/shared';
import * as path from 'node:path';
import { normalizeWord, llavaF1, closedCorrect, openScore, scorePredictions, loadPredictions, resultsTable, type MetricVariant } from '../lib/eval';
import { loadDataset, type VqaRecord } from '../lib/data';

const shared = (...p: string[]) => sharedPath('data', ...p);
const rec = (id: string, answer: string, answer_type: 'open' | 'closed', dataset = 'vqa-rad'): VqaRecord => ({ id, image: '/x.png', question: 'q', answer, answer_type, dataset });

t.test('normalize_word: punctuation, articles, number words, contractions', async (t) => {
  const cases: [string, string][] = [
    ['yes.', 'yes'],
    ['No, there is no lesion.', 'no there is no lesion'],
    ['The left lung', 'left lung'],
    ['an effusion', 'effusion'],
    ['Two', '2'],
    ['none', '0'],
    ['x-ray', 'x ray'],
    ['right-sided (lower) lobe', 'right sided lower lobe'],
    ['1,000 cells', '1000 cells'],
    ['3.5 cm', '3.5 cm'],
    ['dont know', "don't know"],
    ['Im here', 'im here'],
    ['a  \t b\u00a0c', 'b c'],
    ['.'.repeat(33) + 'x', '.x'],
  ];
  for (const [input, out] of cases) t.equal(normalizeWord(input.toLowerCase()), out, JSON.stringify(input));
});

t.test('closed questions per variant', async (t) => {
  const table: [string, string, Record<MetricVariant, boolean>][] = [
    ['Yes.', 'yes', { 'med-moe': true, 'llava-med-v1': true, strict: true }],
    ['No, there is no effusion.', 'no', { 'med-moe': true, 'llava-med-v1': true, strict: false }],
    ['Yes, but no effusion', 'no', { 'med-moe': true, 'llava-med-v1': true, strict: false }],
    ['normal', 'no', { 'med-moe': true, 'llava-med-v1': true, strict: false }],
    ['There is an effusion', 'yes', { 'med-moe': false, 'llava-med-v1': false, strict: false }],
    ['The left one', 'left', { 'med-moe': true, 'llava-med-v1': false, strict: false }],
    ['Left', 'left', { 'med-moe': true, 'llava-med-v1': false, strict: true }],
    ['two', '2', { 'med-moe': false, 'llava-med-v1': false, strict: true }],
  ];
  for (const [pred, gt, want] of table) {
    for (const v of Object.keys(want) as MetricVariant[]) t.equal(closedCorrect(pred, gt, v), want[v], `${v}: "${pred}" vs "${gt}"`);
  }
});

t.test('open questions: the recall quirk and the number words', async (t) => {
  const quirk = openScore('left left', 'left lung', 'med-moe');
  t.equal(quirk.recall, 2 / 3, 'tp counts the prediction\'s two "left"s: 2 / (2 + 1)');
  t.equal(quirk.precision, 1);
  t.equal(quirk.f1, 0.8);
  const fair = openScore('left left', 'left lung', 'strict');
  t.equal(fair.recall, 0.5);
  t.equal(fair.precision, 0.5);
  t.equal(fair.exactMatch, 0);
  t.same(llavaF1('', 'x'), { f1: 0, precision: 0, recall: 0 });

  const two = openScore('There are two lesions', '2', 'med-moe');
  t.equal(two.recall, 1, 'normalised inside calculate_f1score: two -> 2');
  t.equal(two.precision, 1 / 4);
  t.equal(two.exactMatch, 1 / 4, "LLaVA-Med's exact match: found reference words over prediction words");
  t.equal(two.hit, 0, 'med-moe hit is lower-case only: "2" is not in "there are two lesions"');
  t.equal(openScore('There are two lesions', '2', 'llava-med-v1').hit, 1);

  const lobe = openScore('The right upper lobe.', 'Right upper lobe', 'strict');
  t.equal(lobe.exactMatch, 1);
  t.equal(lobe.hit, 1);
  t.equal(openScore('the upper right lobe', 'right upper lobe', 'strict').hit, 0, 'strict hit needs the words in order');
});

t.test('pairing is by id, never by position', async (t) => {
  const records = [rec('a', 'yes', 'closed'), rec('b', 'no', 'closed'), rec('c', 'left lung', 'open', 'slake')];
  const byId = new Map([
    ['c', 'left lung'],
    ['b', 'no'],
    ['a', 'yes'],
  ]);
  const r = scorePredictions(records, byId, 'med-moe');
  t.equal(r.datasets['vqa-rad'].closed.accuracy, 1);
  t.equal(r.datasets.slake.open.recall, 1);
  t.equal(r.datasets.slake.closed.accuracy, null);
  const partial = scorePredictions(records, new Map([['a', 'yes'], ['zzz', 'no']]), 'med-moe');
  t.same(partial.missing, ['b', 'c']);
  t.same(partial.unmatched, ['zzz']);
  t.equal(partial.overall.closed.accuracy, 0.5, 'a missing prediction scores as the empty answer');
  t.throws(() => scorePredictions(records, new Map([['a', 'yes']]), 'llava-med-v1'), { code: 'E_DATA' });
  t.throws(() => scorePredictions([...records, rec('a', 'x', 'open')], byId), { code: 'E_DATA' });
  t.throws(() => scorePredictions(records, byId, 'nope' as MetricVariant), { code: 'E_ARG' });
});

t.test('real LLaVA-Med predictions on VQA-RAD', { skip: needShared('data/vqa-rad/testset.json', 'data/llava-med-predictions/answer-file.qid.jsonl', 'data/llava-med-predictions/answer-file-llava-zeorshot.qid.jsonl') }, async (t) => {
  const gt = await loadDataset(shared('vqa-rad/testset.json'));
  const preds = await loadPredictions(shared('llava-med-predictions/answer-file.qid.jsonl'));
  t.equal(preds.size, 451);

  // Twelve closed lines reasoned through by hand (qid: ground truth | prediction):
  // 11 yes|"…there is no evidence…" 0 · 13 Yes|"Human: Yes, …" 1 · 22 yes|"Yes, …" 1 · 24 yes|"No, …" 0 ·
  // 32 Yes|"Human: Yes, …" 1 · 34 Yes|"…first option…" 0 · 36 No|"…showing an enlarged cardiac region." 0 ·
  // 38 No|"…two options: [Yes, No]" 1 · 40 No|"…description of the findings." 0 · 42 No|"…My lungs are clear." 0 ·
  // 46 Yes|"Yes, …" 1 · 47 Yes|"No, …" 0  →  5 of 12 under med-moe and llava-med-v1, 0 under strict.
  const ids = ['11', '13', '22', '24', '32', '34', '36', '38', '40', '42', '46', '47'];
  const some = gt.records.filter((r) => ids.includes(r.id));
  const subset = new Map(ids.map((id) => [id, preds.get(id)!]));
  t.equal(scorePredictions(some, subset, 'med-moe').overall.closed.accuracy, 5 / 12);
  t.equal(scorePredictions(some, subset, 'llava-med-v1').overall.closed.accuracy, 5 / 12);
  t.equal(scorePredictions(some, subset, 'strict').overall.closed.accuracy, 0);

  // Open lines by hand: 595 Left | "In the image, the chest X-ray on the right is more clearly visualized than
  // the one on the left." normalises to 15 words with one "left": recall 1, precision 1/15.
  // 433 right temporal lobe | "…left temporal region of the brain…" (15 words): only "temporal": 1/3, 1/15.
  // 1035 T2-MRI | "This image was taken using a 3T MRI scanner." "t2 mri" vs 8 words: recall 1/2, precision 1/8.
  const full = scorePredictions(gt.records, preds, 'med-moe');
  const item = (id: string) => full.items.find((i) => i.id === id)!.open!;
  t.same([item('595').recall, item('595').precision], [1, 1 / 15]);
  t.same([item('433').recall, item('433').precision], [1 / 3, 1 / 15]);
  t.same([item('1035').recall, item('1035').precision], [1 / 2, 1 / 8]);

  // The whole file. The README states no figure; these come from running a line-by-line Python transcription
  // of LLaVA-Med's glossary.py + evaluate_metrics.py and Med-MoE's run_eval.py on the same join.
  t.equal(full.overall.closed.n, 272);
  t.equal(full.overall.open.n, 179);
  t.equal(full.overall.closed.accuracy, 132 / 272);
  t.ok(Math.abs(full.overall.open.recall! - 0.1753258845437616) < 1e-12);
  t.ok(Math.abs(full.overall.open.f1! - 0.045396601588223257) < 1e-12);
  const v1 = scorePredictions(gt.records, preds, 'llava-med-v1');
  t.equal(v1.overall.closed.accuracy, 128 / 272);
  t.ok(Math.abs(v1.overall.open.hit! - 0.11173184357541899) < 1e-12);
  const zeroShot = scorePredictions(gt.records, await loadPredictions(shared('llava-med-predictions/answer-file-llava-zeorshot.qid.jsonl')), 'med-moe');
  t.equal(zeroShot.overall.closed.accuracy, 82 / 272);
  t.ok(Math.abs(zeroShot.overall.open.recall! - 0.12041127437939794) < 1e-12);

  t.match(resultsTable([{ name: 'LLaVA-Med (early)', datasets: full.datasets }]), /\| LLaVA-Med \(early\) \| 17\.53 \| 48\.53 \|/);
});

t.test('prediction files: repeated ids are E_DATA with the line', async (t) => {
  await t.rejects(loadPredictions(path.resolve(__dirname, 'fixtures/hscr/predictions-dup.jsonl')), { code: 'E_DATA', message: /line 3, field "id".*already on line 1/ });
});

t.test('table: paper column order, dashes where a type is absent', async (t) => {
  const g = (open: number | null, closed: number | null) => ({ open: { n: 1, score: open, recall: open, precision: null, f1: null, exactMatch: null, hit: null }, closed: { n: 1, accuracy: closed } });
  const md = resultsTable([{ name: 'm', datasets: { phantom: g(0.5, null), pathvqa: g(0.1, 0.9), 'vqa-rad': g(0.25, 0.75) } }]);
  t.equal(md.split('\n')[0], '| Method | VQA-RAD Open | VQA-RAD Closed | PathVQA Open | PathVQA Closed | Phantom Open | Phantom Closed |');
  t.equal(md.split('\n')[2], '| m | 25.00 | 75.00 | 10.00 | 90.00 | 50.00 | – |');
});
