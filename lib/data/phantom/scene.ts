/**
 * The phantom world: what a synthetic scan shows (modality, plane, body region, organs, findings) and
 * where each part lies. Geometry is laid out on a 64-unit canvas and scaled to the image size, so a
 * finding is always big and high-contrast enough for a ViT with 8-px patches at 64 px.
 *
 * Sides follow the radiological convention, as the real benchmarks' answers do: the patient's right is
 * on the image's left (CT, MRI, X-ray). Pathology slides have no patient side; their findings lie in the
 * upper or lower half of the image.
 */
import { Rng } from '../prng';

export const MODALITIES = ['ct', 'mri', 'x-ray', 'pathology'] as const;
export const PLANES = ['axial', 'coronal'] as const;
export const REGIONS = ['head', 'chest', 'abdomen', 'tissue'] as const;
export const ORGANS = ['brain', 'lung', 'liver', 'spleen'] as const;
export const SIDES = ['left', 'right', 'upper', 'lower'] as const;
export const SIZES = ['small', 'large'] as const;
export const SHAPES = ['round', 'oval', 'irregular'] as const;
export const MAX_FINDINGS = 3;

export type PhantomModality = (typeof MODALITIES)[number];
export type PhantomPlane = (typeof PLANES)[number];
export type PhantomRegion = (typeof REGIONS)[number];
export type PhantomOrgan = (typeof ORGANS)[number];
export type PhantomSide = (typeof SIDES)[number];
export type PhantomSize = (typeof SIZES)[number];
export type PhantomShape = (typeof SHAPES)[number];

export interface PhantomFinding {
  /** Absent on pathology slides. */
  organ?: PhantomOrgan;
  side: PhantomSide;
  size: PhantomSize;
  shape: PhantomShape;
  /** Centre and radius in pixels of the rendered image. */
  cx: number;
  cy: number;
  r: number;
  /** Angle offset of an irregular outline's lobes. */
  phase: number;
}

export interface PhantomScene {
  modality: PhantomModality;
  /** CT and MRI only (an X-ray here is always a frontal chest film; slides have no plane). */
  plane?: PhantomPlane;
  region: PhantomRegion;
  organs: PhantomOrgan[];
  findings: PhantomFinding[];
  /** Image width and height in pixels. */
  size: number;
}

/** An organ's (or organ half's) ellipse on the 64-unit canvas, with the patient side it lies on. */
export interface OrganArea {
  organ: PhantomOrgan;
  side: PhantomSide;
  cx: number;
  cy: number;
  rx: number;
  ry: number;
}

const CANVAS = 64;
/** Lesion radii on the 64-unit canvas: a small one still spans a whole 8-px patch. */
const RADIUS = { small: 5, large: 9, multi: 4 } as const;

/** Where lesions may sit, per region and plane. Image-left areas are the patient's right. */
export function organAreas(region: PhantomRegion, plane: PhantomPlane | undefined): OrganArea[] {
  const coronal = plane === 'coronal';
  switch (region) {
    case 'head':
      return coronal
        ? [area('brain', 'right', 23, 29, 8, 16), area('brain', 'left', 41, 29, 8, 16)]
        : [area('brain', 'right', 21, 32, 9, 17), area('brain', 'left', 43, 32, 9, 17)];
    case 'chest':
      return coronal
        ? [area('lung', 'right', 20, 28, 10, 20), area('lung', 'left', 44, 28, 10, 20)]
        : [area('lung', 'right', 18, 31, 11, 15), area('lung', 'left', 46, 31, 11, 15)];
    case 'abdomen':
      return coronal
        ? [area('liver', 'right', 22, 24, 12, 13), area('spleen', 'left', 44, 22, 8, 10)]
        : [area('liver', 'right', 21, 31, 14, 14), area('spleen', 'left', 47, 31, 9, 11)];
    case 'tissue':
      return [];
  }
}

function area(organ: PhantomOrgan, side: PhantomSide, cx: number, cy: number, rx: number, ry: number): OrganArea {
  return { organ, side, cx, cy, rx, ry };
}

export function regionOrgans(region: PhantomRegion): PhantomOrgan[] {
  return [...new Set(organAreas(region, 'axial').map((a) => a.organ))];
}

/** What a question's intended answer demands of the scene; unset fields are drawn at random. */
export interface SceneConstraints {
  modality?: PhantomModality;
  plane?: PhantomPlane;
  /** Exact number of findings. */
  count?: number;
  /** At least this many findings (when count is unset). */
  minCount?: number;
  /** Organ of the single finding (implies count 1 unless count is set). */
  organ?: PhantomOrgan;
  side?: PhantomSide;
  size?: PhantomSize;
  shape?: PhantomShape;
  /** Body region, when a question names an organ without fixing the finding. */
  region?: PhantomRegion;
}

const ORGAN_REGION: Record<PhantomOrgan, PhantomRegion> = { brain: 'head', lung: 'chest', liver: 'abdomen', spleen: 'abdomen' };

function modalityFits(m: PhantomModality, c: SceneConstraints): boolean {
  const region = c.region ?? (c.organ ? ORGAN_REGION[c.organ] : undefined);
  if (c.side === 'upper' || c.side === 'lower') return m === 'pathology';
  if (m === 'pathology') return c.organ === undefined && (region === undefined || region === 'tissue') && (c.side === undefined) && c.plane === undefined;
  if (m === 'x-ray') return (region === undefined || region === 'chest') && c.plane === undefined;
  return region !== 'tissue';
}

function chooseRegion(rng: Rng, modality: PhantomModality, c: SceneConstraints): PhantomRegion {
  if (modality === 'pathology') return 'tissue';
  if (modality === 'x-ray') return 'chest';
  if (c.region) return c.region;
  if (c.organ) return ORGAN_REGION[c.organ];
  // A side constraint in the abdomen fixes the organ (liver right, spleen left); every region has both sides.
  return rng.pick(['head', 'chest', 'abdomen'] as const);
}

function findingCount(rng: Rng, c: SceneConstraints): number {
  if (c.count !== undefined) return c.count;
  if (c.organ || c.side || c.size || c.shape) return 1;
  return rng.int(c.minCount ?? 0, MAX_FINDINGS);
}

/** Draws a scene that satisfies the constraints (the caller only asks for consistent ones). */
export function sampleScene(rng: Rng, size: number, c: SceneConstraints = {}): PhantomScene {
  const candidates = MODALITIES.filter((m) => modalityFits(m, c));
  const modality = c.modality ?? rng.pick(candidates);
  const region = chooseRegion(rng, modality, c);
  const plane = modality === 'ct' || modality === 'mri' ? (c.plane ?? rng.pick(PLANES)) : undefined;
  const count = findingCount(rng, c);
  const findings = count === 1 ? [singleFinding(rng, region, plane, size, c)] : multiFindings(rng, region, plane, size, count);
  return { modality, ...(plane ? { plane } : {}), region, organs: regionOrgans(region), findings, size };
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}

function placed(rng: Rng, size: number, x: number, y: number, r: number): Pick<PhantomFinding, 'cx' | 'cy' | 'r' | 'phase'> {
  const scale = size / CANVAS;
  return { cx: round2(x * scale), cy: round2(y * scale), r: round2(r * scale), phase: round2(rng.float() * 2 * Math.PI) };
}

function singleFinding(rng: Rng, region: PhantomRegion, plane: PhantomPlane | undefined, size: number, c: SceneConstraints): PhantomFinding {
  const sz = c.size ?? rng.pick(SIZES);
  const shape = c.shape ?? rng.pick(SHAPES);
  const jitter = () => rng.int(-2, 2);
  if (region === 'tissue') {
    const side = c.side ?? rng.pick(['upper', 'lower'] as const);
    const where = placed(rng, size, 32 + rng.int(-6, 6), (side === 'upper' ? 17 : 47) + jitter(), RADIUS[sz]);
    return { side, size: sz, shape, ...where };
  }
  const areas = organAreas(region, plane).filter((a) => (!c.organ || a.organ === c.organ) && (!c.side || a.side === c.side));
  const a = rng.pick(areas);
  return { organ: a.organ, side: a.side, size: sz, shape, ...placed(rng, size, a.cx + jitter(), a.cy + jitter(), RADIUS[sz]) };
}

export interface Slot {
  organ?: PhantomOrgan;
  side: PhantomSide;
  x: number;
  y: number;
}

export function slots(region: PhantomRegion, plane: PhantomPlane | undefined): Slot[] {
  if (region === 'tissue') {
    return [
      { side: 'upper', x: 17, y: 17 },
      { side: 'upper', x: 47, y: 17 },
      { side: 'lower', x: 17, y: 47 },
      { side: 'lower', x: 47, y: 47 },
    ];
  }
  return organAreas(region, plane).flatMap((a) => [
    { organ: a.organ, side: a.side, x: a.cx, y: a.cy - 0.45 * a.ry },
    { organ: a.organ, side: a.side, x: a.cx, y: a.cy + 0.45 * a.ry },
  ]);
}

/** Several findings: small and round, each in its own slot so they never touch and can be counted. */
function multiFindings(rng: Rng, region: PhantomRegion, plane: PhantomPlane | undefined, size: number, count: number): PhantomFinding[] {
  const free = slots(region, plane);
  const out: PhantomFinding[] = [];
  for (let i = 0; i < count; i++) {
    const s = free.splice(rng.int(0, free.length - 1), 1)[0];
    out.push({ ...(s.organ ? { organ: s.organ } : {}), side: s.side, size: 'small', shape: 'round', ...placed(rng, size, s.x, s.y, RADIUS.multi) });
  }
  return out.sort((a, b) => a.cy - b.cy || a.cx - b.cx);
}

/** How the image is named in descriptions: "axial ct", "chest x-ray", "pathology slide". */
export function sceneKind(scene: PhantomScene): string {
  if (scene.modality === 'pathology') return 'pathology slide';
  if (scene.modality === 'x-ray') return 'chest x-ray';
  return `${scene.plane} ${scene.modality}`;
}

function placeOf(f: PhantomFinding): string {
  if (!f.organ) return `${f.side} half`;
  return f.organ === 'liver' || f.organ === 'spleen' ? f.organ : `${f.side} ${f.organ}`;
}

function placeOfMany(findings: PhantomFinding[]): string {
  const places = [...new Set(findings.map(placeOf))];
  if (places.length === 1) return `the ${places[0]}`;
  const organs = [...new Set(findings.map((f) => f.organ))];
  if (organs.length === 2) return 'the liver and spleen';
  if (organs[0] === 'lung') return 'both lungs';
  if (organs[0] === 'brain') return 'the brain';
  return 'both halves';
}

/** The short free-text description (at most 12 words) that the description questions expect. */
export function describeScene(scene: PhantomScene): string {
  const kind = sceneKind(scene);
  const n = scene.findings.length;
  if (n === 0) return scene.region === 'tissue' ? `${kind} with no lesion` : `${kind} of the ${scene.region} with no lesion`;
  if (n === 1) {
    const f = scene.findings[0];
    return `${kind} showing a ${f.size} ${f.shape} lesion in the ${placeOf(f)}`;
  }
  return `${kind} showing ${n} small round lesions in ${placeOfMany(scene.findings)}`;
}

/** Every distinct scene skeleton (geometry aside), to enumerate every description the generator can write. */
export function allSceneSkeletons(): PhantomScene[] {
  const out: PhantomScene[] = [];
  const kinds: [PhantomModality, PhantomPlane | undefined, PhantomRegion][] = [];
  for (const m of ['ct', 'mri'] as const) for (const p of PLANES) for (const r of ['head', 'chest', 'abdomen'] as const) kinds.push([m, p, r]);
  kinds.push(['x-ray', undefined, 'chest'], ['pathology', undefined, 'tissue']);
  const at = (s: Slot, size: PhantomSize, shape: PhantomShape): PhantomFinding => ({ organ: s.organ, side: s.side, size, shape, cx: 0, cy: 0, r: 0, phase: 0 });
  for (const [modality, plane, region] of kinds) {
    const base = { modality, plane, region, organs: regionOrgans(region), size: CANVAS };
    const all = slots(region, plane);
    out.push({ ...base, findings: [] });
    for (const s of all) for (const size of SIZES) for (const shape of SHAPES) out.push({ ...base, findings: [at(s, size, shape)] });
    for (const subset of subsets(all.length)) {
      if (subset.length >= 2 && subset.length <= MAX_FINDINGS) out.push({ ...base, findings: subset.map((i) => at(all[i], 'small', 'round')) });
    }
  }
  return out;
}

function subsets(n: number): number[][] {
  const out: number[][] = [];
  for (let mask = 1; mask < 1 << n; mask++) out.push([...Array(n).keys()].filter((i) => mask & (1 << i)));
  return out;
}
