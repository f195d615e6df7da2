/**
 * The exact judge of free-text answers about a phantom scene (our Table 2, in place of the paper's GPT-4
 * review): the scene is known, so the judge parses what an answer states, binds each attribute to the finding
 * it describes, and checks it.
 *
 * Parsing. An answer is cut into sentences ('.', ';', '!', '?') and clauses (',', ':', and "and" when a new
 * noun phrase follows: "… and a small one …", "… and one in …", "… and no …"). Each clause is read for
 *   - the kind of scan: modality (ct, mri, x-ray, pathology/histology slide), plane (axial, coronal), region
 *     (head, chest, abdomen, tissue);
 *   - a lesion mention: a lesion noun (lesion, mass, nodule, tumour, abnormality, or "one" after an article
 *     or adjective) with its number word ("a" = one lesion, not a count claim; "one", "two", … and digits are);
 *   - attributes: size, shape, and locations (organ with a side: "right lung", "left side of the brain",
 *     "upper half"; "both lungs" is two locations, "the liver and spleen" two organs);
 *   - negation: no, without, not, clear, normal, free, unremarkable.
 * Binding. A clause that mentions a new lesion (an indefinite or counted noun) opens a finding claim; a clause
 * without one ("it is large", "the lesion is round", "…, in the right lung", "two in the left lung") adds to
 * the last finding claim (a counted location like "two in the left lung" under a plural claim is a
 * sub-location: that many findings lie there). A negated clause states absences: at each location it names
 * (no finding there), or, naming none, that there is no lesion at all (count 0). A clause that says "other"
 * ("no other abnormality is seen") is a remark and states nothing; any other clause from which nothing
 * could be read is counted as unparsed, never dropped silently.
 * Checking. A singular finding claim is bound to the scene finding that agrees with the most of its stated
 * attributes (ties: the first); each attribute is right iff that finding has it, and every attribute is a
 * hallucination when the scene has no finding. A plural claim's size/shape must hold for every finding and
 * each of its locations must hold at least one (exactly as many as a counted sub-location says). Modality,
 * plane and region are checked against the scene (a plane stated for an x-ray or slide is wrong); each is
 * counted once per answer.
 * Scores. Precision = right / stated; the CHAIR-style hallucination rate = wrong / stated (= 1 − precision);
 * recall = scene facts covered by a right claim / scene facts, the facts being modality, region, plane (CT
 * and MRI), and per finding its size, shape and location; the count when there are several findings; the
 * absence of any lesion when there is none.
 */
import type { VqaRecord } from '../data/types';
import type { PhantomFinding, PhantomScene } from '../data/phantom/scene';
import { scenePriors, type PriorState } from '../data/phantom/instruct';

export type ClaimKind = 'modality' | 'plane' | 'region' | 'count' | 'size' | 'shape' | 'location' | 'absence';
export const CLAIM_KINDS: readonly ClaimKind[] = ['modality', 'plane', 'region', 'count', 'size', 'shape', 'location', 'absence'];

export interface Claim {
  kind: ClaimKind;
  /** What was stated: "ct", "axial", "3", "large", "right lung", "no lesion: left lung". */
  value: string;
  correct: boolean;
}

export interface Verdict {
  claims: Claim[];
  /** Clauses nothing could be read from (remarks such as "no other abnormality" excluded). */
  unparsed: string[];
  /** Scene facts and how many a right claim covers. */
  facts: number;
  covered: number;
}

interface Location {
  organ?: string;
  side?: string;
  /** A counted sub-location ("two in the left lung"). */
  n?: number;
}

interface FindingClaim {
  count?: number;
  plural: boolean;
  size?: string;
  shape?: string;
  locations: Location[];
}

const NUMBERS: Record<string, number> = { no: 0, zero: 0, one: 1, single: 1, two: 2, three: 3, four: 4, five: 5, six: 6 };
const LESION = /^(lesions?|masses|mass|nodules?|tumou?rs?|abnormalit(y|ies)|findings?)$/;
const NEGATION = new Set(['no', 'without', 'not', 'clear', 'normal', 'free', 'unremarkable', 'none']);
const MODALITY: Record<string, string> = { ct: 'ct', mri: 'mri', mr: 'mri', 'x-ray': 'x-ray', radiograph: 'x-ray', pathology: 'pathology', histology: 'pathology', slide: 'pathology' };
const PLANES = new Set(['axial', 'coronal', 'sagittal']);
const REGIONS = new Set(['head', 'chest', 'abdomen', 'tissue']);
const SIZES: Record<string, string> = { small: 'small', tiny: 'small', large: 'large', big: 'large' };
const SHAPES = new Set(['round', 'oval', 'irregular']);
const ORGANS: Record<string, string> = { brain: 'brain', lung: 'lung', lungs: 'lung', liver: 'liver', spleen: 'spleen' };
const SIDES = new Set(['left', 'right', 'upper', 'lower']);
const ADJECTIVE = new Set(['a', 'an', 'another', 'small', 'large', 'tiny', 'big', 'round', 'oval', 'irregular', 'second']);
const ANAPHORA = new Set(['it', 'they', 'which', 'this', 'these', 'the']);

function normalise(text: string): string {
  return text
    .toLowerCase()
    .replace(/\bx[\s-]?rays?\b/g, 'x-ray')
    .replace(/[^a-z0-9\s.,;:!?-]/g, ' ');
}

/** Sentences, then clauses. */
export function clauses(text: string): string[][] {
  const out: string[][] = [];
  for (const sentence of normalise(text).split(/[.;!?]+/)) {
    for (const part of sentence.split(/[,:]/)) {
      const ws = part.split(/\s+/).filter((w) => w !== '' && w !== '-');
      let start = 0;
      for (let i = 1; i < ws.length - 1; i++) {
        if (ws[i] === 'and' && /^(a|an|one|two|three|four|five|no|another|\d+)$/.test(ws[i + 1])) {
          out.push(ws.slice(start, i));
          start = i + 1;
        }
      }
      if (start < ws.length) out.push(ws.slice(start));
    }
  }
  return out.filter((c) => c.length > 0);
}

/** Is ws[i] ("one") a pronoun for a lesion ("a small one") rather than a number? */
function oneIsNoun(ws: string[], i: number): boolean {
  return ws[i] === 'one' && i > 0 && ADJECTIVE.has(ws[i - 1]);
}

function locations(ws: string[]): Location[] {
  const out: Location[] = [];
  let side: string | undefined;
  let both = false;
  for (let i = 0; i < ws.length; i++) {
    const w = ws[i];
    if (SIDES.has(w)) side = w;
    else if (w === 'both') both = true;
    else if (w in ORGANS) {
      const organ = ORGANS[w];
      if (both && organ === 'lung') out.push({ organ, side: 'left' }, { organ, side: 'right' });
      else out.push({ organ, ...(side ? { side } : {}) });
      side = undefined;
      both = false;
    } else if (w === 'half' && side) {
      out.push({ side });
      side = undefined;
    }
  }
  // "… on the left side" / "in the right" without an organ: the last side alone.
  if (side) out.push({ side });
  return out;
}

interface ClauseReading {
  modality?: string;
  plane?: string;
  region?: string;
  negated: boolean;
  remark: boolean;
  /** The lesion noun's index, or -1. */
  noun: number;
  /** The number word before the noun (or opening the clause), if any. */
  count?: number;
  indefinite: boolean;
  anaphoric: boolean;
  size?: string;
  shape?: string;
  locations: Location[];
}

function readClause(ws: string[]): ClauseReading {
  const r: ClauseReading = { negated: false, remark: ws.includes('other'), noun: -1, indefinite: false, anaphoric: false, locations: locations(ws) };
  ws.forEach((w, i) => {
    if (w in MODALITY && !(w === 'slide' && r.modality)) r.modality = r.modality ?? MODALITY[w];
    if (PLANES.has(w)) r.plane = w;
    if (REGIONS.has(w)) r.region = w;
    if (NEGATION.has(w)) r.negated = true;
    if (w in SIZES) r.size = SIZES[w];
    if (SHAPES.has(w)) r.shape = w;
    if (r.noun < 0 && (LESION.test(w) || oneIsNoun(ws, i))) r.noun = i;
  });
  const before = r.noun >= 0 ? ws.slice(Math.max(0, r.noun - 4), r.noun) : ws.slice(0, 1);
  for (const w of before) {
    if (w in NUMBERS && !(w === 'one' && r.noun >= 0 && oneIsNoun(ws, r.noun))) r.count = NUMBERS[w];
    else if (/^\d+$/.test(w)) r.count = Number(w);
    if (w === 'a' || w === 'an' || w === 'another') r.indefinite = true;
  }
  if (r.noun >= 0 && ws[r.noun] === 'one' && r.count === undefined) r.indefinite = true;
  r.anaphoric = ws.some((w) => ANAPHORA.has(w)) && !r.indefinite && r.count === undefined;
  return r;
}

function matches(f: PhantomFinding, l: Location): boolean {
  return (l.organ === undefined || f.organ === l.organ) && (l.side === undefined || f.side === l.side);
}

function locationText(l: Location): string {
  return [l.n !== undefined ? `${l.n} in` : '', l.side ?? '', l.organ ?? (l.side ? 'half' : '')].filter(Boolean).join(' ');
}

/** Checks one finding claim against the scene; returns its claims and which findings' facts it covers. */
function checkFinding(c: FindingClaim, scene: PhantomScene, covered: Set<string>): Claim[] {
  const f = scene.findings;
  const out: Claim[] = [];
  if (c.count !== undefined) out.push({ kind: 'count', value: String(c.count), correct: c.count === f.length });
  if (c.count !== undefined && c.count === f.length && f.length >= 2) covered.add('count');
  const plural = c.plural || (c.count ?? 1) >= 2;
  if (plural) {
    for (const kind of ['size', 'shape'] as const) {
      const v = c[kind];
      if (v === undefined) continue;
      const ok = f.length > 0 && f.every((x) => x[kind] === v);
      out.push({ kind, value: v, correct: ok });
      if (ok) f.forEach((_, i) => covered.add(`${kind}${i}`));
    }
    for (const l of c.locations) {
      const at = f.filter((x) => matches(x, l)).length;
      const ok = l.n === undefined ? at > 0 : at === l.n;
      out.push({ kind: 'location', value: locationText(l), correct: ok });
      if (ok) f.forEach((x, i) => matches(x, l) && covered.add(`location${i}`));
    }
    return out;
  }
  const agree = (x: PhantomFinding) => (c.size === x.size ? 1 : 0) + (c.shape === x.shape ? 1 : 0) + c.locations.filter((l) => matches(x, l)).length;
  let best = -1;
  f.forEach((x, i) => {
    if (best < 0 || agree(x) > agree(f[best])) best = i;
  });
  const bound = best >= 0 ? f[best] : undefined;
  for (const kind of ['size', 'shape'] as const) {
    const v = c[kind];
    if (v === undefined) continue;
    const ok = bound !== undefined && bound[kind] === v;
    out.push({ kind, value: v, correct: ok });
    if (ok) covered.add(`${kind}${best}`);
  }
  for (const l of c.locations) {
    const ok = bound !== undefined && matches(bound, l);
    out.push({ kind: 'location', value: locationText(l), correct: ok });
    if (ok) covered.add(`location${best}`);
  }
  return out;
}

function sceneFacts(scene: PhantomScene): string[] {
  const facts = ['modality', 'region'];
  if (scene.plane) facts.push('plane');
  const n = scene.findings.length;
  if (n === 0) facts.push('none');
  if (n >= 2) facts.push('count');
  for (let i = 0; i < n; i++) facts.push(`size${i}`, `shape${i}`, `location${i}`);
  return facts;
}

/** Parses an answer and checks every attribute it states against the scene. */
export function judgeAnswer(text: string, scene: PhantomScene): Verdict {
  const claims: Claim[] = [];
  const unparsed: string[] = [];
  const covered = new Set<string>();
  const kindSeen = new Set<string>();
  const groups: FindingClaim[] = [];
  const absences: Location[] = [];
  let saysNone = false;
  for (const ws of clauses(text)) {
    const r = readClause(ws);
    let read = false;
    for (const kind of ['modality', 'plane', 'region'] as const) {
      const v = r[kind];
      if (v === undefined || kindSeen.has(kind)) continue;
      kindSeen.add(kind);
      read = true;
      const truth = kind === 'modality' ? scene.modality : kind === 'plane' ? scene.plane : scene.region;
      claims.push({ kind, value: v, correct: v === truth });
      if (v === truth) covered.add(kind);
    }
    const hasFindingWords = r.noun >= 0 || r.size !== undefined || r.shape !== undefined || r.locations.length > 0 || r.count !== undefined;
    if (r.remark) continue;
    if (r.negated) {
      if (r.locations.length > 0) absences.push(...r.locations.filter((l) => l.organ !== undefined || l.side !== undefined));
      else saysNone = true;
      continue;
    }
    if (!hasFindingWords) {
      if (!read) unparsed.push(ws.join(' '));
      continue;
    }
    const last = groups[groups.length - 1];
    const opensNew = r.noun >= 0 && (r.indefinite || r.count !== undefined || !r.anaphoric);
    if (!opensNew && last) {
      // Adds to the last claim: "it is large", "…, in the right lung", "two in the left lung".
      if (r.size) last.size = r.size;
      if (r.shape) last.shape = r.shape;
      const sub = r.count !== undefined && r.noun < 0 && (last.plural || (last.count ?? 1) >= 2);
      last.locations.push(...r.locations.map((l) => (sub ? { ...l, n: r.count } : l)));
      continue;
    }
    if (r.noun < 0 && r.size === undefined && r.shape === undefined && r.count === undefined) {
      // Only a location, and no lesion to attach it to (e.g. "in the right lung" first): read as a lesion there.
      groups.push({ plural: false, locations: r.locations });
      continue;
    }
    const plural = r.noun >= 0 && /s$/.test(ws[r.noun]) && ws[r.noun] !== 'mass';
    groups.push({ ...(r.count !== undefined ? { count: r.count } : {}), plural, size: r.size, shape: r.shape, locations: r.locations });
  }
  for (const g of groups) claims.push(...checkFinding(g, scene, covered));
  for (const l of dedupe(absences)) {
    const ok = !scene.findings.some((f) => matches(f, l));
    claims.push({ kind: 'absence', value: `no lesion: ${locationText(l)}`, correct: ok });
  }
  if (saysNone && !groups.some((g) => g.count === 0)) {
    const ok = scene.findings.length === 0;
    claims.push({ kind: 'count', value: '0', correct: ok });
    if (ok) covered.add('none');
  }
  const facts = sceneFacts(scene);
  return { claims, unparsed, facts: facts.length, covered: facts.filter((f) => covered.has(f)).length };
}

function dedupe(ls: Location[]): Location[] {
  const seen = new Set<string>();
  return ls.filter((l) => {
    const k = locationText(l);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

// ---- aggregation ---------------------------------------------------------------------------------

export interface JudgeTotals {
  answers: number;
  stated: number;
  correct: number;
  hallucinated: number;
  facts: number;
  covered: number;
  /** Answers with at least one hallucinated attribute. */
  withHallucination: number;
  unparsedClauses: number;
  /** Answers with at least one unparsed clause. */
  withUnparsed: number;
  byKind: Record<ClaimKind, { stated: number; hallucinated: number }>;
}

export interface JudgeScores {
  answers: number;
  precision: number | null;
  recall: number | null;
  f1: number | null;
  /** CHAIR-style: hallucinated / stated attributes. */
  hallucinationRate: number | null;
  /** Share of answers with at least one hallucinated attribute (CHAIR_s). */
  perAnswer: number | null;
  /** Share of answers with an unparsed clause; unparsedClauses is their total. */
  unparsedShare: number | null;
  unparsedClauses: number;
  totals: JudgeTotals;
}

export interface JudgeReport {
  overall: JudgeScores;
  byModality: Record<string, JudgeScores>;
  /** Scenes by training-side language prior (instruct.ts): 'shape held', 'shape broken', 'side …', 'all held', 'any broken'. */
  byPrior: Record<string, JudgeScores>;
}

export function emptyTotals(): JudgeTotals {
  const byKind = Object.fromEntries(CLAIM_KINDS.map((k) => [k, { stated: 0, hallucinated: 0 }])) as JudgeTotals['byKind'];
  return { answers: 0, stated: 0, correct: 0, hallucinated: 0, facts: 0, covered: 0, withHallucination: 0, unparsedClauses: 0, withUnparsed: 0, byKind };
}

export function addVerdict(t: JudgeTotals, v: Verdict): void {
  t.answers++;
  const wrong = v.claims.filter((c) => !c.correct).length;
  t.stated += v.claims.length;
  t.correct += v.claims.length - wrong;
  t.hallucinated += wrong;
  t.facts += v.facts;
  t.covered += v.covered;
  if (wrong > 0) t.withHallucination++;
  t.unparsedClauses += v.unparsed.length;
  if (v.unparsed.length > 0) t.withUnparsed++;
  for (const c of v.claims) {
    t.byKind[c.kind].stated++;
    if (!c.correct) t.byKind[c.kind].hallucinated++;
  }
}

const ratio = (a: number, b: number): number | null => (b > 0 ? a / b : null);

export function scoresOf(t: JudgeTotals): JudgeScores {
  const precision = ratio(t.correct, t.stated);
  const recall = ratio(t.covered, t.facts);
  const f1 = precision !== null && recall !== null && precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : precision === null ? null : 0;
  return {
    answers: t.answers,
    precision,
    recall,
    f1,
    hallucinationRate: ratio(t.hallucinated, t.stated),
    perAnswer: ratio(t.withHallucination, t.answers),
    unparsedShare: ratio(t.withUnparsed, t.answers),
    unparsedClauses: t.unparsedClauses,
    totals: t,
  };
}

/** Per-answer verdicts of the records that carry a scene and have a prediction, in record order. */
export function judgeRecords(records: VqaRecord[], predictions: ReadonlyMap<string, string>): { record: VqaRecord; verdict: Verdict }[] {
  const out: { record: VqaRecord; verdict: Verdict }[] = [];
  for (const r of records) {
    const text = predictions.get(r.id);
    if (!r.scene || text === undefined) continue;
    out.push({ record: r, verdict: judgeAnswer(text, r.scene) });
  }
  return out;
}

/** Scores overall, per modality and per prior state (a scene counts under each prior it held or broke). */
export function judgeReport(judged: { record: VqaRecord; verdict: Verdict }[]): JudgeReport {
  const overall = emptyTotals();
  const byModality = new Map<string, JudgeTotals>();
  const byPrior = new Map<string, JudgeTotals>();
  const into = (m: Map<string, JudgeTotals>, key: string, v: Verdict) => {
    if (!m.has(key)) m.set(key, emptyTotals());
    addVerdict(m.get(key) as JudgeTotals, v);
  };
  for (const { record, verdict } of judged) {
    addVerdict(overall, verdict);
    into(byModality, record.scene?.modality ?? 'unknown', verdict);
    const priors = record.scene ? scenePriors(record.scene) : {};
    for (const [prior, state] of Object.entries(priors) as [string, PriorState][]) into(byPrior, `${prior} ${state}`, verdict);
    if (Object.keys(priors).length > 0) into(byPrior, Object.values(priors).includes('broken') ? 'any broken' : 'all held', verdict);
  }
  const map = (m: Map<string, JudgeTotals>) => Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b)).map(([k, t]) => [k, scoresOf(t)]));
  return { overall: scoresOf(overall), byModality: map(byModality), byPrior: map(byPrior) };
}
