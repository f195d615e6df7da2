import t from 'tap';
import { MISTRAL_TOKENIZER, SHARED_DIR, needShared } from './helpers/shared';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readModelConfig, type ModelConfig } from '../lib/model/config';
import { clipPreprocessing, readPreprocessing } from '../lib/model/image';
import { writeInitFiles } from '../lib/model/init-files';
import { PRESET_INFO, defaultMistralTokenizerDir, parameterCount, presetConfig } from '../lib/model/presets';
import { HscrTokenizer, buildCorpusTokenizer, corpusTokenizerConfig, corpusWords, loadTokenizer } from '../lib/model/tokenizer';

type TapTest = Parameters<Extract<Parameters<typeof t.test>[0], (...a: never[]) => unknown>>[0];

const SHARED = SHARED_DIR;

function tempDir(t: TapTest): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-init-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Every question and answer of the three shared benchmarks: the largest corpus a test would use. */
function benchmarkWords(): string[] {
  const texts: string[] = [];
  for (const name of ['trainset.json', 'testset.json']) {
    for (const r of JSON.parse(fs.readFileSync(path.join(SHARED, 'data/vqa-rad', name), 'utf8')) as Array<{ question: string; answer: unknown }>) {
      texts.push(r.question, String(r.answer));
    }
  }
  for (const name of ['train.json', 'test.json']) {
    for (const r of JSON.parse(fs.readFileSync(path.join(SHARED, 'data/slake', name), 'utf8')) as Array<{ question: string; answer: string }>) {
      texts.push(r.question, r.answer);
    }
  }
  return texts.flatMap(corpusWords);
}

/** The parameter count written out layer by layer, independently of expectedParameters(). */
function countByHand(cfg: ModelConfig): number {
  const v = cfg.vision;
  const linear = (i: number, o: number, bias = true) => i * o + (bias ? o : 0);
  const patches = (v.imageSize / v.patchSize) ** 2;
  const visionLayer = 4 * linear(v.hiddenSize, v.hiddenSize) + 2 * 2 * v.hiddenSize + linear(v.hiddenSize, v.intermediateSize) + linear(v.intermediateSize, v.hiddenSize);
  const vision = v.hiddenSize * v.numChannels * v.patchSize ** 2 + v.hiddenSize + (patches + 1) * v.hiddenSize + 2 * v.hiddenSize + v.numLayers * visionLayer;
  const d = cfg.text.hiddenSize;
  const projector = linear(v.hiddenSize, d) + (cfg.projector.type === 'mlp2x_gelu' ? linear(d, d) : 0);
  const q = cfg.text.numHeads * cfg.text.headDim;
  const kv = cfg.text.numKvHeads * cfg.text.headDim;
  const textLayer = linear(d, q, false) + 2 * linear(d, kv, false) + linear(q, d, false) + 3 * linear(d, cfg.text.intermediateSize, false) + 2 * d;
  const embeddings = cfg.text.vocabSize * d * (cfg.text.tieWordEmbeddings ? 1 : 2);
  return vision + projector + cfg.text.numLayers * textLayer + d + embeddings;
}

t.test('parameterCount: the shapes\' sum, and the presets within their budgets', async (t) => {
  for (const cfg of [presetConfig('tiny', { vocabSize: 777 }), presetConfig('small', { vocabSize: 32000 }), { ...presetConfig('tiny', { vocabSize: 5 }), projector: { type: 'linear' as const } }]) {
    t.equal(parameterCount(cfg), countByHand(cfg));
  }
  const tinyMax = parameterCount(presetConfig('tiny', { vocabSize: PRESET_INFO.tiny.maxVocab }));
  t.ok(tinyMax <= 2_000_000, `tiny at its largest vocabulary (${PRESET_INFO.tiny.maxVocab}): ${tinyMax}`);
  const small = parameterCount(presetConfig('small', { vocabSize: 32000 }));
  t.ok(small >= 20_000_000 && small <= 40_000_000, `small with the Mistral vocabulary: ${small}`);
  t.throws(() => presetConfig('huge' as never, { vocabSize: 10 }), { code: 'E_ARG', value: 'huge' });
  t.throws(() => presetConfig('tiny', { vocabSize: 0 }), { code: 'E_ARG', value: 0 });
});

t.test('hscr init files, tiny preset from a corpus: everything reads back', { skip: needShared('data/vqa-rad/trainset.json', 'data/vqa-rad/testset.json', 'data/slake/train.json', 'data/slake/test.json') }, async (t) => {
  const dir = path.join(tempDir(t), 'model');
  const words = benchmarkWords();
  const cfg = await writeInitFiles(dir, { preset: 'tiny', corpusWords: words, slidingWindow: 16 });
  t.same(fs.readdirSync(dir).sort(), ['config.json', 'preprocessor_config.json', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
  t.same(readModelConfig(dir), cfg);
  const tokenizer = await loadTokenizer(dir);
  t.equal(cfg.text.vocabSize, tokenizer.vocabSize);
  const uncapped = new HscrTokenizer(buildCorpusTokenizer(words), corpusTokenizerConfig()).vocabSize;
  t.equal(tokenizer.vocabSize, Math.min(uncapped, PRESET_INFO.tiny.maxVocab), `the corpus' ${uncapped} pieces, capped at ${PRESET_INFO.tiny.maxVocab}`);
  t.same([cfg.imageTokenIndex, cfg.text.padTokenId, cfg.text.bosTokenId, cfg.text.eosTokenId], [tokenizer.imageTokenId, tokenizer.padId, 1, 2]);
  t.equal(cfg.text.slidingWindow, 16);
  t.equal(cfg.architecture, 'llava-hf');
  t.same(readPreprocessing(dir), clipPreprocessing(64, 'pad'));
  const count = parameterCount(cfg);
  t.ok(count <= 2_000_000, `${count} parameters`);
  t.equal(tokenizer.decode(tokenizer.encode('Is there a mass in the left lung?'), { skipSpecial: true }), 'Is there a mass in the left lung?');
});

t.test('hscr init files, small preset: the real Mistral tokenizer, copied unchanged; LLaVA-Med layout', { skip: needShared(MISTRAL_TOKENIZER) }, async (t) => {
  const dir = tempDir(t);
  const cfg = await writeInitFiles(dir, { preset: 'small', layout: 'llava-med' });
  t.equal(defaultMistralTokenizerDir(), path.join(SHARED, 'models/mistral-7b-tokenizer'));
  for (const name of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
    t.ok(fs.readFileSync(path.join(dir, name)).equals(fs.readFileSync(path.join(defaultMistralTokenizerDir(), name))), `${name} copied byte for byte`);
  }
  t.same(readModelConfig(dir), cfg);
  t.same([cfg.architecture, cfg.text.vocabSize, cfg.imageTokenIndex, cfg.text.padTokenId, cfg.text.tieWordEmbeddings], ['llava-med', 32000, -200, null, true]);
  const count = parameterCount(cfg);
  t.ok(count >= 20_000_000 && count <= 40_000_000, `${count} parameters`);
});

t.test('bad options fail before anything is written; an existing model is kept unless overwrite', async (t) => {
  const root = tempDir(t);
  const fresh = path.join(root, 'fresh');
  await t.rejects(writeInitFiles(fresh, { preset: 'tiny' }), { code: 'E_ARG' });
  await t.rejects(writeInitFiles(fresh, { preset: 'tiny', corpusWords: ['a'], tokenizerDir: defaultMistralTokenizerDir() }), { code: 'E_ARG' });
  await t.rejects(writeInitFiles(fresh, { preset: 'tiny', corpusWords: ['a'], layout: 'gguf' as never }), { code: 'E_ARG', value: 'gguf' });
  await t.rejects(writeInitFiles(fresh, { preset: 'small', tokenizerDir: path.join(root, 'nothing') }), { code: 'E_IO' });
  t.notOk(fs.existsSync(fresh), 'nothing written');
  const existing = path.join(root, 'existing');
  await writeInitFiles(existing, { preset: 'tiny', corpusWords: ['lung'] });
  const before = fs.readFileSync(path.join(existing, 'config.json'), 'utf8');
  await t.rejects(writeInitFiles(existing, { preset: 'tiny', corpusWords: ['heart', 'lung'] }), { code: 'E_ARG' });
  t.equal(fs.readFileSync(path.join(existing, 'config.json'), 'utf8'), before);
  const replaced = await writeInitFiles(existing, { preset: 'tiny', corpusWords: ['heart', 'lung'], overwrite: true });
  t.equal(replaced.text.vocabSize, readModelConfig(existing).text.vocabSize);
  t.not(fs.readFileSync(path.join(existing, 'config.json'), 'utf8'), before);
});
