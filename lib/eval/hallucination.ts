/**
 * CHAIR-style hallucination rate for phantom descriptions: of the finding attributes a description states
 * (organ, side, size, shape, count), the share that contradict the scene. The scene is known exactly, so
 * nothing here needs a model or a judge.
 */
import type { VqaRecord } from '../data/types';
import type { PhantomFinding, PhantomScene } from '../data/phantom/scene';

export type AttributeKind = 'organ' | 'side' | 'size' | 'shape' | 'count';

export interface StatedAttribute {
  kind: AttributeKind;
  value: string;
  /** True when it contradicts the scene. */
  hallucinated: boolean;
}

const WORDS: Record<Exclude<AttributeKind, 'count'>, Record<string, string>> = {
  organ: { brain: 'brain', lung: 'lung', lungs: 'lung', liver: 'liver', spleen: 'spleen' },
  side: { left: 'left', right: 'right', upper: 'upper', lower: 'lower', both: 'both' },
  size: { small: 'small', tiny: 'small', large: 'large', big: 'large' },
  shape: { round: 'round', oval: 'oval', irregular: 'irregular' },
};
const NUMBERS: Record<string, number> = { no: 0, zero: 0, a: 1, an: 1, one: 1, single: 1, two: 2, three: 3, four: 4, five: 5 };
const LESION = /^(lesions?|masses|mass|nodules?|tumou?rs?|abnormalit(y|ies))$/;

function words(text: string): string[] {
  return text.toLowerCase().replace(/[^a-z0-9\s-]/g, ' ').split(/\s+/).filter(Boolean);
}

/** The count a description claims: a number (word or digits) up to three words before "lesion(s)". */
function statedCount(ws: string[]): string | undefined {
  for (let i = 0; i < ws.length; i++) {
    if (!LESION.test(ws[i])) continue;
    for (let j = i - 1; j >= Math.max(0, i - 3); j--) {
      if (/^\d+$/.test(ws[j])) return ws[j];
      if (ws[j] in NUMBERS) return String(NUMBERS[ws[j]]);
    }
    if (ws[i].endsWith('s') || ws[i] === 'masses') return 'several';
  }
  return undefined;
}

function sideHolds(findings: PhantomFinding[], side: string): boolean {
  const sides = new Set(findings.map((f) => f.side));
  if (side === 'both') return (sides.has('left') && sides.has('right')) || (sides.has('upper') && sides.has('lower'));
  return sides.has(side as PhantomFinding['side']);
}

function countHolds(n: number, stated: string): boolean {
  return stated === 'several' ? n >= 2 : Number(stated) === n;
}

/**
 * The attributes a description states, each checked against the scene. When it says there is no lesion,
 * only that claim and the organs it names are checked (against the scene's organs): "no lesion in the
 * left lung" describes no finding.
 */
export function checkDescription(text: string, scene: PhantomScene): StatedAttribute[] {
  const ws = words(text);
  const out: StatedAttribute[] = [];
  const count = statedCount(ws);
  if (count !== undefined) out.push({ kind: 'count', value: count, hallucinated: !countHolds(scene.findings.length, count) });
  const claimsNone = count === '0';
  for (const kind of ['organ', 'side', 'size', 'shape'] as const) {
    const values = new Set(ws.map((w) => WORDS[kind][w]).filter((v): v is string => v !== undefined));
    if (claimsNone && kind !== 'organ') continue;
    for (const value of values) out.push({ kind, value, hallucinated: !attributeHolds(kind, value, scene, claimsNone) });
  }
  return out;
}

function attributeHolds(kind: Exclude<AttributeKind, 'count'>, value: string, scene: PhantomScene, claimsNone: boolean): boolean {
  const f = scene.findings;
  switch (kind) {
    case 'organ':
      return claimsNone ? scene.organs.includes(value as PhantomScene['organs'][number]) : f.some((x) => x.organ === value);
    case 'side':
      return sideHolds(f, value);
    case 'size':
      return f.some((x) => x.size === value);
    case 'shape':
      return f.some((x) => x.shape === value);
  }
}

export interface HallucinationReport {
  /** Descriptions scored (phantom records of the description family with a prediction). */
  descriptions: number;
  /** Attributes stated across them. */
  stated: number;
  hallucinated: number;
  /** hallucinated / stated; null when nothing was stated. */
  rate: number | null;
  /** Share of descriptions with at least one hallucinated attribute (CHAIR_s); null without descriptions. */
  perDescription: number | null;
  byKind: Record<AttributeKind, { stated: number; hallucinated: number }>;
}

/** Hallucination over the description records that carry a scene. */
export function hallucinationRate(records: VqaRecord[], predictions: ReadonlyMap<string, string>): HallucinationReport {
  const byKind = { organ: z(), side: z(), size: z(), shape: z(), count: z() };
  let descriptions = 0;
  let withError = 0;
  for (const r of records) {
    const text = predictions.get(r.id);
    if (r.family !== 'description' || !r.scene || text === undefined) continue;
    descriptions++;
    const attrs = checkDescription(text, r.scene);
    if (attrs.some((a) => a.hallucinated)) withError++;
    for (const a of attrs) {
      byKind[a.kind].stated++;
      if (a.hallucinated) byKind[a.kind].hallucinated++;
    }
  }
  const stated = Object.values(byKind).reduce((s, k) => s + k.stated, 0);
  const hallucinated = Object.values(byKind).reduce((s, k) => s + k.hallucinated, 0);
  return { descriptions, stated, hallucinated, rate: stated ? hallucinated / stated : null, perDescription: descriptions ? withError / descriptions : null, byKind };
}

function z(): { stated: number; hallucinated: number } {
  return { stated: 0, hallucinated: 0 };
}
