/**
 * Question families modelled on VQA-RAD, SLAKE and PathVQA. Each item is made answer-first: the family's
 * intended answer is drawn (balanced, or leaning on one answer with --prior-bias), then a scene that has
 * that answer is drawn. That is what lets the training split carry a language prior while the test split
 * stays balanced.
 */
import type { AnswerType } from '../types';
import { Rng } from '../prng';
import {
  MODALITIES,
  ORGANS,
  PLANES,
  SHAPES,
  SIZES,
  describeScene,
  type PhantomModality,
  type PhantomScene,
  type SceneConstraints,
} from './scene';

export interface PhantomQuestion {
  family: FamilyName;
  question: string;
  answer: string;
  answer_type: AnswerType;
}

interface Family {
  answerType: AnswerType;
  /** Possible answers; the test split draws them uniformly. Empty: free text (descriptions). */
  answers: readonly string[];
  /** The answer a biased training split leans on. */
  favoured?: string;
  /** What the scene must satisfy for `answer`; `ask` is the family's free choice (e.g. which side is asked about). */
  constrain(answer: string, rng: Rng): { constraints: SceneConstraints; ask?: string };
  /** The question text for a scene (templates may depend on the modality). */
  phrase(scene: PhantomScene, rng: Rng, ask?: string): string;
  /** The true answer for the scene; equals the drawn answer by construction (checked in tests). */
  truth(scene: PhantomScene, ask?: string): string;
}

const YES_NO = ['yes', 'no'] as const;
const yesNo = (v: boolean): string => (v ? 'yes' : 'no');
const single = (scene: PhantomScene) => scene.findings[0];

/** Fixed wordings; a question picks one at random. */
const TEMPLATES = {
  presence: ['is there a lesion?', 'is there a lesion in this image?', 'is any abnormality present?', 'are there any lesions?'],
  location: ['where is the lesion?', 'which side is the lesion on?', 'on which side is the lesion located?'],
  locationSlide: ['where is the lesion?', 'in which half of the image is the lesion?'],
  organ: ['which organ contains the lesion?', 'what organ is the lesion in?', 'in which organ is the lesion?'],
  count: ['how many lesions are there?', 'how many lesions are seen?', 'what is the number of lesions?'],
  size: ['how big is the lesion?', 'what is the size of the lesion?'],
  shape: ['what is the shape of the lesion?', 'what shape is the lesion?'],
  modality: ['what modality is this?', 'what imaging modality was used?', 'how was this image taken?'],
  plane: ['what plane is this image in?', 'in what plane was this image taken?', 'which plane is shown?'],
  description: ['describe the image.', 'describe the findings in this image.', 'what does this image show?'],
} as const;

const sidePhrase = (ask: string): string => (ask === 'upper' || ask === 'lower' ? `is the lesion in the ${ask} half?` : `is the lesion on the ${ask} side?`);

const MODALITY_NAME: Record<PhantomModality, string> = { ct: 'a ct scan', mri: 'an mri', 'x-ray': 'an x-ray', pathology: 'a pathology slide' };

const FAMILIES = {
  presence: {
    answerType: 'closed',
    answers: YES_NO,
    favoured: 'yes',
    constrain: (a) => ({ constraints: a === 'yes' ? { minCount: 1 } : { count: 0 } }),
    phrase: (_s, rng) => rng.pick(TEMPLATES.presence),
    truth: (s) => yesNo(s.findings.length > 0),
  },
  location: {
    answerType: 'open',
    answers: ['left', 'right', 'upper', 'lower'],
    favoured: 'right',
    constrain: (a) => ({ constraints: { count: 1, side: a as SceneConstraints['side'] } }),
    phrase: (s, rng) => rng.pick(s.modality === 'pathology' ? TEMPLATES.locationSlide : TEMPLATES.location),
    truth: (s) => single(s).side,
  },
  'location-closed': {
    answerType: 'closed',
    answers: YES_NO,
    favoured: 'yes',
    constrain: (a, rng) => {
      const ask = rng.pick(['left', 'right', 'upper', 'lower'] as const);
      const other = { left: 'right', right: 'left', upper: 'lower', lower: 'upper' } as const;
      return { constraints: { count: 1, side: a === 'yes' ? ask : other[ask] }, ask };
    },
    phrase: (_s, _rng, ask) => sidePhrase(ask ?? ''),
    truth: (s, ask) => yesNo(single(s).side === ask),
  },
  organ: {
    answerType: 'open',
    answers: ORGANS,
    favoured: 'lung',
    constrain: (a) => ({ constraints: { count: 1, organ: a as SceneConstraints['organ'] } }),
    phrase: (_s, rng) => rng.pick(TEMPLATES.organ),
    truth: (s) => single(s).organ ?? '',
  },
  count: {
    answerType: 'open',
    answers: ['0', '1', '2', '3'],
    favoured: '1',
    constrain: (a) => ({ constraints: { count: Number(a) } }),
    phrase: (_s, rng) => rng.pick(TEMPLATES.count),
    truth: (s) => String(s.findings.length),
  },
  size: {
    answerType: 'open',
    answers: SIZES,
    favoured: 'large',
    constrain: (a) => ({ constraints: { count: 1, size: a as SceneConstraints['size'] } }),
    phrase: (_s, rng) => rng.pick(TEMPLATES.size),
    truth: (s) => single(s).size,
  },
  'size-closed': {
    answerType: 'closed',
    answers: YES_NO,
    favoured: 'yes',
    constrain: (a, rng) => {
      const ask = rng.pick(SIZES);
      return { constraints: { count: 1, size: a === 'yes' ? ask : ask === 'small' ? 'large' : 'small' }, ask };
    },
    phrase: (_s, _rng, ask) => `is the lesion ${ask}?`,
    truth: (s, ask) => yesNo(single(s).size === ask),
  },
  shape: {
    answerType: 'open',
    answers: SHAPES,
    favoured: 'round',
    constrain: (a) => ({ constraints: { count: 1, shape: a as SceneConstraints['shape'] } }),
    phrase: (_s, rng) => rng.pick(TEMPLATES.shape),
    truth: (s) => single(s).shape,
  },
  modality: {
    answerType: 'open',
    answers: MODALITIES,
    favoured: 'ct',
    constrain: (a) => ({ constraints: { modality: a as PhantomModality } }),
    phrase: (_s, rng) => rng.pick(TEMPLATES.modality),
    truth: (s) => s.modality,
  },
  'modality-closed': {
    answerType: 'closed',
    answers: YES_NO,
    favoured: 'yes',
    constrain: (a, rng) => {
      const ask = rng.pick(MODALITIES);
      const modality = a === 'yes' ? ask : rng.pick(MODALITIES.filter((m) => m !== ask));
      return { constraints: { modality }, ask };
    },
    phrase: (_s, _rng, ask) => `is this ${MODALITY_NAME[ask as PhantomModality]}?`,
    truth: (s, ask) => yesNo(s.modality === ask),
  },
  plane: {
    answerType: 'open',
    answers: PLANES,
    favoured: 'axial',
    constrain: (a, rng) => ({ constraints: { plane: a as SceneConstraints['plane'], modality: rng.pick(['ct', 'mri'] as const) } }),
    phrase: (_s, rng) => rng.pick(TEMPLATES.plane),
    truth: (s) => s.plane ?? '',
  },
  description: {
    answerType: 'open',
    answers: [],
    constrain: () => ({ constraints: {} }),
    phrase: (_s, rng) => rng.pick(TEMPLATES.description),
    truth: (s) => describeScene(s),
  },
} satisfies Record<string, Family>;

export type FamilyName = keyof typeof FAMILIES;
export const FAMILY_NAMES = Object.keys(FAMILIES) as FamilyName[];

/** Every question the generator can ask, for building a vocabulary. */
export function allQuestionTexts(): string[] {
  const texts = new Set<string>(Object.values(TEMPLATES).flat());
  for (const side of ['left', 'right', 'upper', 'lower']) texts.add(sidePhrase(side));
  for (const size of SIZES) texts.add(`is the lesion ${size}?`);
  for (const m of MODALITIES) texts.add(`is this ${MODALITY_NAME[m]}?`);
  return [...texts];
}

export function familyAnswers(name: FamilyName): readonly string[] {
  return FAMILIES[name].answers;
}

/**
 * The answer to aim for. Balanced: uniform over the family's answers. Biased (p): the favoured answer
 * with probability p, the others sharing the rest evenly.
 */
function targetAnswer(family: Family, rng: Rng, priorBias: number | undefined): string {
  const answers = family.answers;
  if (answers.length === 0) return '';
  if (priorBias === undefined || family.favoured === undefined) return rng.pick(answers);
  if (rng.chance(priorBias)) return family.favoured;
  return rng.pick(answers.filter((a) => a !== family.favoured));
}

export interface DrawnItem extends PhantomQuestion {
  scene: PhantomScene;
}

/** One question with its scene. `phrase` and `truth` read the scene, so the answer comes from the pixels' source. */
export function drawItem(rng: Rng, priorBias: number | undefined, sample: (c: SceneConstraints) => PhantomScene): DrawnItem {
  const name = rng.pick(FAMILY_NAMES);
  const family: Family = FAMILIES[name];
  const target = targetAnswer(family, rng, priorBias);
  const { constraints, ask } = family.constrain(target, rng);
  const scene = sample(constraints);
  return { family: name, question: family.phrase(scene, rng, ask), answer: family.truth(scene, ask), answer_type: family.answerType, scene };
}
