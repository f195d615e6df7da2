/**
 * One-attribute swaps of a correct answer, checked by the judge: the rejected answers of the oracle DPO
 * positive control and the "hallucinated answer" of the Figure-4 measure. A swap replaces one attribute
 * word (size, shape, side, organ, modality, plane, count) by another value of the same attribute, so the
 * answer reads as fluently as before and is wrong about the image in exactly one respect — what the
 * known scene makes possible and what HSCR's self-generated answers only approximate.
 */
import type { PhantomScene } from '../data/phantom/scene';
import { Rng } from '../data/prng';
import { judgeAnswer } from './judge';

const ALTERNATIVES: Record<string, string[]> = {
  small: ['large'],
  large: ['small'],
  round: ['oval', 'irregular'],
  oval: ['round', 'irregular'],
  irregular: ['round', 'oval'],
  left: ['right'],
  right: ['left'],
  upper: ['lower'],
  lower: ['upper'],
  liver: ['spleen'],
  spleen: ['liver'],
  ct: ['mri'],
  mri: ['ct'],
  axial: ['coronal'],
  coronal: ['axial'],
  one: ['two'],
  two: ['three', 'one'],
  three: ['two'],
  no: ['one'],
  'x-ray': ['ct', 'mri'],
  pathology: ['ct', 'mri'],
};

export interface Swap {
  text: string;
  from: string;
  to: string;
  /** Word index swapped (whitespace-separated words of the answer). */
  word: number;
}

/**
 * Up to `max` distinct one-word swaps that the judge scores as at least one more hallucinated attribute
 * than the original, in a seeded random order. "one" as a pronoun ("a small one") is not swapped.
 */
export function attributeSwaps(answer: string, scene: PhantomScene, rng: Rng, max = 1): Swap[] {
  const words = answer.split(' ');
  const wrongBefore = judgeAnswer(answer, scene).claims.filter((c) => !c.correct).length;
  const spots = words.flatMap((w, i) => {
    const bare = w.replace(/[^a-z-]/g, '');
    if (!(bare in ALTERNATIVES)) return [];
    if (bare === 'one' && i > 0 && /^(a|small|large|round|oval|irregular)$/.test(words[i - 1])) return [];
    return ALTERNATIVES[bare].map((to) => ({ i, bare, to }));
  });
  for (let i = spots.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [spots[i], spots[j]] = [spots[j], spots[i]];
  }
  const out: Swap[] = [];
  const seen = new Set<string>();
  for (const s of spots) {
    if (out.length >= max) break;
    const copy = words.slice();
    copy[s.i] = words[s.i].replace(s.bare, s.to);
    // Keep the article right ("an axial" → "a coronal") so the swap is wrong only about the image.
    if (s.i > 0 && (words[s.i - 1] === 'a' || words[s.i - 1] === 'an')) copy[s.i - 1] = /^[aeiou]|^mri|^x-ray/.test(s.to) ? 'an' : 'a';
    const text = copy.join(' ');
    if (seen.has(text)) continue;
    const wrong = judgeAnswer(text, scene).claims.filter((c) => !c.correct).length;
    if (wrong <= wrongBefore) continue;
    seen.add(text);
    out.push({ text, from: s.bare, to: s.to, word: s.i });
  }
  return out;
}

/**
 * The inverse of attributeSwaps, for the on-policy oracle control: one-word replacements (the same
 * alternatives) applied greedily, each the one that removes the most wrong claims without losing a right one,
 * until the judge finds nothing wrong. Returns the corrected text, or undefined when the answer cannot be made
 * fully right this way (a wrong count written as a list of locations, a lesion denied as "no lesion …").
 */
export function correctAnswer(answer: string, scene: PhantomScene, maxEdits = 6): string | undefined {
  const score = (text: string) => {
    const claims = judgeAnswer(text, scene).claims;
    return { wrong: claims.filter((c) => !c.correct).length, right: claims.filter((c) => c.correct).length };
  };
  let words = answer.split(' ');
  let cur = score(answer);
  for (let edit = 0; edit < maxEdits && cur.wrong > 0; edit++) {
    let best: { words: string[]; wrong: number; right: number } | undefined;
    words.forEach((w, i) => {
      const bare = w.replace(/[^a-z-]/g, '');
      if (!(bare in ALTERNATIVES)) return;
      if (bare === 'one' && i > 0 && /^(a|small|large|round|oval|irregular)$/.test(words[i - 1])) return;
      for (const to of ALTERNATIVES[bare]) {
        const copy = words.slice();
        copy[i] = w.replace(bare, to);
        if (i > 0 && (words[i - 1] === 'a' || words[i - 1] === 'an')) copy[i - 1] = /^[aeiou]|^mri|^x-ray/.test(to) ? 'an' : 'a';
        const s = score(copy.join(' '));
        if (s.wrong < cur.wrong && s.right >= cur.right && (!best || s.wrong < best.wrong || (s.wrong === best.wrong && s.right > best.right))) best = { words: copy, ...s };
      }
    });
    if (!best) return undefined;
    words = best.words;
    cur = { wrong: best.wrong, right: best.right };
  }
  return cur.wrong === 0 ? words.join(' ') : undefined;
}
