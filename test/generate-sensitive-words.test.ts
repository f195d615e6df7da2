/**
 * bench/sensitive-words.ts (acceptance 2's measurement): the word a token belongs to, the scene categories,
 * the tally, and a run on a tiny random model (the number itself is measured on an SFT'd model).
 */
import t from 'tap';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { formatReport, measureSensitiveWords, sceneCategory, tallySensitiveWords, wordOfToken } from '../bench/sensitive-words';
import { initModel } from '../lib/cli/model';
import { generatePhantom } from '../lib/data/phantom';

t.test('a token belongs to the word its ▁-run spells; x-ray splits into its word pieces', async (t) => {
  const tokens = ['▁coronal', '▁sple', 'en', '▁chest', '▁x', '-', 'ray', '▁', '</s>'];
  t.equal(wordOfToken(tokens, 0), 'coronal');
  t.equal(wordOfToken(tokens, 1), 'spleen');
  t.equal(wordOfToken(tokens, 2), 'spleen');
  t.equal(wordOfToken(tokens, 4), 'x');
  t.equal(wordOfToken(tokens, 6), 'ray');
  t.equal(sceneCategory('Spleen'), 'organ');
  t.equal(sceneCategory('ray'), 'modality');
  t.equal(sceneCategory('coronal'), 'plane');
  t.equal(sceneCategory('lungs'), 'organ');
  t.equal(sceneCategory('showing'), undefined);
  t.equal(sceneCategory('lesions'), undefined);
});

t.test('the tally counts scene and other words, and the chance rate over eligible tokens', async (t) => {
  const lines = [
    { tokens: ['▁yes', '▁', '</s>'], sensitive: [{ position: 0 }] },
    { tokens: ['▁the', '▁left', '▁lung', '▁', '</s>'], sensitive: [{ position: 2 }, { position: 0 }, { position: 1 }] },
  ];
  const r = tallySensitiveWords(lines, (line) => line.tokens.map((tok) => (/^▁[a-z]+$/.test(tok) ? 1 : 0)));
  t.same(
    { positions: r.positions, onScene: r.onScene, byCategory: r.byCategory, otherWords: r.otherWords, eligible: r.eligible, eligibleOnScene: r.eligibleOnScene },
    { positions: 4, onScene: 3, byCategory: { 'yes/no': 1, organ: 1, side: 1 }, otherWords: [['the', 1]], eligible: 4, eligibleOnScene: 3 },
  );
  // Only the second line mixes scene and other words; its most sensitive token is "lung" (2 of its 3 are scene words).
  t.same(r.top1, { samples: 1, onScene: 1, chance: 2 / 3 });
  t.match(formatReport(r), /on scene words .*: 3 = 75\.0%/);
});

t.test('measured on a tiny random model and phantom records', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-sensitive-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await initModel({ preset: 'tiny', out: path.join(dir, 'model'), seed: 2 });
  await generatePhantom({ outDir: path.join(dir, 'data'), train: 6, test: 0, seed: 1 });
  const r = await measureSensitiveWords({ model: path.join(dir, 'model'), data: path.join(dir, 'data', 'train.jsonl'), limit: 5, n: 4 });
  t.equal(r.samples, 5);
  t.ok(r.positions >= 5 && r.positions <= 5 * 4, 'one to n positions per sample');
  t.equal(Object.values(r.byCategory).reduce((a, b) => a + b, 0), r.onScene);
  t.equal(r.otherWords.reduce((a, [, k]) => a + k, 0), r.positions - r.onScene);
  t.ok(r.eligible >= r.positions && r.eligibleOnScene <= r.eligible && r.eligibleOnScene > 0);
  t.ok(r.top1.onScene <= r.top1.samples && r.top1.samples <= r.samples && r.top1.chance >= 0 && r.top1.chance <= 1);
});
