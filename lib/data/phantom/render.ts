/**
 * Paints a phantom scene into a raw RGB buffer. Every modality has its own look (CT grey levels with a
 * bright skull and spine, MRI with a bright fat rim and bright lesions, a frontal chest film, a pink
 * H&E-like slide) and every lesion contrasts strongly with the organ it sits in, so modality, plane, organ,
 * side, size, shape and count can all be read off a 64-px image.
 */
import { Rng } from '../prng';
import { organAreas, type PhantomFinding, type PhantomOrgan, type PhantomScene } from './scene';

type Rgb = readonly [number, number, number];

const grey = (v: number): Rgb => [v, v, v];

/** Grey levels per modality. Lesions: bright in air and brain, dark (hypodense) in CT liver and spleen. */
const LOOK = {
  ct: { body: 90, bone: 235, organ: { brain: 115, lung: 25, liver: 150, spleen: 140 }, lesion: { brain: 215, lung: 215, liver: 35, spleen: 35 } },
  mri: { body: 55, bone: 20, organ: { brain: 150, lung: 15, liver: 95, spleen: 125 }, lesion: { brain: 245, lung: 245, liver: 245, spleen: 245 } },
  'x-ray': { body: 140, bone: 205, organ: { brain: 0, lung: 45, liver: 0, spleen: 0 }, lesion: { brain: 0, lung: 230, liver: 0, spleen: 0 } },
} as const;

const SLIDE_BACKGROUND: Rgb = [236, 188, 212];
const SLIDE_NUCLEUS: Rgb = [160, 90, 180];
const SLIDE_LUMEN: Rgb = [250, 244, 248];
const SLIDE_LESION: Rgb = [95, 35, 125];
const MRI_FAT: Rgb = grey(200);
const NOISE = 6;

class Canvas {
  readonly pixels: Float32Array;
  private readonly scale: number;

  constructor(readonly size: number) {
    this.pixels = new Float32Array(size * size * 3);
    this.scale = size / 64;
  }

  /** Fills the points for which inside(x, y) holds; x and y are pixel centres in canvas units. */
  private fill(color: Rgb, box: [number, number, number, number], inside: (x: number, y: number) => boolean): void {
    const s = this.scale;
    const [x0, y0, x1, y1] = box.map((v) => Math.max(0, Math.min(this.size, Math.round(v * s))));
    for (let py = y0; py < y1; py++) {
      for (let px = x0; px < x1; px++) {
        if (!inside((px + 0.5) / s, (py + 0.5) / s)) continue;
        const i = (py * this.size + px) * 3;
        this.pixels[i] = color[0];
        this.pixels[i + 1] = color[1];
        this.pixels[i + 2] = color[2];
      }
    }
  }

  ellipse(cx: number, cy: number, rx: number, ry: number, color: Rgb): void {
    this.fill(color, [cx - rx - 1, cy - ry - 1, cx + rx + 1, cy + ry + 1], (x, y) => ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1);
  }

  rect(x0: number, y0: number, x1: number, y1: number, color: Rgb): void {
    this.fill(color, [x0, y0, x1, y1], () => true);
  }

  /** A lobulated outline: radius varies with five lobes, so it reads as irregular even when small. */
  blob(cx: number, cy: number, r: number, phase: number, color: Rgb): void {
    const reach = r * 1.12;
    this.fill(color, [cx - reach - 1, cy - reach - 1, cx + reach + 1, cy + reach + 1], (x, y) => {
      const d = Math.hypot(x - cx, y - cy);
      return d <= r * (0.74 + 0.38 * Math.sin(5 * Math.atan2(y - cy, x - cx) + phase));
    });
  }

  /** Adds the same noise to all three channels and rounds into bytes. */
  toBytes(noise: Rng): Buffer {
    const out = Buffer.alloc(this.pixels.length);
    for (let i = 0; i < this.pixels.length; i += 3) {
      const n = noise.int(-NOISE, NOISE);
      for (let c = 0; c < 3; c++) out[i + c] = Math.max(0, Math.min(255, Math.round(this.pixels[i + c] + n)));
    }
    return out;
  }
}

function paintHead(c: Canvas, scene: PhantomScene, look: (typeof LOOK)['ct' | 'mri']): void {
  const coronal = scene.plane === 'coronal';
  const [cy, rx, ry] = coronal ? [30, 22, 28] : [32, 27, 27];
  c.ellipse(32, cy, rx, ry, scene.modality === 'mri' ? MRI_FAT : grey(look.bone));
  c.ellipse(32, cy, rx - 3, ry - 3, grey(look.bone));
  const brainCy = coronal ? 29 : 32;
  c.ellipse(32, brainCy, rx - 5, ry - 6, grey(look.organ.brain));
  c.rect(31.5, brainCy - ry + 7, 32.5, brainCy + ry - 7, grey(look.body));
}

function paintTrunk(c: Canvas, scene: PhantomScene, look: (typeof LOOK)['ct' | 'mri']): void {
  const coronal = scene.plane === 'coronal';
  const [cy, rx, ry] = coronal ? [33, 26, 30] : [33, 30, 21];
  if (scene.modality === 'mri') c.ellipse(32, cy, rx, ry, MRI_FAT);
  c.ellipse(32, cy, rx - (scene.modality === 'mri' ? 2 : 0), ry - (scene.modality === 'mri' ? 2 : 0), grey(look.body));
  for (const a of organAreas(scene.region, scene.plane)) c.ellipse(a.cx, a.cy, a.rx, a.ry, grey(look.organ[a.organ]));
  if (scene.region === 'chest') c.ellipse(coronal ? 35 : 32, coronal ? 44 : 37, coronal ? 7 : 6, coronal ? 7 : 6, grey(Math.round((look.body + look.organ.liver) / 2)));
  if (coronal) c.rect(31, 8, 33, 60, grey(look.bone));
  else c.ellipse(32, scene.region === 'chest' ? 48 : 50, 3, 3, grey(look.bone));
}

function paintXray(c: Canvas): void {
  const look = LOOK['x-ray'];
  c.rect(0, 0, 64, 64, grey(15));
  c.ellipse(32, 34, 28, 31, grey(look.body));
  for (const a of organAreas('chest', 'coronal')) {
    c.ellipse(a.cx, a.cy, a.rx, a.ry, grey(look.organ.lung));
    for (let y = 13; y <= 43; y += 6) c.rect(a.cx - a.rx + 2, y, a.cx + a.rx - 2, y + 1, grey(look.organ.lung + 30));
  }
  c.ellipse(35, 44, 8, 8, grey(175));
  c.rect(8, 8, 28, 9, grey(look.bone));
  c.rect(36, 8, 56, 9, grey(look.bone));
}

/** A slide's texture comes from its own stream so that findings never shift it. */
function paintSlide(c: Canvas, texture: Rng): void {
  c.rect(0, 0, 64, 64, SLIDE_BACKGROUND);
  for (let i = 0; i < 4; i++) c.ellipse(texture.int(6, 58), texture.int(6, 58), 3, 2.5, SLIDE_LUMEN);
  for (let i = 0; i < 70; i++) c.ellipse(texture.int(1, 63), texture.int(1, 63), 1.2, 1.2, SLIDE_NUCLEUS);
}

function lesionColor(scene: PhantomScene, organ: PhantomOrgan | undefined): Rgb {
  if (scene.modality === 'pathology' || organ === undefined) return SLIDE_LESION;
  return grey(LOOK[scene.modality].lesion[organ]);
}

function paintFinding(c: Canvas, scene: PhantomScene, f: PhantomFinding): void {
  const s = 64 / scene.size;
  const [cx, cy, r] = [f.cx * s, f.cy * s, f.r * s];
  const color = lesionColor(scene, f.organ);
  if (f.shape === 'round') c.ellipse(cx, cy, r, r, color);
  else if (f.shape === 'oval') c.ellipse(cx, cy, r * 1.2, r * 0.6, color);
  else c.blob(cx, cy, r, f.phase, color);
}

/**
 * The scene as raw RGB bytes (size × size × 3, row-major). `seed` drives noise and slide texture only,
 * so the same scene with its findings removed differs exactly where the findings are.
 */
export function renderScene(scene: PhantomScene, seed: number): Buffer {
  const c = new Canvas(scene.size);
  const texture = new Rng(seed ^ 0x5bd1e995);
  if (scene.modality === 'pathology') paintSlide(c, texture);
  else if (scene.modality === 'x-ray') paintXray(c);
  else if (scene.region === 'head') paintHead(c, scene, LOOK[scene.modality]);
  else paintTrunk(c, scene, LOOK[scene.modality]);
  for (const f of scene.findings) paintFinding(c, scene, f);
  return c.toBytes(new Rng(seed ^ 0x27d4eb2f));
}
