/**
 * Issue 13 (4), (5), (6): every output records what made it and a resume with anything else is refused;
 * records of ids not in --data are not kept; one writer per output (a second is refused at once, E_LOCKED;
 * a lock whose holder died is taken over); `phantom --out <existing dataset>` needs --overwrite.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lockOutput } from '../../lib/util/output';
import { runSft } from '../../lib/train/sft';
import { runMlpo } from '../../lib/train/mlpo';
import { makePhantomData, writeRankedFromPhantom } from '../helpers/train-fixture';
import { hscr, jsonLines, snapshot, tinyModel } from './helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-rel-own-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const modelA = path.join(tmp, 'model-a');
const modelB = path.join(tmp, 'model-b');
let data = '';
let otherData = '';
let refused = 0;

t.before(async () => {
  await tinyModel(modelA, 4096, 1);
  await tinyModel(modelB, 4096, 2);
  data = (await makePhantomData(path.join(tmp, 'phantom'), 6)).file;
  otherData = (await makePhantomData(path.join(tmp, 'phantom-2'), 6, 9)).file;
});

function cut(file: string, keep: number): void {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  fs.writeFileSync(file, lines.slice(0, keep).map((l) => `${l}\n`).join(''));
}

t.test('eval: a resume with another model, adapter or data is refused; the same one resumes', async (t) => {
  const results = path.join(tmp, 'eval', 'results.json');
  const predictions = path.join(tmp, 'eval', 'results.predictions.jsonl');
  const base = ['eval', '--data', data, '--out', results, '--batch-size', '2', '--quiet'];
  await hscr(...base, '--model', modelA);
  t.equal(jsonLines(predictions).length, 6);
  cut(predictions, 3); // a killed run
  const before = snapshot(path.join(tmp, 'eval'));
  const sft = await runSft({ config: { modelDir: modelA, outputDir: path.join(tmp, 'sft-lora'), maxSteps: 1, saveSteps: 0, finetune: 'lora' }, data, quiet: true });
  const cases: [string, string[], RegExp][] = [
    ['another model', ['--model', modelB], /made by another run \(model: /],
    ['another adapter', ['--model', modelA, '--adapter', path.join(sft.outputDir, 'adapter')], /made by another run \(adapter: null when it was written/],
    ['other data', ['--model', modelA, '--data', otherData], /made by another run \(data: /],
  ];
  for (const [name, args, message] of cases) {
    await t.rejects(hscr(...base, ...args), { code: 'E_DATA', message }, name);
    refused++;
    t.same(snapshot(path.join(tmp, 'eval')), before, `${name}: nothing changed`);
  }
  const resumed = await hscr(...base, '--model', modelA);
  t.match(resumed.stdout, /3 answered .*, 3 resumed/);
  const again = await hscr(...base, '--model', modelB, '--overwrite');
  t.match(again.stdout, /6 answered/, '--overwrite starts over');
  t.same(fs.readdirSync(path.join(tmp, 'eval')).filter((f) => f.endsWith('.lock')), [], 'no lock left behind');
});

t.test('generate and rerank: other settings, another model and foreign ids are refused', async (t) => {
  const out = path.join(tmp, 'gen', 'prefs.jsonl');
  const base = ['generate', '--data', data, '--out', out, '--k', '2', '--seed', '3', '--quiet'];
  await hscr(...base, '--model', modelA, '--limit', '3');
  const written = fs.readFileSync(out);
  for (const [name, args, message] of [
    ['--k 3', ['--model', modelA, '--k', '3'], /k: 2 when it was written, 3 now/],
    ['--seed 4', ['--model', modelA, '--seed', '4'], /seed: 3 when it was written, 4 now/],
    ['--ratio 0.5', ['--model', modelA, '--ratio', '0.5'], /ratio: 0\.7 when it was written, 0\.5 now/],
    ['another model', ['--model', modelB], /model: /],
    ['other data', ['--model', modelA, '--data', otherData], /data: /],
  ] as const) {
    await t.rejects(hscr(...base, ...args), { code: 'E_DATA', message }, `generate ${name}`);
    refused++;
    t.same(fs.readFileSync(out), written, `generate ${name}: output untouched`);
  }
  t.match((await hscr(...base, '--model', modelA)).stdout, /3 already in .*, 3 written/, 'the same settings resume (a larger --limit and another --batch are fine)');

  // A record whose id is not in --data is not kept.
  const lines = fs.readFileSync(out, 'utf8');
  fs.appendFileSync(out, `${JSON.stringify({ ...JSON.parse(lines.split('\n')[0]), id: 'stranger' })}\n`);
  await t.rejects(hscr(...base, '--model', modelA), { code: 'E_DATA', message: /id "stranger" is not in the input/ });
  refused++;
  fs.writeFileSync(out, lines);

  const ranked = path.join(tmp, 'gen', 'ranked.jsonl');
  await hscr('rerank', '--in', out, '--out', ranked, '--quiet');
  cut(ranked, 4);
  const r = fs.readFileSync(ranked);
  await t.rejects(hscr('rerank', '--in', out, '--out', ranked, '--j', '2', '--quiet'), { code: 'E_DATA', message: /j: 3 when it was written, 2 now/ });
  await t.rejects(hscr('rerank', '--in', out, '--out', ranked, '--quiet', '--model', modelA), { code: 'E_DATA', message: /similarity: "wordnet" when it was written, "word-similarity" now/ });
  fs.appendFileSync(ranked, `${JSON.stringify({ id: 'stranger', rejected: [] })}\n`);
  await t.rejects(hscr('rerank', '--in', out, '--out', ranked, '--quiet'), { code: 'E_DATA', message: /id "stranger" is not in the input/ });
  refused += 3;
  fs.writeFileSync(ranked, r);
  t.match((await hscr('rerank', '--in', out, '--out', ranked, '--quiet')).stdout, /4 already in .*, 2 written/);
  // An output that holds records but no fingerprint (made by an older hscr, or copied without it) is not appended to.
  fs.rmSync(`${ranked}.run.json`);
  await t.rejects(hscr('rerank', '--in', out, '--out', ranked, '--quiet'), { code: 'E_DATA', message: /holds records but has no ranked\.jsonl\.run\.json/ });
  refused++;
});

t.test('sft and train: a resume from another starting model is refused', async (t) => {
  const out = path.join(tmp, 'sft-full');
  const config = { modelDir: modelA, outputDir: out, maxSteps: 2, saveSteps: 1, finetune: 'full' as const };
  await runSft({ config, data, quiet: true });
  await t.rejects(runSft({ config: { ...config, modelDir: modelB }, data, quiet: true, resume: true }), { code: 'E_CHECKPOINT', message: /other settings \(model: / });
  refused++;
  const prefs = path.join(tmp, 'ranked-train.jsonl');
  const records = jsonLines<{ id: string }>(data).map((r) => ({ ...r, image: path.join(tmp, 'phantom', (r as unknown as { image: string }).image) }));
  writeRankedFromPhantom(prefs, records as never);
  const train = { modelDir: modelA, outputDir: path.join(tmp, 'train'), maxSteps: 2, saveSteps: 1 };
  await runMlpo({ config: train, prefs, quiet: true });
  await t.rejects(runMlpo({ config: { ...train, modelDir: modelB }, prefs, quiet: true, resume: true }), { code: 'E_CHECKPOINT', message: /other settings \(model: / });
  refused++;
  t.comment(`fingerprints: ${refused} mismatched resumes refused`);
});

t.test('one writer per output: every command refuses a held output at once; a dead holder’s lock is taken over', async (t) => {
  const out = (name: string) => path.join(tmp, 'locked', name);
  fs.mkdirSync(out(''), { recursive: true });
  const commands: [string, string, () => Promise<unknown>][] = [
    ['generate', out('prefs.jsonl'), () => hscr('generate', '--model', modelA, '--data', data, '--out', out('prefs.jsonl'), '--quiet')],
    ['eval', out('results.json'), () => hscr('eval', '--model', modelA, '--data', data, '--out', out('results.json'), '--quiet')],
    ['rerank', out('ranked.jsonl'), () => hscr('rerank', '--in', path.join(tmp, 'gen', 'prefs.jsonl'), '--out', out('ranked.jsonl'), '--quiet')],
    ['sft', out('sft'), () => hscr('sft', '--model', modelA, '--data', data, '--out', out('sft'), '--max-steps', '1', '--quiet')],
    ['train', out('train'), () => hscr('train', '--model', modelA, '--prefs', path.join(tmp, 'ranked-train.jsonl'), '--out', out('train'), '--max-steps', '1', '--quiet')],
    ['phantom', out('phantom'), () => hscr('phantom', '--out', out('phantom'), '--train', '2', '--test', '2', '--seed', '1', '--quiet')],
  ];
  for (const [name, target, run] of commands) {
    const held = lockOutput(target, 'another writer');
    const started = Date.now();
    await t.rejects(run(), { code: 'E_LOCKED', message: new RegExp(`being written by another process \\(another writer, pid ${process.pid}`) }, name);
    const ms = Date.now() - started;
    t.ok(ms < 2000, `${name} refused in ${ms} ms, before loading anything`);
    held.release();
    t.notOk(fs.existsSync(`${target}.lock`), `${name}: lock released`);
  }
  t.same(fs.readdirSync(out('')).filter((f) => !f.endsWith('.lock')), [], 'nothing was written by the refused writers');

  // Stale locks: a holder that exited, and a recycled pid (same pid, other start time) are taken over; another host is not.
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  const lockFile = `${out('phantom')}.lock`;
  fs.writeFileSync(lockFile, JSON.stringify({ pid: dead, host: os.hostname(), start: null, command: 'killed', since: 'then' }));
  await hscr('phantom', '--out', out('phantom'), '--train', '2', '--test', '2', '--seed', '1', '--quiet');
  t.ok(fs.existsSync(path.join(out('phantom'), 'meta.json')), 'a dead holder’s lock was taken over');
  // A holder killed but not yet reaped by its parent (a zombie) holds nothing either.
  const zombie = spawn('sleep', ['30']);
  zombie.kill('SIGKILL');
  while (!/^\S+ \(sleep\) Z/.test(fs.readFileSync(`/proc/${zombie.pid}/stat`, 'utf8'))) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  fs.writeFileSync(lockFile, JSON.stringify({ pid: zombie.pid, host: os.hostname(), start: null, command: 'zombie', since: 'then' }));
  await hscr('phantom', '--out', out('phantom'), '--train', '2', '--test', '2', '--seed', '1', '--quiet', '--overwrite');
  t.notOk(fs.existsSync(lockFile), 'a zombie holder’s lock was taken over and released');
  fs.writeFileSync(lockFile, JSON.stringify({ pid: process.pid, host: os.hostname(), start: 'another-boot', command: 'recycled', since: 'then' }));
  await hscr('phantom', '--out', out('phantom'), '--train', '2', '--test', '2', '--seed', '1', '--quiet', '--overwrite');
  t.notOk(fs.existsSync(lockFile), 'a recycled pid’s lock was taken over and released');
  fs.writeFileSync(lockFile, JSON.stringify({ pid: 1, host: 'elsewhere', start: null, command: 'remote', since: 'then' }));
  await t.rejects(hscr('phantom', '--out', out('phantom'), '--train', '2', '--test', '2', '--seed', '1', '--quiet', '--overwrite'), { code: 'E_LOCKED', message: /pid 1 on elsewhere/ });
  fs.rmSync(lockFile);
});

t.test('two processes on one output: the second is refused at once, the first finishes whole', async (t) => {
  const dir = path.join(tmp, 'two', 'phantom');
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'helpers', 'hscr-cli.js'), 'phantom', '--out', dir, '--train', '1500', '--test', '0', '--seed', '1', '--size', '32', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const started = Date.now();
  while (!fs.existsSync(`${dir}.lock`) && Date.now() - started < 60_000) await new Promise((r) => setTimeout(r, 50));
  t.ok(fs.existsSync(`${dir}.lock`), 'the first writer holds the lock');
  const t0 = Date.now();
  await t.rejects(hscr('phantom', '--out', dir, '--train', '1500', '--test', '0', '--seed', '2', '--size', '32', '--quiet', '--overwrite'), { code: 'E_LOCKED', message: new RegExp(`pid ${child.pid}`) });
  t.ok(Date.now() - t0 < 1000, 'refused at once');
  t.equal(await exited, 0, `the first writer exits 0 ${stderr}`);
  const ids = jsonLines<{ id: string }>(path.join(dir, 'train.jsonl')).map((r) => r.id);
  t.equal(ids.length, 1500);
  t.equal(new Set(ids).size, 1500, 'no duplicate ids');
  t.notOk(fs.existsSync(`${dir}.lock`), 'lock released');
});

t.test('phantom --out <existing dataset> refuses without --overwrite', async (t) => {
  const dir = path.join(tmp, 'ds');
  await hscr('phantom', '--out', dir, '--train', '4', '--test', '4', '--seed', '1', '--quiet');
  const before = snapshot(dir);
  await t.rejects(hscr('phantom', '--out', dir, '--train', '4', '--test', '4', '--seed', '2', '--quiet'), { code: 'E_ARG', message: /already holds a dataset \(meta\.json, train\.jsonl, test\.jsonl\): pass --overwrite/ });
  t.same(snapshot(dir), before, 'the dataset is untouched');
  for (const only of ['train.jsonl', 'test.jsonl']) {
    const partial = path.join(tmp, `partial-${only}`);
    fs.mkdirSync(partial);
    fs.writeFileSync(path.join(partial, only), '{"id":"mine"}\n');
    await t.rejects(hscr('phantom', '--out', partial, '--train', '1', '--test', '1', '--seed', '1', '--quiet'), { code: 'E_ARG' }, `a folder with only ${only}`);
    t.equal(fs.readFileSync(path.join(partial, only), 'utf8'), '{"id":"mine"}\n');
  }
  await hscr('phantom', '--out', dir, '--train', '4', '--test', '4', '--seed', '2', '--quiet', '--overwrite');
  t.equal(JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')).seed, 2, '--overwrite replaces it');
});
