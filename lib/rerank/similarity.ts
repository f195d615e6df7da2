/**
 * Text similarity for HSCR's re-ranking (paper §3.2), offline and without an extra model:
 * Corley & Mihalcea (2005), "Measuring the semantic similarity of texts":
 *
 *   sim(T1,T2) = ½ · ( Σ_{w∈T1} maxSim(w,T2)·idf(w) / Σ_{w∈T1} idf(w)
 *                    + Σ_{w∈T2} maxSim(w,T1)·idf(w) / Σ_{w∈T2} idf(w) )
 *
 * with maxSim(w,T) the best word similarity of w to any word of T. As in Corley & Mihalcea, word similarity
 * comes from WordNet (lib/rerank/wordnet.ts: Wu & Palmer for nouns and verbs, lexical match otherwise), so
 * "left"/"right" or "liver"/"spleen" are near but not equal; rerankFile uses it by default. Words WordNet
 * lacks fall back to exact match, or to the cosine of the model's token embeddings (embeddingWordSimilarity)
 * when a model is given. corleyMihalcea itself defaults to exact match, so it needs no database.
 */
import { HscrError } from '../errors';

/** Similarity of two texts; higher = more alike. Any such function can replace the default. */
export type TextSimilarity = (a: string, b: string) => number;
/** Similarity of two (lower-case) words, 1 for the same word. */
export type WordSimilarity = (a: string, b: string) => number;

/** Word vectors, e.g. built from the model's token embeddings (lib/model/embeddings.ts). */
export interface WordVectors {
  vector(word: string): Float32Array | undefined;
}

/** Lower-case words, split on anything that is not a letter or a digit. */
export function words(text: string): string[] {
  return text.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((w) => w !== '');
}

/** Word similarity that only knows "same word" (1) and "different word" (0). */
export const exactWordSimilarity: WordSimilarity = (a, b) => (a === b ? 1 : 0);

function norm(v: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i] * v[i];
  return Math.sqrt(sum);
}

const PAIR_CACHE_LIMIT = 1_000_000;

/**
 * Cosine of word vectors, clamped at 0 so every term of the formula stays in [0, 1] as in Corley &
 * Mihalcea, whose word measures are all non-negative. The same word is 1; a word without a vector
 * (or with a zero vector) only matches itself.
 */
export function embeddingWordSimilarity(vectors: WordVectors): WordSimilarity {
  const norms = new Map<string, { v: Float32Array; n: number } | undefined>();
  const lookup = (word: string) => {
    if (!norms.has(word)) {
      const v = vectors.vector(word);
      const n = v ? norm(v) : 0;
      norms.set(word, v && n > 0 ? { v, n } : undefined);
    }
    return norms.get(word);
  };
  const cosine = (a: string, b: string): number => {
    const va = lookup(a);
    const vb = lookup(b);
    if (!va || !vb) return 0;
    if (va.v.length !== vb.v.length) throw new HscrError(`word vectors of "${a}" and "${b}" differ in length`, 'E_ARG', [va.v.length, vb.v.length]);
    let dot = 0;
    for (let i = 0; i < va.v.length; i++) dot += va.v[i] * vb.v[i];
    return Math.max(0, dot / (va.n * vb.n));
  };
  // The k answers of a sample share most of their words with y_w, so the same pairs come back k times;
  // a 4096-wide dot product costs far more than a look-up. Bounded so a huge file cannot grow it forever.
  return cachedWordSimilarity(cosine);
}

/**
 * A symmetric word similarity, memoised per unordered pair (1 for the same word). Bounded so a huge file
 * cannot grow the cache forever.
 */
export function cachedWordSimilarity(compute: WordSimilarity): WordSimilarity {
  const pairs = new Map<string, number>();
  return (a, b) => {
    if (a === b) return 1;
    const key = a < b ? `${a}\0${b}` : `${b}\0${a}`;
    let s = pairs.get(key);
    if (s === undefined) {
      s = compute(a, b);
      if (pairs.size >= PAIR_CACHE_LIMIT) pairs.clear();
      pairs.set(key, s);
    }
    return s;
  };
}

/** Inverse document frequencies over a corpus of texts (each text one document). */
export interface Idf {
  idf(word: string): number;
}

/**
 * idf(w) = ln((1 + N) / (1 + df(w))) + 1, the smoothed form: every weight is > 0, so a word that occurs in
 * every answer still counts a little and a text of such words never divides 0 by 0; an unseen word
 * (df = 0) gets ln(1 + N) + 1, the largest idf the corpus can give.
 */
export function idfFromCorpus(texts: Iterable<string>): Idf {
  const df = new Map<string, number>();
  let documents = 0;
  for (const text of texts) {
    documents++;
    for (const w of new Set(words(text))) df.set(w, (df.get(w) ?? 0) + 1);
  }
  if (documents === 0) throw new HscrError('idfFromCorpus: the corpus is empty', 'E_ARG', documents);
  const unseen = Math.log(1 + documents) + 1;
  return { idf: (w) => (df.has(w) ? Math.log((1 + documents) / (1 + (df.get(w) as number))) + 1 : unseen) };
}

export interface CorleyMihalceaOptions {
  idf: Idf;
  /** Defaults to exact match; pass embeddingWordSimilarity(vectors) for the paper-like default. */
  wordSimilarity?: WordSimilarity;
}

/** Σ best·idf / Σ idf over the words of one text: how well they are covered by the other text. */
function coverage(textWords: string[], best: number[], idf: Idf): number {
  let weighted = 0;
  let total = 0;
  textWords.forEach((w, i) => {
    const weight = idf.idf(w);
    weighted += best[i] * weight;
    total += weight;
  });
  return weighted / total;
}

/**
 * Corley–Mihalcea text similarity in [0, 1] (for word similarities in [0, 1]); symmetric. Two texts
 * without words are equal (1); one text without words is unlike any other (0). The word similarity is
 * taken to be symmetric, so each word pair is scored once and serves both directions.
 */
export function corleyMihalcea(opts: CorleyMihalceaOptions): TextSimilarity {
  const wordSimilarity = opts.wordSimilarity ?? exactWordSimilarity;
  return (a, b) => {
    const wa = words(a);
    const wb = words(b);
    if (wa.length === 0 || wb.length === 0) return wa.length === wb.length ? 1 : 0;
    const bestA = new Array<number>(wa.length).fill(0);
    const bestB = new Array<number>(wb.length).fill(0);
    wa.forEach((w, i) =>
      wb.forEach((u, j) => {
        const s = wordSimilarity(w, u);
        bestA[i] = Math.max(bestA[i], s);
        bestB[j] = Math.max(bestB[j], s);
      }),
    );
    return 0.5 * (coverage(wa, bestA, opts.idf) + coverage(wb, bestB, opts.idf));
  };
}
