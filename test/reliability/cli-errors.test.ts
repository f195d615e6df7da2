/**
 * Issue 13 (8, CLI part): OS errors are HscrErrors (E_IO) naming the path, found before the work is done;
 * messages name the right thing (an out-of-range seed, a missing "prediction" field, a pretty-printed JSON
 * document given as JSONL).
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HscrError } from '../../lib/errors';
import { makePhantomData } from '../helpers/train-fixture';
import { hscr, tinyModel } from './helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-rel-cli-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const model = path.join(tmp, 'model');
let data = '';
let tried = 0;

t.before(async () => {
  await tinyModel(model, 4096);
  data = (await makePhantomData(path.join(tmp, 'phantom'), 4)).file;
});

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

t.test('raw OS errors become E_IO naming the path, before any model is loaded', async (t) => {
  const aFile = path.join(tmp, 'a-file');
  fs.writeFileSync(aFile, 'x');
  const aDir = path.join(tmp, 'a-dir');
  fs.mkdirSync(aDir);
  const under = path.join(aFile, 'out');
  const cases: [string, string[], RegExp][] = [
    ['generate --out under a file (ENOTDIR)', ['generate', '--model', model, '--data', data, '--out', path.join(under, 'prefs.jsonl')], /ENOTDIR/],
    ['generate --out a folder (EISDIR)', ['generate', '--model', model, '--data', data, '--out', aDir], /EISDIR/],
    ['eval --out a folder (EISDIR), before answering anything', ['eval', '--model', model, '--data', data, '--out', aDir], /EISDIR/],
    ['eval --out under a file (ENOTDIR)', ['eval', '--model', model, '--data', data, '--out', path.join(under, 'r.json')], /ENOTDIR/],
    ['rerank --out a folder', ['rerank', '--in', data, '--out', aDir], /EISDIR/],
    ['rerank --in missing', ['rerank', '--in', path.join(tmp, 'nope.jsonl'), '--out', path.join(tmp, 'r.jsonl')], /ENOENT/],
    ['sft --out a file (ENOTDIR)', ['sft', '--model', model, '--data', data, '--out', aFile, '--max-steps', '1'], /ENOTDIR/],
    ['sft --data missing', ['sft', '--model', model, '--data', path.join(tmp, 'nope.jsonl'), '--out', path.join(tmp, 'sft')], /ENOENT/],
    ['sft --model missing', ['sft', '--model', path.join(tmp, 'no-model'), '--data', data, '--out', path.join(tmp, 'sft')], /ENOENT/],
    ['train --prefs missing', ['train', '--model', model, '--prefs', path.join(tmp, 'nope.jsonl'), '--out', path.join(tmp, 'train')], /ENOENT/],
    ['phantom --out a file', ['phantom', '--out', aFile, '--train', '1', '--test', '1', '--seed', '1'], /ENOTDIR/],
    ['phantom --out under a file', ['phantom', '--out', under, '--train', '1', '--test', '1', '--seed', '1'], /ENOTDIR/],
    ['init --corpus missing', ['init', '--preset', 'tiny', '--out', path.join(tmp, 'init'), '--corpus', path.join(tmp, 'no-corpus.txt')], /ENOENT/],
    ['init --out a file', ['init', '--preset', 'tiny', '--out', aFile], /ENOTDIR/],
    ['logprobs --data a folder', ['logprobs', '--model', model, '--data', aDir], /EISDIR/],
    ['generate --data missing', ['generate', '--model', model, '--data', path.join(tmp, 'nope.jsonl'), '--out', path.join(tmp, 'p.jsonl')], /ENOENT/],
  ];
  for (const [name, args, errno] of cases) {
    const started = Date.now();
    const err = await hscr(...args, ...(args[0] === 'init' ? [] : ['--quiet'])).then(
      () => undefined,
      (e: unknown) => e,
    );
    tried++;
    t.ok(err instanceof HscrError, `${name}: an HscrError (${(err as Error)?.constructor?.name}: ${(err as Error)?.message})`);
    const e = err as HscrError;
    t.equal(e.code, 'E_IO', `${name}: E_IO`);
    t.match(e.message, errno, `${name}: says ${errno.source}`);
    const named = args.find((a, i) => i > 0 && e.message.includes(a) && a.startsWith(tmp));
    t.ok(named, `${name}: names the path (${e.message})`);
    t.ok(Date.now() - started < 3000, `${name}: before the work (${Date.now() - started} ms)`);
  }
  t.same(fs.readdirSync(aDir), [], 'nothing written into the folder');
  t.notOk(fs.existsSync(path.join(tmp, 'init')), 'init wrote nothing');
});

t.test('messages name the right thing', async (t) => {
  for (const [args, message] of [
    [['generate', '--model', model, '--data', data, '--out', path.join(tmp, 'p.jsonl'), '--seed', '1e20'], /--seed is out of range: must be an integer in \[0, 4294967295\], got "1e20"/],
    [['sft', '--model', model, '--data', data, '--out', path.join(tmp, 's'), '--seed', '1e20'], /--seed is out of range/],
    [['phantom', '--out', path.join(tmp, 'ph'), '--train', '1', '--test', '1', '--seed', '1e20'], /--seed is out of range: must be an integer in \[0, 4294967295\]/],
    [['phantom', '--out', path.join(tmp, 'ph'), '--train', '1', '--test', '1', '--seed', '-1'], /--seed is out of range/],
    [['phantom', '--out', path.join(tmp, 'ph'), '--train', '1', '--test', '1', '--seed', '1.5'], /--seed must be an integer ≥ 0, got "1\.5"/],
    [['generate', '--model', model, '--data', data, '--out', path.join(tmp, 'p.jsonl'), '--k', '99999999999999999999'], /--k is out of range/],
  ] as const) {
    await t.rejects(hscr(...args, '--quiet'), { code: 'E_ARG', message }, message.source);
    tried++;
  }
  t.equal((await hscr('phantom', '--out', path.join(tmp, 'ph'), '--train', '1', '--test', '1', '--seed', '1e3', '--quiet')).stdout.includes('wrote 1 train'), true, '"1e3" is the integer 1000');

  // A predictions file without "prediction" (nor LLaVA-Med's "text"): the message names "prediction".
  const preds = path.join(tmp, 'preds.jsonl');
  fs.writeFileSync(preds, `${JSON.stringify({ id: 'train-00000', answer: 'yes' })}\n`);
  await t.rejects(hscr('score', '--data', data, '--predictions', preds), { code: 'E_DATA', message: new RegExp(`${esc(preds)}, line 1, field "prediction": missing`) });
  fs.writeFileSync(preds, `${JSON.stringify({ id: 'train-00000', prediction: 3 })}\n`);
  await t.rejects(hscr('score', '--data', data, '--predictions', preds), { code: 'E_DATA', message: /field "prediction": must be a string, got number/ });
  tried += 2;

  // A pretty-printed JSON object given where JSON Lines are read.
  const pretty = path.join(tmp, 'pretty.jsonl');
  const record = { id: 'a', image: 'images/train-00000.png', question: 'is there a lesion?', answer: 'yes' };
  fs.writeFileSync(pretty, JSON.stringify(record, null, 2));
  for (const args of [
    ['score', '--data', pretty, '--predictions', preds],
    ['rerank', '--in', pretty, '--out', path.join(tmp, 'rr.jsonl')],
    ['logprobs', '--model', model, '--data', pretty],
  ]) {
    await t.rejects(hscr(...args, ...(args[0] === 'score' ? [] : ['--quiet'])), { code: 'E_DATA', message: /pretty\.jsonl, line 1: the file is one JSON object spread over 6 lines \(pretty-printed\), not JSON Lines/ }, args[0]);
    tried++;
  }
  // A real syntax error on line 1 is still reported as one.
  fs.writeFileSync(pretty, '{"id": "a",\n');
  await t.rejects(hscr('rerank', '--in', pretty, '--out', path.join(tmp, 'rr.jsonl'), '--quiet'), { code: 'E_DATA', message: /line 1: not valid JSON/ });
  tried++;
  t.comment(`cli errors: ${tried} bad paths and values tried, each a coded HscrError naming what was wrong`);
});
