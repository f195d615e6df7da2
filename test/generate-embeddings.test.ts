/**
 * lib/model/embeddings.ts: word vectors for the re-ranking = the mean of the model's input embedding rows of
 * the word's tokens, read from the checkpoint in any layout and dtype.
 */
import t from 'tap';
import { MISTRAL_TOKENIZER, needShared, sharedPath } from './helpers/shared';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { embeddingMatrix, loadWordVectors, tokenEmbeddingWordVectors } from '../lib/model/embeddings';
import { loadTokenizer } from '../lib/model/tokenizer';
import { initModel } from '../lib/cli/model';
import { readSafetensors } from '../lib/model/safetensors';
import { tensor, toBfloat16Bits, fromBfloat16Bits } from '../lib/tensor';

const MISTRAL = sharedPath(MISTRAL_TOKENIZER);

t.test('a word split into several tokens gets the mean of their rows; unknown words have no vector', { skip: needShared(MISTRAL_TOKENIZER) }, async (t) => {
  const tokenizer = await loadTokenizer(MISTRAL);
  const dim = 3;
  // Small integers plus quarters: every sum and mean below is exact in float32.
  const value = (id: number, j: number) => (id % 101) + j / 4;
  const values = Float32Array.from({ length: 32000 * dim }, (_, i) => value(Math.floor(i / dim), i % dim));
  const vectors = tokenEmbeddingWordVectors(embeddingMatrix(tensor(values, [32000, dim])), tokenizer);
  const ids = tokenizer.encode('spleen', { addBos: false });
  t.ok(ids.length >= 2, 'spleen is several tokens in Mistral’s vocabulary');
  const mean = (j: number) => ids.reduce((a, id) => a + value(id, j), 0) / ids.length;
  t.same(Array.from(vectors.vector('spleen')!), [0, 1, 2].map(mean));
  const lung = tokenizer.encode('lung', { addBos: false });
  t.same(Array.from(vectors.vector('lung')!), [0, 1, 2].map((j) => value(lung[0], j)));
  t.equal(vectors.vector(''), undefined);
});

t.test('bfloat16 and float16 tables decode to their float values', async (t) => {
  const values = Float32Array.from([0.5, -2, 1.25, 65504, 3e-5, -0.125]);
  const bf = embeddingMatrix(tensor(toBfloat16Bits(values), [2, 3], 'bfloat16'));
  t.same(Array.from(bf.row(1)), Array.from(fromBfloat16Bits(toBfloat16Bits(values)).subarray(3)));
  const half = tensor(values, [2, 3]).to('float16');
  const f16 = embeddingMatrix(half);
  t.same(Array.from(f16.row(0)), [0.5, -2, 1.25]);
  t.equal(f16.row(1)[0], 65504);
  t.ok(Math.abs(f16.row(1)[1] - 3e-5) < 1e-7, 'subnormal half');
  t.throws(() => f16.row(2), { code: 'E_ARG' });
});

t.test('loadWordVectors reads the embedding of a saved model in both layouts', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-embeddings-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const layout of ['llava-hf', 'llava-med'] as const) {
    const modelDir = path.join(dir, layout);
    await initModel({ preset: 'tiny', out: modelDir, seed: 4, layout });
    const tokenizer = await loadTokenizer(modelDir);
    const key = layout === 'llava-hf' ? 'language_model.model.embed_tokens.weight' : 'model.embed_tokens.weight';
    const table = (await readSafetensors(path.join(modelDir, 'model.safetensors'))).tensors[key];
    const dim = table.shape[1];
    const id = tokenizer.encode('liver', { addBos: false })[0];
    const row = (table.toArray() as Float32Array).slice(id * dim, (id + 1) * dim);
    const vectors = await loadWordVectors(modelDir);
    t.same(Array.from(vectors.vector('liver')!), Array.from(row), `${layout}: the model's own row`);
    t.equal(vectors.vector('zebra'), undefined, `${layout}: a word outside the vocabulary`);
  }
  await t.rejects(loadWordVectors(path.join(dir, 'nowhere')), { code: 'E_IO' });
});
