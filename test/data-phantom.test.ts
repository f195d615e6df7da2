import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { generatePhantom, phantomItems, phantomCorpus, renderScene, describeScene, FAMILY_NAMES, type PhantomScene } from '../lib/data/phantom';
import { loadDataset } from '../lib/data';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'hscr-phantom-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

async function pixels(file: string): Promise<{ data: Buffer; width: number; channels: number; format?: string }> {
  const img = sharp(file);
  const meta = await img.metadata();
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, channels: info.channels, format: meta.format };
}

function centroid(mask: (i: number) => boolean, size: number): { x: number; y: number; n: number } {
  let [x, y, n] = [0, 0, 0];
  for (let i = 0; i < size * size; i++) {
    if (!mask(i)) continue;
    x += (i % size) + 0.5;
    y += Math.floor(i / size) + 0.5;
    n++;
  }
  return { x: x / n, y: y / n, n };
}

t.test('same seed, byte-identical files; another seed, other bytes', async (t) => {
  const opts = { train: 24, test: 24, seed: 42, priorBias: 0.8 };
  const a = await generatePhantom({ ...opts, outDir: path.join(tmp, 'a') });
  const b = await generatePhantom({ ...opts, outDir: path.join(tmp, 'b') });
  const c = await generatePhantom({ ...opts, seed: 43, outDir: path.join(tmp, 'c') });
  t.equal(a.files.length, 3 + 48);
  t.same(a.files, b.files);
  t.same(a.files.filter((f) => !readFileSync(path.join(tmp, 'a', f)).equals(readFileSync(path.join(tmp, 'b', f)))), [], 'every file identical');
  t.notOk(readFileSync(path.join(tmp, 'a', 'test.jsonl')).equals(readFileSync(path.join(tmp, 'c', 'test.jsonl'))));
  const more = phantomItems('test', 24, 42);
  const fewerTrain = await generatePhantom({ ...opts, train: 3, outDir: path.join(tmp, 'd') });
  t.same(fewerTrain.test.map((r) => r.question), more.map((i) => i.record.question), 'the test split does not depend on --train');
});

t.test('images are PNGs whose pixels are the scene; lesions sit where the scene says', async (t) => {
  const dir = path.join(tmp, 'px');
  const { test } = await generatePhantom({ outDir: dir, train: 0, test: 80, seed: 5 });
  const items = phantomItems('test', 80, 5);
  let checked = 0;
  for (const [k, rec] of test.entries()) {
    const scene = rec.scene!;
    const img = await pixels(rec.image);
    t.equal(img.format, 'png');
    t.equal(img.width, 64);
    t.equal(img.channels, 3);
    t.ok(img.data.equals(renderScene(scene, items[k].renderSeed)), `${rec.id}: lossless`);
    if (scene.findings.length !== 1) continue;
    const f = scene.findings[0];
    const empty = renderScene({ ...scene, findings: [] }, items[k].renderSeed);
    const c = centroid((i) => img.data[i * 3] !== empty[i * 3] || img.data[i * 3 + 2] !== empty[i * 3 + 2], 64);
    const half = { right: c.x < 32, left: c.x > 32, upper: c.y < 32, lower: c.y > 32 }[f.side];
    t.ok(half, `${rec.id}: ${f.side} ${f.organ ?? ''} lesion found at (${c.x.toFixed(1)}, ${c.y.toFixed(1)}) (patient's right = image left)`);
    t.ok(Math.hypot(c.x - f.cx, c.y - f.cy) < 2.5, `${rec.id}: centroid near the scene's centre`);
    t.ok(c.n > 20, `${rec.id}: lesion covers ${c.n} px, more than a third of an 8-px patch`);
    checked++;
  }
  t.ok(checked >= 15, `checked ${checked} single-lesion images`);
});

t.test('an MRI lesion is the brightest thing in the picture and on the stated side', async (t) => {
  const items = phantomItems('test', 400, 11).filter((i) => i.record.scene!.modality === 'mri' && i.record.scene!.findings.length === 1);
  t.ok(items.length >= 10);
  for (const item of items.slice(0, 12)) {
    const scene = item.record.scene!;
    const rgb = renderScene(scene, item.renderSeed);
    const c = centroid((i) => rgb[i * 3] > 230, 64);
    const f = scene.findings[0];
    t.equal(c.x < 32 ? 'right' : 'left', f.side, `${item.record.id}: bright blob on the patient's ${f.side}`);
  }
});

t.test('answers follow the scene; test balanced; --prior-bias skews train only', async (t) => {
  const share = (items: ReturnType<typeof phantomItems>, family: string, answer: string) => {
    const f = items.filter((i) => i.record.family === family);
    return f.filter((i) => i.record.answer === answer).length / f.length;
  };
  const test = phantomItems('test', 3000, 1);
  const biased = phantomItems('train', 3000, 1, 64, 0.9);
  for (const [family, favoured, fair] of [['presence', 'yes', 0.5], ['location-closed', 'yes', 0.5], ['size', 'large', 0.5], ['count', '1', 0.25], ['modality', 'ct', 0.25]] as const) {
    t.ok(Math.abs(share(test, family, favoured) - fair) < 0.12, `test ${family}: ${favoured} ≈ ${fair}`);
    t.ok(share(biased, family, favoured) > 0.8, `biased train ${family}: ${favoured} > 0.8`);
  }
  t.same([...new Set(test.map((i) => i.record.family))].sort(), [...FAMILY_NAMES].sort(), 'every family is asked');
  const wrong: string[] = [];
  const expect = (ok: boolean, what: string) => void (ok || wrong.push(what));
  for (const { record: r } of test) {
    const s = r.scene!;
    const n = s.findings.length;
    if (r.family === 'count') expect(r.answer === String(n), r.id);
    if (r.family === 'presence') expect(r.answer === (n > 0 ? 'yes' : 'no'), r.id);
    if (r.family === 'modality') expect(r.answer === s.modality, r.id);
    if (r.family === 'description') expect(r.answer === describeScene(s), r.id);
    if (['location', 'organ', 'size', 'shape', 'location-closed', 'size-closed'].includes(r.family!)) expect(n === 1, `${r.id}: one finding for ${r.family}`);
    if (r.family === 'location') expect(r.answer === s.findings[0].side, r.id);
    if (r.family === 'organ') expect(r.answer === s.findings[0].organ, r.id);
    if (r.family === 'plane') expect(r.answer === s.plane && (s.modality === 'ct' || s.modality === 'mri'), r.id);
  }
  t.same(wrong, [], 'every answer agrees with its scene');
});

t.test('short answers, descriptions at most 12 words, corpus covers everything', async (t) => {
  const corpus = phantomCorpus();
  const words = new Set(corpus.words);
  const problems: string[] = [];
  for (const { record: r } of phantomItems('test', 1500, 9)) {
    const n = r.answer.split(' ').length;
    if (r.family === 'description' ? n > 12 : n > 6) problems.push(`${r.id}: ${n} words`);
    for (const w of `${r.question} ${r.answer}`.replace(/([?.])/g, ' $1 ').split(/\s+/).filter(Boolean)) if (!words.has(w)) problems.push(`"${w}" not in the corpus`);
    if (!corpus.answers.includes(r.answer)) problems.push(`${r.id}: answer not listed`);
  }
  t.same(problems, []);
  t.ok(Math.max(...corpus.answers.map((a) => a.split(' ').length)) <= 12);
});

t.test('findings of one scene never overlap', async (t) => {
  const scenes: PhantomScene[] = phantomItems('test', 600, 3).map((i) => i.record.scene!).filter((s) => s.findings.length > 1);
  t.ok(scenes.length > 50);
  let touching = 0;
  for (const s of scenes) {
    for (let i = 0; i < s.findings.length; i++) {
      for (let j = i + 1; j < s.findings.length; j++) {
        const [a, b] = [s.findings[i], s.findings[j]];
        if (Math.hypot(a.cx - b.cx, a.cy - b.cy) <= a.r + b.r) touching++;
      }
    }
  }
  t.equal(touching, 0);
});

t.test('bad options: E_ARG, nothing written', async (t) => {
  const out = path.join(tmp, 'never');
  await t.rejects(generatePhantom({ outDir: out, train: -1, test: 1, seed: 1 }), { code: 'E_ARG' });
  await t.rejects(generatePhantom({ outDir: out, train: 1, test: 1, seed: 1.5 }), { code: 'E_ARG' });
  await t.rejects(generatePhantom({ outDir: out, train: 1, test: 1, seed: 1, priorBias: 1.5 }), { code: 'E_ARG', value: 1.5 });
  await t.rejects(generatePhantom({ outDir: out, train: 1, test: 1, seed: 1, size: 8 }), { code: 'E_ARG' });
  t.notOk(existsSync(out));
});

t.test('the written JSONL loads back as the hscr format with its scenes', async (t) => {
  const dir = path.join(tmp, 'load');
  const r = await generatePhantom({ outDir: dir, train: 5, test: 7, seed: 2, size: 96 });
  const loaded = await loadDataset(path.join(dir, 'test.jsonl'));
  t.equal(loaded.format, 'hscr');
  t.same(loaded.records, r.test);
  t.equal((await sharp(r.test[0].image).metadata()).width, 96);
});
