/**
 * The engine's plain parts: configs and their defaults, the data order and its sharding over ranks, the
 * launcher's command line and environment, the metrics file on resume, checkpoint folders, and the
 * ablation's config and table.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HSCR_DEFAULTS } from '../lib/config';
import { ABLATION_DEFAULTS, formatAblation, meanStd, resolveAblationConfig, tableRows } from '../lib/train/ablate';
import { identityDifference, latestCheckpoint, listCheckpoints, pruneCheckpoints, removeStaleTemps } from '../lib/train/checkpoint';
import { resolveMlpoConfig, resolveSftConfig } from '../lib/train/config';
import { distEnvFrom, stripLauncherFlags } from '../lib/train/launcher';
import { epochOrder, planSteps, rankShare, stepIndices } from '../lib/train/loop';
import { MetricsLog, readMetrics } from '../lib/train/metrics';
import { selectRejected } from '../lib/train/mlpo';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-engine-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

t.test('configs take the paper’s defaults and refuse bad values with the value', async (t) => {
  const c = resolveMlpoConfig({ modelDir: 'm', outputDir: 'o' });
  t.match(c, { learningRate: HSCR_DEFAULTS.lr, gamma: 0.1, epochs: 2, batchPerDevice: 2, weightDecay: 0, lrSchedule: 'cosine', warmupRatio: HSCR_DEFAULTS.warmupRatio, maxRejected: 3 });
  t.match(c.lora, { r: 16, alpha: 32, dropout: 0.05, scope: 'language_model' });
  t.equal(resolveSftConfig({ modelDir: 'm', outputDir: 'o' }).learningRate, HSCR_DEFAULTS.sftLr);
  t.match(resolveMlpoConfig({ modelDir: 'm', outputDir: 'o', loss: 'explicit' }), { lambdaExplicit: 1, lambdaImplicit: 0 });
  t.match(resolveMlpoConfig({ modelDir: 'm', outputDir: 'o', loss: 'implicit' }), { lambdaExplicit: 0, lambdaImplicit: 1 });
  t.match(resolveMlpoConfig({ modelDir: 'm', outputDir: 'o', loss: 'dpo' }), { lambdaImplicit: 0, maxRejected: 1 });
  t.throws(() => resolveMlpoConfig({ modelDir: 'm', outputDir: 'o', gamma: -1 }), { code: 'E_ARG', value: -1 });
  t.throws(() => resolveMlpoConfig({ modelDir: 'm', outputDir: 'o', loss: 'ipo' as 'dpo' }), { code: 'E_ARG', value: 'ipo' });
  t.throws(() => resolveSftConfig({ modelDir: 'm', outputDir: 'o', device: 'tpu' }), { code: 'E_ARG', value: 'tpu' });
  t.throws(() => resolveSftConfig({ modelDir: 'm', outputDir: 'o', lora: { targets: ['q proj'] } }), { code: 'E_ARG' });
  t.throws(() => resolveMlpoConfig({ modelDir: 'm', outputDir: 'o', implicitSchedule: { kind: 'linear-warmin', steps: 0 } }), { code: 'E_ARG', value: 0 });
});

t.test('data order: every epoch a permutation fixed by (seed, epoch); ranks split each step', async (t) => {
  const cfg = resolveSftConfig({ modelDir: 'm', outputDir: 'o', batchPerDevice: 2, gradAccum: 2, epochs: 2 });
  const plan = planSteps(19, cfg, 2);
  t.match(plan, { globalBatch: 8, stepsPerEpoch: 3, totalSteps: 6, warmupSteps: 1 });
  const e0 = epochOrder(19, 5, 0);
  t.same([...e0].sort((a, b) => a - b), Array.from({ length: 19 }, (_, i) => i), 'a permutation');
  t.same(epochOrder(19, 5, 0), e0, 'the same for the same seed and epoch');
  t.not(epochOrder(19, 5, 1).join(), e0.join(), 'another epoch, another order');
  t.not(epochOrder(19, 6, 0).join(), e0.join(), 'another seed, another order');
  const epoch = [0, 1, 2].flatMap((s) => stepIndices(s, 19, plan, 5));
  t.same(epoch, e0, 'the steps of an epoch walk its order; the last step is short');
  t.equal(stepIndices(2, 19, plan, 5).length, 3);
  const step = stepIndices(0, 19, plan, 5);
  t.same([...rankShare(step, 0, 2), ...rankShare(step, 1, 2)], step, 'the ranks’ shares make up the step');
  t.same(rankShare([1, 2, 3], 1, 2), [3]);
  t.same(rankShare([1], 1, 2), [], 'a rank may get nothing on a short last step');
  t.equal(planSteps(19, { ...cfg, maxSteps: 10 }, 1).totalSteps, 10, 'maxSteps wins');
  t.throws(() => planSteps(0, cfg, 1), { code: 'E_DATA' });
});

t.test('launcher: flags stripped for the ranks; torchrun variables read', async (t) => {
  t.same(stripLauncherFlags(['x.js', 'sft', '--nproc', '2', '--master-port=1234', '--lr', '1', '--nnodes', '1', '--node-rank=0', '--master-addr', 'h']), ['x.js', 'sft', '--lr', '1']);
  t.equal(distEnvFrom({}), null, 'no RANK: not a rank');
  t.same(distEnvFrom({ RANK: '3', WORLD_SIZE: '4', LOCAL_RANK: '1', MASTER_ADDR: 'node0', MASTER_PORT: '29400' }), {
    rank: 3,
    worldSize: 4,
    localRank: 1,
    localWorldSize: 4,
    masterAddr: 'node0',
    masterPort: 29400,
  });
  t.throws(() => distEnvFrom({ RANK: '4', WORLD_SIZE: '4' }), { code: 'E_DIST' });
  t.throws(() => distEnvFrom({ RANK: 'x', WORLD_SIZE: '4' }), { code: 'E_DIST', value: 'x' });
});

t.test('metrics file: a fresh run starts empty; a resumed one keeps the steps up to its checkpoint', async (t) => {
  const file = path.join(tmp, 'metrics.jsonl');
  const log = MetricsLog.open(file, 0);
  for (let s = 1; s <= 5; s++) log.write({ step: s, loss: 1 / s });
  fs.appendFileSync(file, '{"step": 6, "lo');
  MetricsLog.open(file, 3).write({ step: 4, loss: NaN });
  t.same(readMetrics(file), [{ step: 1, loss: 1 }, { step: 2, loss: 0.5 }, { step: 3, loss: 1 / 3 }, { step: 4, loss: null }], 'steps past 3 and the partial line gone; NaN written as null');
  MetricsLog.open(file, 0);
  t.same(readMetrics(file), []);
});

t.test('checkpoint folders: newest complete one wins; temps removed; old ones pruned', async (t) => {
  const out = path.join(tmp, 'run');
  for (const step of [2, 4, 6]) {
    fs.mkdirSync(path.join(out, `checkpoint-${step}`), { recursive: true });
    fs.writeFileSync(path.join(out, `checkpoint-${step}`, 'trainer_state.json'), '{}');
  }
  fs.mkdirSync(path.join(out, 'checkpoint-8'));
  fs.mkdirSync(path.join(out, '.checkpoint-8.tmp-123'));
  t.equal(latestCheckpoint(out), path.join(out, 'checkpoint-6'), 'checkpoint-8 has no trainer_state.json: not complete');
  removeStaleTemps(out);
  t.notOk(fs.existsSync(path.join(out, '.checkpoint-8.tmp-123')));
  pruneCheckpoints(out, 2);
  t.same(listCheckpoints(out).map((c) => c.step), [4, 6]);
  t.equal(identityDifference({ lr: 1, seed: 2 }, { lr: 1, seed: 2 }), null);
  t.match(identityDifference({ lr: 1, seed: 2 }, { lr: 3, seed: 2 }), /lr: 1 in the checkpoint, 3 now/);
});

t.test('dpo keeps the least similar answer; mlpo the first j', async (t) => {
  t.same(selectRejected(4, 'dpo', 3), [3]);
  t.same(selectRejected(4, 'mlpo', 3), [0, 1, 2]);
  t.same(selectRejected(2, 'implicit', 3), [0, 1]);
  t.same(selectRejected(0, 'mlpo', 3), []);
});

t.test('ablation config and tables', async (t) => {
  const c = resolveAblationConfig({ seeds: [1, 2], tables: ['main', 'ratio'], phantom: { train: 10 } });
  t.equal(c.phantom.train, 10);
  t.equal(c.phantom.test, ABLATION_DEFAULTS.phantom.test, 'sections merge over the defaults');
  t.throws(() => resolveAblationConfig({ tabels: [] }, 'a.json'), { code: 'E_CONFIG', message: /a\.json: "tabels"/ });
  t.throws(() => resolveAblationConfig({ ratios: [0.7, 1.5] }), { code: 'E_CONFIG' });
  const rows = tableRows(c);
  t.same(rows.main.map((v) => v.key), ['sft', 'dpo', 'oracle', 'hscr'], 'the oracle-DPO positive control sits beside the baselines');
  t.same(rows.ratio.map((v) => v.key), ['hscr-token-0.3', 'hscr-token-0.5', 'hscr', 'hscr-token-0.9'], 'the default ratio is the main HSCR run');
  const s = meanStd([0.5, 0.7, 0.6])!;
  t.ok(Math.abs(s.mean - 0.6) < 1e-12 && Math.abs(s.std - 0.1) < 1e-12, 'sample std');
  const text = formatAblation(c, ['main'], [
    { seed: 1, key: 'sft', closed: 0.5, open: 0.25 },
    { seed: 2, key: 'sft', closed: 0.7, open: 0.35 },
    { seed: 1, key: 'hscr', closed: 0.6, open: null, explicitAccuracy: 0.9 },
  ]);
  t.match(text, /\| SFT \| 30\.00 ± 7\.07 \| 60\.00 ± 14\.14 \| – \| – \| – \| – \|/);
  t.match(text, /\| HSCR \| – \| 60\.00 ± 0\.00 \| – \| – \| – \| 90\.00 ± 0\.00 \/ – \|/);
  t.match(text, /\| DPO \(binary\) \| – \| – \|/);
});
