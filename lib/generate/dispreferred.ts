/**
 * Dispreferred answers y_l of growing wrongness from the native kernel's output (paper §3.1).
 *
 * The paper says y_l are made by replacing modality-coupled tokens with tokens the image does not
 * support, but not how many tokens each of the k answers replaces. hscr's documented reading:
 *
 * - schedule 'spread' (default): y_l_i replaces the ceil(i·n/k) most sensitive positions, so the k answers
 *   span the whole range from one-or-few to all n replacements whatever k is (n = number of sensitive
 *   positions the kernel returned). With n = 10, k = 6: 2, 4, 5, 7, 9, 10.
 * - schedule 'prefix': y_l_i replaces the i most sensitive positions (the example), capped at n.
 *
 * Each replaced position takes its first usable candidate: the lowest contrastive score, i.e. the token
 * the image supports least among those the language model finds plausible. A candidate is unusable when
 * it is the ground-truth token or renders to the same token string (a swap nobody could see). When the
 * whole detokenised answer still equals y_w or an earlier y_l (k > n, or the tokenizer merges the change
 * away), the least sensitive replaced position moves on to its next candidate, then the next less
 * sensitive one, and so on; an answer that no such move makes new is dropped, so fewer than k may come back.
 */
import { HSCR_DEFAULTS } from '../config';
import { HscrError } from '../errors';
import type { Candidate, KernelOutput, Replacement } from './types';

export type ReplacementSchedule = 'spread' | 'prefix';

export interface DispreferredOptions {
  /** Number of dispreferred answers wanted (paper's k). */
  k: number;
  schedule?: ReplacementSchedule;
  /**
   * Which replacement tokens may be used (default: all). The pipeline passes the same screen as for the
   * sensitive positions: no special tokens and no tokens without a letter or digit ("!", "=", "~"), whose
   * swap changes how an answer reads, not what it says about the image.
   */
  usable?: (id: number) => boolean;
}

/** How many of the n sensitive positions y_l_i (i = 1..k) replaces. */
export function replacementCount(i: number, n: number, k: number, schedule: ReplacementSchedule): number {
  return schedule === 'spread' ? Math.ceil((i * n) / k) : Math.min(i, n);
}

function argError(what: string, value: unknown): HscrError {
  return new HscrError(`buildDispreferred: ${what}`, 'E_ARG', value);
}

function isTokenId(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0;
}

function checkKernelOutput(out: KernelOutput): void {
  const { answerTokenIds, positions, shifts, candidates, scores } = out;
  if (!Array.isArray(answerTokenIds) || !answerTokenIds.every(isTokenId)) throw argError('answerTokenIds must be token ids', answerTokenIds);
  if (!Array.isArray(positions)) throw argError('positions must be an array', positions);
  for (const [name, arr] of [['shifts', shifts], ['candidates', candidates], ['scores', scores]] as const) {
    if (!Array.isArray(arr) || arr.length !== positions.length) {
      throw argError(`${name} must have one entry per sensitive position (${positions.length})`, arr);
    }
  }
  const seen = new Set<number>();
  positions.forEach((p, i) => {
    if (!isTokenId(p) || p >= answerTokenIds.length) throw argError(`positions[${i}] is not an index into answerTokenIds`, p);
    if (seen.has(p)) throw argError(`positions[${i}] repeats position ${p}`, p);
    seen.add(p);
    checkCandidates(candidates[i], scores[i], i);
  });
}

function checkCandidates(ids: number[], scores: number[], i: number): void {
  if (!Array.isArray(ids) || !ids.every(isTokenId)) throw argError(`candidates[${i}] must be token ids`, ids);
  if (!Array.isArray(scores) || scores.length !== ids.length) throw argError(`scores[${i}] must have one score per candidate`, scores);
  for (let c = 0; c < scores.length; c++) {
    if (!Number.isFinite(scores[c])) throw argError(`scores[${i}][${c}] is not finite`, scores[c]);
    if (c > 0 && scores[c] < scores[c - 1]) throw argError(`scores[${i}] must be ascending`, scores[i]);
  }
}

interface Slot {
  position: number;
  fromId: number;
  from: string;
  /** Indexes into the kernel's candidate list, usable ones only, in kernel order. */
  usable: number[];
  ids: number[];
  scores: number[];
}

function buildSlots(out: KernelOutput, tokenText: (id: number) => string, screen: (id: number) => boolean): Slot[] {
  return out.positions.map((position, i) => {
    const fromId = out.answerTokenIds[position];
    const from = tokenText(fromId);
    const usable = out.candidates[i].flatMap((id, c) => (id !== fromId && tokenText(id) !== from && screen(id) ? [c] : []));
    return { position, fromId, from, usable, ids: out.candidates[i], scores: out.scores[i] };
  });
}

/** choice[s] = index into slots[s].usable; slots without a usable candidate stay unreplaced. */
function render(out: KernelOutput, slots: Slot[], choice: number[], decode: (ids: number[]) => string, tokenText: (id: number) => string): Candidate {
  const ids = out.answerTokenIds.slice();
  const replacements: Replacement[] = [];
  choice.forEach((u, s) => {
    const slot = slots[s];
    if (u >= slot.usable.length) return;
    const c = slot.usable[u];
    const toId = slot.ids[c];
    ids[slot.position] = toId;
    replacements.push({ position: slot.position, from: slot.from, to: tokenText(toId), score: slot.scores[c], fromId: slot.fromId, toId });
  });
  return { text: decode(ids), replacements };
}

/** First choices, then single moves to later candidates from the least sensitive replaced slot upwards. */
function* choicesFor(slots: Slot[], count: number): Generator<number[]> {
  const first = new Array<number>(count).fill(0);
  yield first;
  for (let s = count - 1; s >= 0; s--) {
    for (let u = 1; u < slots[s].usable.length; u++) {
      const choice = first.slice();
      choice[s] = u;
      yield choice;
    }
  }
}

/**
 * Up to k dispreferred answers, in order of growing wrongness (more replaced positions), none equal to
 * y_w (= decode(answerTokenIds)) nor to each other. Throws E_ARG when the kernel output is malformed.
 */
export function buildDispreferred(
  kernelOut: KernelOutput,
  decode: (ids: number[]) => string,
  tokenText: (id: number) => string,
  opts: DispreferredOptions,
): Candidate[] {
  const { k } = opts;
  const schedule = opts.schedule ?? HSCR_DEFAULTS.dispreferredSchedule;
  if (!Number.isInteger(k) || k < 1) throw argError('k must be a positive integer', k);
  if (schedule !== 'spread' && schedule !== 'prefix') throw argError("schedule must be 'spread' or 'prefix'", schedule);
  checkKernelOutput(kernelOut);
  const n = kernelOut.positions.length;
  if (n === 0) return [];
  const slots = buildSlots(kernelOut, tokenText, opts.usable ?? (() => true));
  const seen = new Set([decode(kernelOut.answerTokenIds)]);
  const answers: Candidate[] = [];
  for (let i = 1; i <= k; i++) {
    const count = replacementCount(i, n, k, schedule);
    for (const choice of choicesFor(slots, count)) {
      const candidate = render(kernelOut, slots, choice, decode, tokenText);
      // A blank answer (a word swapped for a lone "▁") teaches nothing about the image: take the next choice.
      if (candidate.replacements.length === 0 || candidate.text.trim() === '' || seen.has(candidate.text)) continue;
      seen.add(candidate.text);
      answers.push(candidate);
      break;
    }
  }
  return answers;
}
