/**
 * `hscr ablate` / `hscr demo` reuse a stage's outputs only when its manifest says they were made with the
 * settings the stage uses now and from the same inputs (lib/pipeline/manifest.ts): a rerun with the same
 * config does nothing, a changed setting redoes its stage and what depends on it, and nothing else; a folder
 * without manifests (an earlier hscr) is redone with a log line that says why.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ABLATION_DEFAULTS, runAblation } from '../lib/train/ablate';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-ablate-manifests-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const root = path.join(tmp, 'run');
const seedDir = path.join(root, 'seed-1');

// Tiny sizes: every stage of the main table runs, in about 20 s on one core.
const base = {
  seeds: [1],
  phantom: { train: 48, test: 16, val: 0, seed: 7, size: 64, instruct: { train: 24, val: 0, test: 8 } },
  pretrain: { epochs: 1, batch: 8 },
  sft: { epochs: 1, batch: 8 },
  generate: { k: 2, n: 4, batch: 8, limit: 8 },
  train: { lr: ABLATION_DEFAULTS.train.lr, epochs: 1, batch: 4 },
  eval: { batch: 16, maxNewTokens: 16, bootstrap: 100 },
  control: { kind: 'swap', limit: 8, lr: null as number | null, pairs: null as number | null },
  tables: ['main'],
};
type Config = typeof base;
/** Each test starts from the config the one before left the folder in. */
let current: Config = base;

async function ablate(config: Config): Promise<string[]> {
  const lines: string[] = [];
  await runAblation({ config, outDir: root, quiet: true, log: (l) => lines.push(l) });
  return lines;
}

const sha = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const adapter = (key: string) => path.join(seedDir, 'runs', key, 'adapter', 'adapter_model.safetensors');
const watched = () => ({
  sft: path.join(seedDir, 'sft', 'model', 'model.safetensors'),
  dpo: adapter('dpo'),
  hscr: adapter('hscr'),
  oracle: adapter('oracle'),
  ...Object.fromEntries(['sft', 'dpo', 'hscr', 'oracle'].map((k) => [`eval ${k}`, path.join(seedDir, 'eval', k, 'results.json')])),
});
const mtimes = () => Object.fromEntries(Object.entries(watched()).map(([k, f]) => [k, fs.statSync(f).mtimeMs]));
/** The stage part of each log line: "seed 1: train oracle (dpo) (settings changed)" → "train oracle". */
const stageOf = (line: string) => line.replace(/^seed \d+: /, '').replace(/ \(.*$/, '');

t.test('a rerun with the same config skips every stage', async (t) => {
  const first = await ablate(base);
  t.ok(first.some((l) => l.startsWith('seed 1: SFT')) && first.some((l) => l.startsWith('phantom data')), 'the first run ran the stages');
  t.equal(first.filter((l) => l.startsWith('seed 1: train ')).length, 3, 'dpo, oracle and hscr trained');
  const before = mtimes();
  t.same(await ablate(base), [], 'no stage line the second time');
  t.same(mtimes(), before, 'no model, adapter or result rewritten');
  t.ok(fs.existsSync(path.join(root, 'pipeline', 'phantom.manifest.json')), 'the data manifest in <out>/pipeline');
  t.ok(fs.existsSync(path.join(seedDir, 'pipeline', 'train-hscr.manifest.json')), "a seed's manifests in <out>/seed-N/pipeline");
});

t.test('eval.bootstrap (only the tables use it) reruns no stage', async (t) => {
  const before = mtimes();
  t.same(await ablate({ ...base, eval: { ...base.eval, bootstrap: 150 } }), [], 'no stage line');
  t.same(mtimes(), before, 'nothing retrained or re-evaluated');
});

t.test('control.limit redoes only the oracle: its data, training, accuracies, evaluation, Figure 4', async (t) => {
  const before = mtimes();
  const oracleBefore = sha(adapter('oracle'));
  const pairsBefore = fs.readFileSync(path.join(seedDir, 'prefs', 'oracle-absence', 'binary.jsonl'), 'utf8').trim().split('\n').length;
  current = { ...current, control: { ...current.control, limit: 20 } };
  const lines = await ablate(current);
  t.same(lines.map(stageOf).sort(), ['evaluate oracle', 'figure 4 oracle', 'oracle data', 'train oracle', 'training-list accuracies oracle'], lines.join('\n'));
  t.match(lines.find((l) => l.includes('oracle data')), /settings changed/, 'the reason: its settings changed');
  t.match(lines.find((l) => l.includes('train oracle')), /inputs changed: prefs/, 'training follows from its new input');
  const pairsAfter = fs.readFileSync(path.join(seedDir, 'prefs', 'oracle-absence', 'binary.jsonl'), 'utf8').trim().split('\n').length;
  t.ok(pairsAfter > pairsBefore, `oracle pairs ${pairsBefore} → ${pairsAfter}`);
  t.not(sha(adapter('oracle')), oracleBefore, 'a different oracle adapter');
  const after = mtimes();
  for (const k of ['sft', 'dpo', 'hscr', 'eval sft', 'eval dpo', 'eval hscr']) t.equal(after[k], before[k], `${k} untouched`);
  t.ok(after['eval oracle'] > before['eval oracle'], 'the oracle re-evaluated');
});

t.test('control.pairs keeps the first pairs and redoes only the oracle', async (t) => {
  const file = path.join(seedDir, 'prefs', 'oracle-absence', 'binary.jsonl');
  const all = fs.readFileSync(file, 'utf8').trim().split('\n');
  current = { ...current, control: { ...current.control, pairs: 5 } };
  const lines = await ablate(current);
  t.ok(lines.map(stageOf).includes('oracle data') && !lines.some((l) => /train (dpo|hscr)|SFT/.test(l)), lines.join('\n'));
  t.same(fs.readFileSync(file, 'utf8').trim().split('\n'), all.slice(0, 5), 'the first 5 of the same pairs');
});

t.test("train.lr: DPO and HSCR retrain; the oracle only when its own lr (control.lr, else train.lr) changed", async (t) => {
  const lr = ABLATION_DEFAULTS.train.lr;
  current = { ...current, control: { ...current.control, lr } };
  t.same(await ablate(current), [], 'control.lr set to the value train.lr gave it: the same oracle, nothing redone');
  const before = mtimes();
  current = { ...current, train: { ...current.train, lr: 2 * lr } };
  const lines = await ablate(current);
  const expected = ['dpo', 'hscr'].flatMap((k) => [`train ${k}`, `training-list accuracies ${k}`, `evaluate ${k}`, `figure 4 ${k}`]);
  t.same(lines.map(stageOf).sort(), expected.sort(), lines.join('\n'));
  const after = mtimes();
  for (const k of ['sft', 'oracle', 'eval sft', 'eval oracle']) t.equal(after[k], before[k], `${k} untouched`);
  for (const k of ['dpo', 'hscr']) t.ok(after[k] > before[k], `${k} retrained`);
});

t.test('phantom.instruct.test: new prompts, every evaluation redone, no training (the training splits are the same bytes)', async (t) => {
  const cfg = current;
  const data = (f: string) => path.join(root, 'phantom', f);
  const trainingData = ['train.jsonl', 'instruct-train.jsonl', 'sft.jsonl', 'alignment.jsonl', 'sft-captions.jsonl'];
  const shasBefore = trainingData.map((f) => sha(data(f)));
  const before = mtimes();
  current = { ...cfg, phantom: { ...cfg.phantom, instruct: { ...cfg.phantom.instruct, test: 12 } } };
  const lines = await ablate(current);
  t.equal(fs.readFileSync(data('instruct-test.jsonl'), 'utf8').trim().split('\n').length, 12, '12 instruction test prompts');
  t.same(trainingData.map((f) => sha(data(f))), shasBefore, 'training splits byte for byte the same');
  const expected = ['phantom data', ...['sft', 'dpo', 'oracle', 'hscr'].flatMap((k) => [`evaluate ${k}`, `figure 4 ${k}`])];
  t.same(lines.map(stageOf).sort(), expected.sort(), lines.join('\n'));
  t.match(lines.find((l) => l.includes('evaluate sft')), /inputs changed: instructTest/);
  const after = mtimes();
  for (const k of ['sft', 'dpo', 'hscr', 'oracle']) t.equal(after[k], before[k], `${k} not retrained`);
  const predictions = fs.readFileSync(path.join(seedDir, 'eval', 'hscr', 'predictions.jsonl'), 'utf8').trim().split('\n');
  t.equal(predictions.length, 16 + 12, 'predictions for 16 VQA + 12 instruction items');
});

t.test('eval.figure4Items redoes only Figure 4, on the first prompts', async (t) => {
  const before = mtimes();
  current = { ...current, eval: { ...current.eval, figure4Items: 5 } as Config['eval'] };
  const lines = await ablate(current);
  t.same(lines.map(stageOf).sort(), ['sft', 'dpo', 'oracle', 'hscr'].map((k) => `figure 4 ${k}`).sort(), lines.join('\n'));
  const ids = fs.readFileSync(path.join(root, 'phantom', 'instruct-test.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).id);
  for (const f of ['figure4.json', 'figure4.blank.json']) {
    t.same(JSON.parse(fs.readFileSync(path.join(seedDir, 'eval', 'hscr', f), 'utf8')).map((g: { id: string }) => g.id), ids.slice(0, 5), `${f}: the first 5 prompts`);
  }
  t.same(mtimes(), before, 'no training or evaluation redone');
});

t.test('a folder without manifests (an earlier hscr) is redone, with a line naming the stage and why', async (t) => {
  const cfg = current;
  fs.rmSync(path.join(root, 'pipeline'), { recursive: true });
  fs.rmSync(path.join(seedDir, 'pipeline'), { recursive: true });
  const before = mtimes();
  const lines = await ablate(cfg);
  for (const stage of ['phantom data', 'initial model', 'vision-alignment pretraining', 'SFT', 'train hscr', 'evaluate hscr']) {
    const line = lines.find((l) => stageOf(l) === stage);
    t.match(line, /outputs without a manifest, from an earlier hscr or a stopped run: redone; not finished before/, `${stage}: ${line}`);
  }
  const after = mtimes();
  for (const k of Object.keys(before)) t.ok(after[k] > before[k], `${k} rewritten`);
  t.same(await ablate(cfg), [], 'and then reused');
});

t.test('the on-policy control keeps its first control.pairs pairs and stops asking the model then', async (t) => {
  const dir = path.join(seedDir, 'prefs', 'oracle-onpolicy-corrected');
  const read = () => ({ stats: JSON.parse(fs.readFileSync(path.join(dir, 'stats.json'), 'utf8')), pairs: fs.readFileSync(path.join(dir, 'binary.jsonl'), 'utf8').trim().split('\n') });
  current = { ...current, control: { ...current.control, kind: 'onPolicy', limit: 24, pairs: null } };
  const lines = await ablate(current);
  t.ok(lines.some((l) => stageOf(l) === 'on-policy oracle data') && !lines.some((l) => ['SFT', 'train dpo', 'train hscr'].includes(stageOf(l))), lines.join('\n'));
  const all = read();
  t.equal(all.stats.entries, 24, 'no cap: every entry answered');
  t.ok(all.pairs.length >= 1, `${all.pairs.length} pairs`);
  // Batches of 4 (eval.batch, which the on-policy answers use too), so that stopping early shows.
  current = { ...current, control: { ...current.control, pairs: 1 }, eval: { ...current.eval, batch: 4 } };
  await ablate(current);
  const one = read();
  t.same(one.pairs, all.pairs.slice(0, 1), 'the first pair of the uncapped run');
  // The model is asked batch by batch until it has the pair.
  const ids = fs.readFileSync(path.join(root, 'phantom', 'instruct-train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).id);
  const at = ids.indexOf(JSON.parse(one.pairs[0]).id);
  t.equal(one.stats.entries, 4 * (Math.floor(at / 4) + 1), `the first pair is entry ${at}: answered ${one.stats.entries} of 24`);
  t.ok(one.stats.entries < 24, 'it stopped before the last entry');
});
