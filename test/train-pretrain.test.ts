/**
 * Issue 12: the vision-alignment pretraining stage that runs before SFT on the phantom benchmark — its
 * captions (one per training scan, the scene's description), its config checks, and that training on them
 * lowers the loss and makes the model tell a scan's true description from the same description with the
 * modality changed, better than chance.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PHANTOM_RECIPE_DEFAULTS } from '../lib/config';
import { initModel } from '../lib/cli/model';
import { ALIGNMENT_QUESTION, alignmentRecords, describeScene, phantomCorpus, phantomItems } from '../lib/data/phantom';
import { loadDataset } from '../lib/data/loaders';
import type { VqaRecord } from '../lib/data/types';
import { batchOf, disposeBundle, loadModelBundle } from '../lib/model/bundle';
import { ABLATION_DEFAULTS, ensurePhantom, pretrainVision, resolveAblationConfig } from '../lib/train/ablate';
import { readMetrics } from '../lib/train/metrics';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-pretrain-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

t.test('alignment captions: one per distinct scan, the scene description, a question the vocabulary holds', async (t) => {
  const records = phantomItems('train', 30, 5).map((i) => i.record);
  const withRepeat = [...records, { ...records[3], id: 'again', question: 'how big is the lesion?' }];
  const captions = alignmentRecords(withRepeat);
  t.equal(captions.length, 30, 'a scan seen twice is captioned once');
  t.same(captions.map((c) => c.image), records.map((r) => r.image), 'in first-seen order');
  for (const c of captions) {
    if (c.answer !== describeScene(c.scene!)) t.fail(`${c.id}: ${c.answer}`);
  }
  t.ok(captions.every((c) => c.question === ALIGNMENT_QUESTION && c.family === 'alignment' && c.id.startsWith('align-')));
  t.ok(phantomCorpus().questions.includes(ALIGNMENT_QUESTION), 'the question is one the tiny tokenizer was built from');
  t.ok(new Set(captions.map((c) => c.answer)).size > 10, 'captions differ with the scene');
  t.throws(() => alignmentRecords([{ ...records[0], scene: undefined }]), { code: 'E_DATA' });
});

t.test('pretrain settings: defaults from PHANTOM_RECIPE_DEFAULTS, bad values refused', async (t) => {
  t.same(ABLATION_DEFAULTS.pretrain, PHANTOM_RECIPE_DEFAULTS.pretrain);
  t.equal(resolveAblationConfig({ pretrain: { epochs: 0 } }).pretrain.epochs, 0, 'epochs 0 turns the stage off');
  t.equal(resolveAblationConfig({ pretrain: { epochs: 0 } }).pretrain.lr, PHANTOM_RECIPE_DEFAULTS.pretrain.lr, 'merged over the defaults');
  for (const bad of [{ epochs: -1 }, { epochs: 1.5 }, { lr: 0 }, { lr: -1e-3 }, { lr: Number.NaN }, { batch: 0 }, { captionsInSft: 'yes' }]) {
    t.throws(() => resolveAblationConfig({ pretrain: bad }, 'c.json'), { code: 'E_CONFIG', message: /c\.json: "pretrain\.(epochs|lr|batch|captionsInSft)"/ }, JSON.stringify(bad));
  }
});

/** P(X ≥ k) for X ~ Binomial(n, 1/2). */
function binomialTail(k: number, n: number): number {
  let p = 0;
  let c = 1; // C(n, 0)
  for (let i = 0; i <= n; i++) {
    if (i >= k) p += c / 2 ** n;
    c = (c * (n - i)) / (i + 1);
  }
  return p;
}

/** Log p of each record's answer (teacher-forced), in order. */
async function answerLogps(modelDir: string, records: VqaRecord[]): Promise<number[]> {
  const bundle = await loadModelBundle(modelDir);
  try {
    const batch = await batchOf(bundle, records);
    try {
      return [...(await bundle.model.logprobs(batch, { perturb: 'none' })).sums];
    } finally {
      batch.pixels.dispose();
    }
  } finally {
    disposeBundle(bundle);
  }
}

t.test('the stage lowers the caption loss and reads the scan kind from the image', async (t) => {
  const root = path.join(tmp, 'run');
  const c = resolveAblationConfig({ phantom: { train: 96, test: 0, val: 0, seed: 11, size: 64, instruct: { train: 0, val: 0, test: 0 } }, pretrain: { epochs: 12, lr: 3e-3, batch: 8 } });
  const files = await ensurePhantom(c, root);
  const captions = (await loadDataset(files.alignment, { format: 'hscr' })).records;
  t.equal(captions.length, 96, 'one caption per training scan');
  const init = path.join(tmp, 'init');
  await initModel({ preset: 'tiny', out: init, seed: 1 });
  const model = await pretrainVision(c.pretrain, files.alignment, init, path.join(tmp, 'pretrain'), 1);
  const metrics = readMetrics(path.join(tmp, 'pretrain', 'metrics.jsonl'));
  t.equal(metrics.length, 12 * 12, '12 steps per epoch');
  const mean = (xs: { loss: number }[]) => xs.reduce((a, m) => a + m.loss, 0) / xs.length;
  const [first, last] = [mean(metrics.slice(0, 12)), mean(metrics.slice(-12))];
  t.ok(last < 0.4 * first, `caption loss ${first.toFixed(3)} → ${last.toFixed(3)}`);
  // An attribute the image alone decides: CT vs MRI (same plane, region and findings, so the altered caption
  // differs in that one word). A model that ignored the image would prefer the true caption half the time.
  // Lesion size, shape and count take thousands of steps over thousands of scans (the recipe's 3 epochs over
  // 6,000: PHANTOM_RECIPE_DEFAULTS.pretrain); 48 scans × 14 epochs left them at chance (27 of 48 captions preferred to a size/presence swap).
  const scans = captions.filter((r) => r.scene!.modality === 'ct' || r.scene!.modality === 'mri');
  const altered = scans.map((r) => ({ ...r, answer: describeScene({ ...r.scene!, modality: r.scene!.modality === 'ct' ? 'mri' : 'ct' }) }));
  t.ok(scans.length >= 16 && altered.every((a, i) => a.answer !== scans[i].answer), `${scans.length} CT/MRI scans, each caption altered`);
  const [right, wrong] = [await answerLogps(model, scans), await answerLogps(model, altered)];
  const correct = right.filter((v, i) => v > wrong[i]).length;
  t.ok(binomialTail(correct, scans.length) < 0.01, `true modality preferred on ${correct} of ${scans.length} training scans (chance: half)`);
});
