/**
 * Word vectors from a model's own input token embeddings, for the re-ranking's word similarity (paper §3.2,
 * lib/rerank/similarity.ts): a word's vector is the mean of the embedding rows of the tokens the model's
 * tokenizer splits it into. No extra model is needed, and "left"/"right" are as near as the model has them.
 */
import { HscrError } from '../errors';
import { fromBfloat16Bits } from '../tensor';
import type { Tensor } from '../native';
import type { WordVectors } from '../rerank/similarity';
import { detectLayout, fromInternalKey } from './keys';
import { checkpointShards, readSafetensors, safetensorsKeys } from './safetensors';
import { loadTokenizer, type HscrTokenizer } from './tokenizer';

const EMBEDDING = 'language_model.model.embed_tokens.weight';

/** float16 bits → float32 (IEEE 754 half: subnormals, infinities and NaN included). */
function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** Rows of the [vocab, hidden] embedding matrix as float32, decoded from the stored dtype on demand. */
export interface EmbeddingMatrix {
  rows: number;
  dim: number;
  row(id: number): Float32Array;
}

/** Keeps the checkpoint's own dtype in memory (a 7B model's bf16 table is 262 MB, not 524 MB as float32). */
export function embeddingMatrix(t: Tensor): EmbeddingMatrix {
  if (t.shape.length !== 2) throw new HscrError('the token embedding must be a [vocab, hidden] matrix', 'E_CHECKPOINT', t.shape);
  const [rows, dim] = t.shape;
  const data = t.toArray();
  let row: (id: number) => Float32Array;
  if (t.dtype === 'float32') row = (id) => (data as Float32Array).slice(id * dim, (id + 1) * dim);
  else if (t.dtype === 'bfloat16') row = (id) => fromBfloat16Bits((data as Uint16Array).slice(id * dim, (id + 1) * dim));
  else if (t.dtype === 'float16') row = (id) => Float32Array.from((data as Uint16Array).subarray(id * dim, (id + 1) * dim), halfToFloat);
  else if (t.dtype === 'float64') row = (id) => Float32Array.from((data as Float64Array).subarray(id * dim, (id + 1) * dim));
  else throw new HscrError('the token embedding must be a floating-point tensor', 'E_CHECKPOINT', t.dtype);
  return {
    rows,
    dim,
    row: (id) => {
      if (!Number.isInteger(id) || id < 0 || id >= rows) throw new HscrError(`token id outside the embedding's ${rows} rows`, 'E_ARG', id);
      return row(id);
    },
  };
}

/**
 * Word vectors over an embedding matrix and its tokenizer. A word is tokenised as it stands inside a
 * sentence (after a space); special and unknown tokens do not count, and a word made only of them has no vector.
 */
export function tokenEmbeddingWordVectors(matrix: EmbeddingMatrix, tokenizer: HscrTokenizer): WordVectors {
  const cache = new Map<string, Float32Array | undefined>();
  const compute = (word: string): Float32Array | undefined => {
    const ids = tokenizer.encode(word, { addBos: false }).filter((id) => id !== tokenizer.unkId && !tokenizer.isSpecial(id) && id < matrix.rows);
    if (ids.length === 0) return undefined;
    const mean = new Float32Array(matrix.dim);
    for (const id of ids) {
      const r = matrix.row(id);
      for (let i = 0; i < mean.length; i++) mean[i] += r[i];
    }
    for (let i = 0; i < mean.length; i++) mean[i] /= ids.length;
    return mean;
  };
  return {
    vector(word: string) {
      if (!cache.has(word)) cache.set(word, compute(word));
      return cache.get(word);
    },
  };
}

/** The checkpoint file and key holding the input token embedding, in whichever layout the folder uses. */
async function findEmbedding(modelDir: string): Promise<{ file: string; key: string }> {
  const shards = await checkpointShards(modelDir);
  const keysByFile = await Promise.all(shards.map(async (file) => ({ file, keys: (await safetensorsKeys(file)).map((e) => e.name) })));
  const key = fromInternalKey(detectLayout(keysByFile.flatMap((f) => f.keys)), EMBEDDING);
  const holder = keysByFile.find((f) => f.keys.includes(key));
  if (!holder) throw new HscrError(`${modelDir}: the checkpoint has no token embedding ${key}`, 'E_CHECKPOINT', key);
  return { file: holder.file, key };
}

/** Word vectors from <modelDir>'s token embeddings and tokenizer (what `hscr rerank --model` uses). */
export async function loadWordVectors(modelDir: string): Promise<WordVectors> {
  const tokenizer = await loadTokenizer(modelDir);
  const { file, key } = await findEmbedding(modelDir);
  const tensors = (await readSafetensors(file)).tensors;
  return tokenEmbeddingWordVectors(embeddingMatrix(tensors[key]), tokenizer);
}
