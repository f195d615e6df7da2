/**
 * The phantom benchmark's instruction split, in the spirit of LLaVA-Med's instruction-tuning data (the data
 * HSCR samples its 2,000 preference entries from): free-text answers of 20–60 tokens about the scene, in
 * several phrasings and orders, single- and multi-turn, each stating several attributes of the scan
 * (modality, plane, region, presence/count, size, shape, organ, side, absence elsewhere).
 *
 * Language priors (documented, measurable). In the training split two attribute co-occurrences hold in most
 * scenes that have a single lesion:
 *   shape prior: a large lesion is irregular and a small lesion is round;
 *   side prior:  a single lesion in the chest lies in the right lung.
 * They hold in TRAIN_PRIOR_SHARE of the training scenes where they apply and are broken in the rest. The
 * validation and test splits break each applicable prior in exactly BREAK_SHARE of their scenes (a coin per
 * scene), and every record says which priors held or broke (`priors`), so an answer written from the prior
 * instead of the image is wrong exactly there and the judge can score those scenes apart.
 *
 * Multi-turn items follow LLaVA's flattening: the earlier turn (question and answer) is part of the prompt
 * and the record's answer is the last turn's.
 *
 * Tokens are counted as the corpus tokenizer counts them (a word, or one punctuation character).
 */
import { Rng } from '../prng';
import {
  MODALITIES,
  SHAPES,
  SIZES,
  sampleScene,
  type PhantomFinding,
  type PhantomModality,
  type PhantomRegion,
  type PhantomScene,
  type PhantomShape,
  type PhantomSize,
  type SceneConstraints,
} from './scene';

export type InstructionSplit = 'train' | 'val' | 'test';
export type PriorState = 'held' | 'broken';
export interface PriorStates {
  shape?: PriorState;
  side?: PriorState;
}

/** Share of applicable training scenes in which each prior holds. */
export const TRAIN_PRIOR_SHARE = 0.9;
/** Share of applicable validation/test scenes in which each prior is broken. */
export const BREAK_SHARE = 0.5;
/** Share of multi-turn items. */
export const MULTI_TURN_SHARE = 0.3;

export interface InstructionItem {
  question: string;
  answer: string;
  scene: PhantomScene;
  turns: 1 | 2;
  priors: PriorStates;
}

const PRIOR_SHAPE: Record<PhantomSize, PhantomShape> = { large: 'irregular', small: 'round' };

/** Prompts of a single-turn item (LLaVA-Med style: open requests for a description). */
const PROMPTS = [
  'describe the image in detail.',
  'what are the findings in this image?',
  'write a short report of this scan.',
  'what do you see in this image?',
  'describe what this image shows and any lesion.',
  'give a brief description of the scan and its findings.',
] as const;
const FIRST_TURNS = ['what kind of image is this?', 'what type of scan is shown?'] as const;
const FOLLOW_UPS = ['describe the findings.', 'what abnormality is seen, if any?', 'tell me about any lesion in it.'] as const;

const NUMBER_WORD = ['no', 'one', 'two', 'three'] as const;
const MODALITY_NOUN: Record<PhantomModality, string> = { ct: 'ct scan', mri: 'mri', 'x-ray': 'x-ray', pathology: 'pathology slide' };

/** "an axial …", "an mri …", "an x-ray …", "a ct …": by the first word's sound. */
function article(phrase: string): string {
  return /^([aeiou]|mri\b|x-ray\b)/.test(phrase) ? 'an' : 'a';
}

/** "axial ct scan of the chest", "chest x-ray", "pathology slide of tissue". */
function kindPhrase(scene: PhantomScene, rng: Rng): string {
  const noun = MODALITY_NOUN[scene.modality];
  if (scene.modality === 'pathology') return rng.pick(['pathology slide of tissue', 'histology slide of tissue']);
  if (scene.modality === 'x-ray') return rng.pick(['chest x-ray', 'x-ray of the chest', 'frontal x-ray of the chest']);
  return rng.pick([`${scene.plane} ${noun} of the ${scene.region}`, `${noun} of the ${scene.region} in the ${scene.plane} plane`]);
}

function kindSentence(scene: PhantomScene, rng: Rng): string {
  const kind = kindPhrase(scene, rng);
  return rng.pick([`this is ${article(kind)} ${kind}.`, `the image is ${article(kind)} ${kind}.`, `this image shows ${article(kind)} ${kind}.`]);
}

/** Where a finding lies: "right lung", "liver", "upper half of the slide". */
function place(f: PhantomFinding): string {
  if (!f.organ) return `${f.side} half of the slide`;
  if (f.organ === 'liver' || f.organ === 'spleen') return f.organ;
  return `${f.side} ${f.organ === 'brain' ? 'side of the brain' : f.organ}`;
}

/** The organ area (or slide half) across from a single finding: where the answer may state an absence. */
function otherPlace(f: PhantomFinding): string {
  if (!f.organ) return `${f.side === 'upper' ? 'lower' : 'upper'} half`;
  if (f.organ === 'liver') return 'spleen';
  if (f.organ === 'spleen') return 'liver';
  const other = f.side === 'left' ? 'right' : 'left';
  return f.organ === 'brain' ? `${other} side of the brain` : `${other} lung`;
}

function singleSentences(f: PhantomFinding, rng: Rng): string[] {
  const p = place(f);
  const main = rng.pick([
    [`there is a ${f.size} ${f.shape} lesion in the ${p}.`],
    [`a ${f.size} ${f.shape} lesion is seen in the ${p}.`],
    [`the ${p} shows ${article(f.shape)} ${f.shape} lesion, which is ${f.size}.`],
    [`one lesion is present.`, `it is ${f.size} and ${f.shape} and lies in the ${p}.`],
    [`there is one lesion, in the ${p}.`, `the lesion is ${f.shape} and ${f.size}.`],
  ]);
  if (rng.chance(0.6)) {
    const o = otherPlace(f);
    main.push(rng.pick([`the ${o} is clear.`, `no lesion is seen in the ${o}.`, `there is no lesion in the ${o}.`]));
  }
  return main;
}

function multiSentences(findings: PhantomFinding[], rng: Rng): string[] {
  const n = NUMBER_WORD[findings.length];
  const byPlace = new Map<string, number>();
  for (const f of findings) byPlace.set(place(f), (byPlace.get(place(f)) ?? 0) + 1);
  const places = [...byPlace].map(([p, k]) => `${NUMBER_WORD[k]} in the ${p}`);
  const list = places.length === 1 ? `all ${places[0].replace(/^\w+ /, '')}` : `${places.slice(0, -1).join(', ')} and ${places[places.length - 1]}`;
  return rng.pick([
    [`there are ${n} small round lesions, ${list}.`],
    [`${n} lesions are seen.`, `they are small and round, ${list}.`],
  ]);
}

function noneSentences(scene: PhantomScene, rng: Rng): string[] {
  const plural = scene.modality !== 'pathology';
  const where = plural ? `the ${scene.organs.length === 1 && scene.organs[0] === 'lung' ? 'lungs' : scene.organs.join(' and ')}` : 'the tissue';
  return rng.pick([
    [`there is no lesion.`, `${where} ${plural ? 'appear' : 'appears'} normal, with no mass.`],
    [`no lesion is seen in ${where}.`, `no abnormality is present in this image.`],
    [`${where} ${plural ? 'show' : 'shows'} no lesion and no abnormality.`, `the scan is normal.`],
  ]);
}

function findingSentences(scene: PhantomScene, rng: Rng): string[] {
  const n = scene.findings.length;
  if (n === 0) return noneSentences(scene, rng);
  if (n === 1) return singleSentences(scene.findings[0], rng);
  return multiSentences(scene.findings, rng);
}

/** The whole answer: kind then findings, or findings then kind ("… on this axial ct …"). */
export function answerText(scene: PhantomScene, rng: Rng, withKind: boolean): string {
  const findings = findingSentences(scene, rng);
  if (!withKind) {
    const kind = kindPhrase(scene, rng);
    return [...findings, `these are the findings on this ${kind}.`].join(' ');
  }
  const kind = kindSentence(scene, rng);
  const text = (rng.chance(0.7) ? [kind, ...findings] : [...findings, kind.replace(/^this is/, 'the scan is').replace(/^this image shows/, 'the scan is')]).join(' ');
  // The shortest phrasings fall just under 20 tokens: a closing remark (no attribute, the judge skips it) fills up.
  return tokenCount(text) < MIN_TOKENS ? `${text} ${CLOSING}` : text;
}

const MIN_TOKENS = 20;
/** States nothing about the scene (the judge reads it as a remark, not a claim). */
export const CLOSING = 'no other abnormality is seen.';

function priorState(rng: Rng, split: InstructionSplit): PriorState {
  return split === 'train' ? (rng.chance(TRAIN_PRIOR_SHARE) ? 'held' : 'broken') : rng.chance(BREAK_SHARE) ? 'broken' : 'held';
}

function drawCount(rng: Rng): number {
  const u = rng.float();
  return u < 0.15 ? 0 : u < 0.75 ? 1 : u < 0.9 ? 2 : 3;
}

/** A scene for an instruction item, with the priors imposed or broken as the split asks. */
function drawScene(rng: Rng, split: InstructionSplit, size: number): { scene: PhantomScene; priors: PriorStates } {
  const count = drawCount(rng);
  const modality = rng.pick(MODALITIES);
  const region: PhantomRegion = modality === 'pathology' ? 'tissue' : modality === 'x-ray' ? 'chest' : rng.pick(['head', 'chest', 'abdomen'] as const);
  if (count !== 1) return { scene: sampleScene(rng, size, { modality, region, count }), priors: {} };
  const priors: PriorStates = { shape: priorState(rng, split) };
  const sz = rng.pick(SIZES);
  const shape = priors.shape === 'held' ? PRIOR_SHAPE[sz] : rng.pick(SHAPES.filter((s) => s !== PRIOR_SHAPE[sz]));
  const c: SceneConstraints = { modality, region, count: 1, size: sz, shape };
  if (region === 'chest') {
    priors.side = priorState(rng, split);
    c.side = priors.side === 'held' ? 'right' : 'left';
  }
  return { scene: sampleScene(rng, size, c), priors };
}

/** One instruction item: a scene, a prompt (single- or two-turn) and its answer. */
export function drawInstruction(rng: Rng, split: InstructionSplit, size: number): InstructionItem {
  const { scene, priors } = drawScene(rng, split, size);
  if (rng.chance(MULTI_TURN_SHARE)) {
    const first = `${rng.pick(FIRST_TURNS)} ${kindSentence(scene, rng)}`;
    return { question: `${first} ${rng.pick(FOLLOW_UPS)}`, answer: answerText(scene, rng, false), scene, turns: 2, priors };
  }
  return { question: rng.pick(PROMPTS), answer: answerText(scene, rng, true), scene, turns: 1, priors };
}

/** Every word the instruction split can write (for the corpus tokenizer): its templates' words and slot values. */
export function instructionWords(): string[] {
  const text = [
    ...PROMPTS,
    ...FIRST_TURNS,
    ...FOLLOW_UPS,
    'this is a an the image is shows scan are these findings on of in plane pathology histology slide tissue chest x-ray frontal',
    'ct mri axial coronal head abdomen brain side lung lungs liver spleen and left right upper lower half',
    'there is a lesion lesions seen one two three no small large round oval irregular which it and lies present',
    'clear all show shows abnormality appear appears normal with mass they scan other',
  ].join(' ');
  return [...new Set(text.replace(/([?.,:])/g, ' $1 ').split(/\s+/).filter(Boolean))];
}

/** Which priors a scene holds or breaks; read off the scene itself, so a record needs no extra field. */
export function scenePriors(scene: PhantomScene): PriorStates {
  if (scene.findings.length !== 1) return {};
  const f = scene.findings[0];
  const out: PriorStates = { shape: f.shape === PRIOR_SHAPE[f.size] ? 'held' : 'broken' };
  if (scene.region === 'chest') out.side = f.side === 'right' ? 'held' : 'broken';
  return out;
}

/** Tokens as the corpus tokenizer counts them: words, and each punctuation character on its own. */
export function tokenCount(text: string): number {
  return (text.match(/[a-z0-9]+|[^\sa-z0-9]/g) ?? []).length;
}
