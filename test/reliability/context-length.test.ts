/**
 * Issue 13 (2): a record longer than the model's context is refused when the data is loaded (E_DATA naming
 * file, line and length) by sft, train, generate, eval and logprobs — before any forward pass, so it costs
 * seconds and no memory — and `--truncate` shortens the question instead when the user asks for it.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModelBundle, disposeBundle } from '../../lib/model/bundle';
import { fitToContext, sequenceLength } from '../../lib/model/context';
import { encodeRecord } from '../../lib/model/bundle';
import { runSft } from '../../lib/train/sft';
import { runMlpo } from '../../lib/train/mlpo';
import { makePhantomData } from '../helpers/train-fixture';
import { hscr, jsonLines, tinyModel, writeJsonl } from './helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-rel-ctx-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const model = path.join(tmp, 'model-4096');
const short = path.join(tmp, 'model-80');
let records: Record<string, unknown>[] = [];
let word = '';

t.before(async () => {
  await tinyModel(model, 4096);
  await tinyModel(short, 80);
  const data = await makePhantomData(path.join(tmp, 'phantom'), 6);
  records = jsonLines(data.file).map((r) => ({ ...r, image: path.join(tmp, 'phantom', r.image as string) }));
  word = (records[0].question as string).split(' ')[1];
});

/** The data file with record `at` (0-based) given a question of `words` copies of one word; the record is on line at + 1. */
function withLongQuestion(name: string, words: number, at = 2): string {
  const out = records.map((r, i) => (i === at ? { ...r, question: Array(words).fill(word).join(' ') } : r));
  return writeJsonl(path.join(tmp, `${name}.jsonl`), out);
}

const tooLong = (file: string) => ({ code: 'E_DATA', message: new RegExp(`${path.basename(file).replace('.', '\\.')}, line 3, field "question": record "[^"]+" is \\d+ tokens long .*context \\(max_position_embeddings\\) is 4096`) });

t.test('sft, generate, eval, logprobs and train refuse a 10,000-token question at load time, naming file, line and length', async (t) => {
  const data = withLongQuestion('long', 10_000);
  const rss = process.memoryUsage().rss;
  const started = Date.now();
  let tried = 0;
  const out = (name: string) => path.join(tmp, 'out', name);
  await t.rejects(runSft({ config: { modelDir: model, outputDir: out('sft'), maxSteps: 1 }, data, quiet: true }), tooLong(data), 'sft');
  tried++;
  await t.rejects(hscr('sft', '--model', model, '--data', data, '--out', out('sft-cli'), '--max-steps', '1', '--quiet'), tooLong(data), 'hscr sft');
  tried++;
  await t.rejects(hscr('generate', '--model', model, '--data', data, '--out', out('prefs.jsonl'), '--quiet'), tooLong(data), 'generate');
  tried++;
  t.notOk(fs.existsSync(out('prefs.jsonl')), 'generate wrote no output');
  await t.rejects(hscr('eval', '--model', model, '--data', data, '--out', out('results.json'), '--quiet'), { code: 'E_DATA', message: /long\.jsonl, line 3, field "question": .* \d+ tokens long .*\+ 32 generated.*4096/ }, 'eval');
  tried++;
  t.notOk(fs.existsSync(out('results.json')), 'eval wrote no results');
  await t.rejects(hscr('logprobs', '--model', model, '--data', data, '--quiet'), tooLong(data), 'logprobs');
  tried++;
  // train: a ranked.jsonl whose third sample has the long question.
  const prefs = writeJsonl(
    path.join(tmp, 'ranked-long.jsonl'),
    records.map((r, i) => ({ id: r.id, image: r.image, question: i === 2 ? Array(10_000).fill(word).join(' ') : r.question, chosen: r.answer, rejected: [{ text: `${r.answer} not`, replacements: [], similarity: 0.5 }] })),
  );
  await t.rejects(runMlpo({ config: { modelDir: model, outputDir: out('train'), maxSteps: 1 }, prefs, quiet: true }), { code: 'E_DATA', message: /ranked-long\.jsonl, line 3, field "question": record "[^"]+" is \d+ tokens long/ }, 'train');
  tried++;
  const seconds = (Date.now() - started) / 1000;
  const grown = (process.memoryUsage().rss - rss) / 2 ** 20;
  t.ok(seconds < 60, `all ${tried} refusals took ${seconds.toFixed(1)} s (before: sft ran past 300 s)`);
  t.ok(grown < 1024, `memory grew by ${grown.toFixed(0)} MiB (before: 17.8 GB)`);
  t.comment(`context-length: ${tried} commands given a 10,000-token question, ${seconds.toFixed(1)} s, +${grown.toFixed(0)} MiB rss`);
});

t.test('the limit is exact: a record of max_position_embeddings tokens passes, one more token is refused (a 4,200-token question too)', async (t) => {
  const bundle = await loadModelBundle(model);
  try {
    const base = records[0] as { id: string; question: string; answer: string };
    const lengthOf = (words: number) => sequenceLength(bundle, encodeRecord(bundle, { question: Array(words).fill(word).join(' '), answer: base.answer }));
    let lo = 1;
    let hi = 8192;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lengthOf(mid) <= 4096) lo = mid;
      else hi = mid - 1;
    }
    t.equal(lengthOf(lo), 4096, `${lo} words make exactly 4096 positions`);
    const at = (words: number) => [{ ...base, question: Array(words).fill(word).join(' ') }];
    t.equal(fitToContext(bundle, at(lo), { source: 'x.jsonl' }).records.length, 1, 'exactly the context fits');
    t.throws(() => fitToContext(bundle, at(lo + 1), { source: 'x.jsonl', lineOf: () => 7 }), { code: 'E_DATA', message: /x\.jsonl, line 7, field "question": .* is 4097 tokens long/ });
    t.throws(() => fitToContext(bundle, at(4200), { source: 'x.jsonl' }), { code: 'E_DATA', message: /is \d{4} tokens long/ }, 'a 4,200-token question');
    t.throws(() => fitToContext(bundle, at(lo), { source: 'x.jsonl', reserve: 1 }), { code: 'E_DATA', message: /4097 tokens long .*\+ 1 generated/ }, 'generation needs room for its tokens');
  } finally {
    disposeBundle(bundle);
  }
});

t.test('--truncate shortens the question to fit, keeps the answer, and the commands run', async (t) => {
  const data = withLongQuestion('long-80', 200);
  await t.rejects(hscr('logprobs', '--model', short, '--data', data, '--quiet'), { code: 'E_DATA', message: /long-80\.jsonl, line 3, .*context \(max_position_embeddings\) is 80.*--truncate/ });
  const run = await hscr('logprobs', '--model', short, '--data', data, '--truncate');
  const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string; logprobs: number[] });
  t.equal(lines.length, records.length, 'every record scored');
  t.ok(lines.every((l) => l.logprobs.length > 0 && l.logprobs.every(Number.isFinite)), 'finite log-probs of whole answers');
  t.match(run.stderr, /shortened 1 questions/);
  const bundle = await loadModelBundle(short);
  try {
    const fitted = fitToContext(bundle, [{ ...records[2], question: Array(200).fill(word).join(' ') } as { id: string; question: string; answer: string }], { source: data, truncate: true });
    const r = fitted.records[0];
    const length = sequenceLength(bundle, encodeRecord(bundle, r));
    t.ok(length <= 80 && length >= 78, `shortened to ${length} of 80 positions (the longest prefix that fits)`);
    t.equal(r.answer, records[2].answer, 'answer kept whole');
    const noRoom = { ...records[2], question: word, answer: Array(100).fill(word).join(' ') } as { id: string; question: string; answer: string };
    t.throws(() => fitToContext(bundle, [noRoom], { source: data, truncate: true }), { code: 'E_DATA', message: /even with no question at all it does not fit/ });
  } finally {
    disposeBundle(bundle);
  }
  const sft = await runSft({ config: { modelDir: short, outputDir: path.join(tmp, 'out', 'sft-trunc'), maxSteps: 1, saveSteps: 0 }, data, truncate: true, quiet: true });
  t.equal(sft.steps, 1, 'sft --truncate trains');
});
