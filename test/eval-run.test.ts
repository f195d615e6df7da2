import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { generatePhantom, type VqaRecord } from '../lib/data';
import { evaluate, evaluateImageReliance, type PredictInput, type Predictor } from '../lib/eval';
import { registerDataCommands } from '../lib/cli/data';
import { registerEvalCommands } from '../lib/cli/eval';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'hscr-eval-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

let records: VqaRecord[] = [];
t.before(async () => {
  records = (await generatePhantom({ outDir: path.join(tmp, 'phantom'), train: 0, test: 60, seed: 4 })).test;
});

/** Reads the answer off the record the image belongs to: an oracle that needs the picture. */
function oracle(): Predictor {
  return async (batch: PredictInput[]) => batch.map((q) => records.find((r) => r.image === q.image && r.question === q.question)?.answer ?? 'yes');
}
const alwaysYes: Predictor = async (batch) => batch.map(() => 'yes');
const lines = (file: string) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

t.test('oracle vs always-yes: the metrics part as they must', async (t) => {
  const good = await evaluate(records, oracle(), { batchSize: 7, outDir: path.join(tmp, 'oracle') });
  const yes = await evaluate(records, alwaysYes, { batchSize: 7, outDir: path.join(tmp, 'yes') });
  const closed = records.filter((r) => r.answer_type === 'closed');
  const yesShare = closed.filter((r) => r.answer === 'yes').length / closed.length;
  t.equal(good.overall.closed.accuracy, 1);
  t.equal(good.overall.open.recall, 1);
  t.equal(good.hallucination?.hallucinated, 0);
  t.equal(yes.overall.closed.accuracy, yesShare, 'always-yes is right exactly on the yes questions');
  t.ok(yesShare > 0.2 && yesShare < 0.8, 'the test split is balanced');
  t.equal(yes.overall.open.recall, 0);
  t.equal(yes.hallucination?.stated, 0, '"yes" states no attribute');
  t.equal(good.predicted, 60);
  t.equal(lines(good.predictionsFile).length, 60);
  const saved = JSON.parse(readFileSync(good.resultsFile, 'utf8'));
  t.equal(saved.datasets.phantom.closed.accuracy, 1);
  t.match(good.table, /\| Method \| Phantom Open \| Phantom Closed \|\n\| --- \| ---: \| ---: \|\n\| hscr \| 100\.00 \| 100\.00 \|/);
});

t.test('a killed run keeps its batches and the next run resumes', async (t) => {
  const outDir = path.join(tmp, 'resume');
  let calls = 0;
  const flaky: Predictor = async (batch) => {
    if (++calls === 3) throw new Error('GPU fell over');
    return oracle()(batch);
  };
  await t.rejects(evaluate(records, flaky, { batchSize: 10, outDir }), /GPU fell over/);
  t.equal(lines(path.join(outDir, 'predictions.jsonl')).length, 20, 'two finished batches on disk');
  const seen: string[] = [];
  const counting: Predictor = async (batch) => {
    seen.push(...batch.map((b) => b.id));
    return oracle()(batch);
  };
  const r = await evaluate(records, counting, { batchSize: 10, outDir });
  t.equal(r.resumed, 20);
  t.equal(r.predicted, 40);
  t.same(seen, records.slice(20).map((x) => x.id), 'only the missing items are asked');
  t.equal(r.overall.closed.accuracy, 1);
  const other = records.map((x) => ({ ...x, id: `other-${x.id}` }));
  await t.rejects(evaluate(other, counting, { batchSize: 10, outDir }), { code: 'E_DATA' }, 'a predictions file of other data is not reused');
});

t.test('bad predictors and options are refused before anything is lost', async (t) => {
  const outDir = path.join(tmp, 'bad');
  await t.rejects(evaluate(records, async (b) => b.slice(1).map(() => 'x'), { batchSize: 4, outDir }), { code: 'E_ARG' });
  await t.rejects(evaluate(records, alwaysYes, { batchSize: 0, outDir: path.join(tmp, 'never') }), { code: 'E_ARG' });
  t.notOk(existsSync(path.join(tmp, 'never')));
  await t.rejects(evaluate([...records, records[0]], alwaysYes, { batchSize: 4, outDir: path.join(tmp, 'never') }), { code: 'E_ARG' });
});

t.test('image reliance: real minus blank image', async (t) => {
  const r = await evaluateImageReliance(records, oracle(), { batchSize: 16, outDir: path.join(tmp, 'reliance') });
  const closed = records.filter((x) => x.answer_type === 'closed');
  const yesShare = closed.filter((x) => x.answer === 'yes').length / closed.length;
  t.equal(r.blank.overall.closed.accuracy, yesShare, 'with the blank image the oracle falls back to "yes"');
  t.equal(r.overall.closed, 1 - yesShare);
  t.equal(r.overall.open, 1);
  t.ok(existsSync(r.relianceFile));
  t.ok(lines(r.blank.predictionsFile).length === 60);
});

/** Runs CLI words in-process and returns what they printed on stdout. */
async function cli(args: string[], loadPredictor?: Parameters<typeof registerEvalCommands>[1]): Promise<string> {
  const program = new Command('hscr').exitOverride();
  registerDataCommands(program);
  registerEvalCommands(program, loadPredictor);
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => ((out += chunk), true)) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'hscr', ...args]);
  } finally {
    process.stdout.write = write;
  }
  return out;
}

t.test('hscr phantom / eval / score', async (t) => {
  const dir = path.join(tmp, 'cli');
  t.match(await cli(['phantom', '--out', dir, '--train', '5', '--test', '40', '--seed', '4', '--quiet']), /wrote 5 train and 40 test items/);
  t.same(lines(path.join(dir, 'test.jsonl')).map((r) => r.question), records.slice(0, 40).map((r) => r.question), 'same seed as the library call');
  await t.rejects(cli(['eval', '--model', 'm', '--data', path.join(dir, 'test.jsonl')]), 'eval is not registered without a predictor loader');

  let loaded: string[] = [];
  const loader = async (model: string, adapter?: string) => {
    loaded = [model, adapter ?? ''];
    const cliRecords = lines(path.join(dir, 'test.jsonl'));
    return Object.assign(async (batch: PredictInput[]) => batch.map((q) => cliRecords.find((r) => r.id === q.id)!.answer as string), { dispose: () => void loaded.push('disposed') });
  };
  const results = path.join(dir, 'out', 'results.json');
  const printed = await cli(['eval', '--model', 'tiny', '--adapter', 'lora', '--data', path.join(dir, 'test.jsonl'), '--out', results, '--batch-size', '8', '--quiet'], loader);
  t.same(loaded, ['tiny', 'lora', 'disposed']);
  t.match(printed, /\| lora \| 100\.00 \| 100\.00 \|/);
  t.match(printed, /40 answered in [\d.]+ s \([\d.]+ samples\/s\)/);
  const predictions = path.join(dir, 'out', 'results.predictions.jsonl');
  t.equal(lines(predictions).length, 40);
  t.equal(JSON.parse(readFileSync(results, 'utf8')).overall.closed.accuracy, 1);

  const scored = JSON.parse(await cli(['score', '--data', path.join(dir, 'test.jsonl'), '--predictions', predictions, '--json']));
  t.equal(scored.variant, 'med-moe');
  t.equal(scored.overall.closed.accuracy, 1);
  t.equal(scored.hallucination.hallucinated, 0);
  const wrong = path.join(dir, 'wrong.jsonl');
  writeFileSync(wrong, lines(predictions).map((p) => JSON.stringify({ question_id: p.id, text: 'no' })).join('\n'));
  const strict = JSON.parse(await cli(['score', '--data', path.join(dir, 'test.jsonl'), '--predictions', wrong, '--json', '--variant', 'strict']));
  const closed = lines(path.join(dir, 'test.jsonl')).filter((r) => r.answer_type === 'closed');
  t.equal(strict.overall.closed.accuracy, closed.filter((r) => r.answer === 'no').length / closed.length);
  await t.rejects(cli(['score', '--data', path.join(dir, 'test.jsonl'), '--predictions', wrong, '--variant', 'bogus']), { code: 'E_ARG' });
});
