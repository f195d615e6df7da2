import t from 'tap';
import { SHARED_DIR, needShared } from './helpers/shared';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import {
  CLIP_MEAN,
  CLIP_STD,
  centerCrop,
  clipPreprocessing,
  decodeRgb,
  loadImages,
  normalizeToChw,
  preprocessImage,
  preprocessRgb,
  readPreprocessing,
  resizePil,
  resizeTarget,
  writePreprocessing,
  type ImagePreprocessing,
  type PilResample,
} from '../lib/model/image';

type TapTest = Parameters<Extract<Parameters<typeof t.test>[0], (...a: never[]) => unknown>>[0];

const SHARED = SHARED_DIR;
const FIXTURE = path.resolve(__dirname, 'fixtures/model/pil-resize.json');

/** CLIP normalisation of one 8-bit value in channel c, in plain double arithmetic. */
const norm = (v: number, c: number) => (v / 255 - CLIP_MEAN[c]) / CLIP_STD[c];

function tempDir(t: TapTest): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-image-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function png(pixels: number[], width: number, height: number, channels: 1 | 2 | 3 | 4): Promise<Buffer> {
  const image = sharp(Buffer.from(pixels), { raw: { width, height, channels } });
  return (channels <= 2 ? image.toColourspace('b-w') : image).png().toBuffer();
}

/** Preprocessing without resizing: the image already has the crop size, or padding makes it so. */
const noResize = (size: number, aspectRatio: 'pad' | 'square'): ImagePreprocessing => ({ ...clipPreprocessing(size, aspectRatio) });

t.test('a hand-made 2×2 image gives the hand-computed normalised values, channel-first', async (t) => {
  const pixels = [0, 128, 255, 10, 20, 30, 200, 100, 50, 255, 255, 255];
  const out = await preprocessImage(await png(pixels, 2, 2, 3), noResize(2, 'square'));
  t.same([out.width, out.height, out.data.length], [2, 2, 12]);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < 4; i++) {
      t.ok(Math.abs(out.data[c * 4 + i] - norm(pixels[i * 3 + c], c)) < 2e-6, `channel ${c} pixel ${i}`);
    }
  }
  t.ok(Math.abs(out.data[0] - -1.7922626) < 1e-6, 'black red channel: −mean/std');
});

t.test('pad: centred on a square of LLaVA\'s mean colour (int(mean·255) = 122, 116, 104)', async (t) => {
  const background = [122, 116, 104];
  for (const [w, h] of [[4, 2], [5, 2], [2, 5]]) {
    const pixels = Array.from({ length: w * h * 3 }, (_, i) => (i % 3 === 0 ? 255 : 0)); // pure red
    const out = await preprocessImage(await png(pixels, w, h, 3), noResize(Math.max(w, h), 'pad'));
    const side = Math.max(w, h);
    const top = Math.floor((side - h) / 2);
    const left = Math.floor((side - w) / 2);
    let wrong = 0;
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const inside = y >= top && y < top + h && x >= left && x < left + w;
        for (let c = 0; c < 3; c++) {
          const expected = norm(inside ? (c === 0 ? 255 : 0) : background[c], c);
          if (Math.abs(out.data[c * side * side + y * side + x] - expected) > 2e-6) wrong++;
        }
      }
    }
    t.equal(wrong, 0, `${w}×${h} → ${side}×${side}, image at row ${top}, column ${left}`);
  }
});

t.test('resize and crop geometry as transformers computes it', async (t) => {
  const p = clipPreprocessing(336);
  t.same(resizeTarget(500, 333, p), { width: 504, height: 336 }, 'long side = int(336·500/333)');
  t.same(resizeTarget(333, 500, p), { width: 336, height: 504 });
  t.same(resizeTarget(10, 10, { ...p, resize: { height: 7, width: 9 } }), { width: 9, height: 7 });
  const image = { data: Uint8Array.from({ length: 5 * 3 * 3 }, (_, i) => Math.floor(i / 3) + 1), width: 5, height: 3 };
  const cropped = centerCrop(image, 2, 2);
  t.same([...cropped.data].filter((_, i) => i % 3 === 0), [2, 3, 7, 8], 'top = (3−2)//2 = 0, left = (5−2)//2 = 1');
  const padded = centerCrop(image, 5, 4);
  // rows: top = (3−5)//2 + ceil((5−3)/2) = 0 on the zero-padded image; columns: left = (5−4)//2 = 0
  t.same([...padded.data].filter((_, i) => i % 3 === 0), [0, 0, 0, 0, 1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 0, 0, 0, 0], 'zeros where the image is smaller');
});

t.test('resizePil and the whole pipeline match Pillow bit for bit (fixture made by Pillow)', async (t) => {
  const fx = JSON.parse(fs.readFileSync(FIXTURE, 'utf8')) as {
    input: { width: number; height: number; pixels: number[] };
    cases: Array<{ resample: PilResample; width: number; height: number; pixels: number[] }>;
    pipeline: { size: number; chw: number[] };
  };
  const image = { data: Uint8Array.from(fx.input.pixels), width: fx.input.width, height: fx.input.height };
  for (const c of fx.cases) {
    const out = resizePil(image, c.width, c.height, c.resample);
    const wrong = [...out.data].filter((v, i) => v !== c.pixels[i]).length;
    t.equal(wrong, 0, `filter ${c.resample}, ${image.width}×${image.height} → ${c.width}×${c.height}`);
  }
  const p = clipPreprocessing(fx.pipeline.size);
  const chw = normalizeToChw(preprocessRgb(image, p), p);
  t.equal([...chw].filter((v, i) => v !== fx.pipeline.chw[i]).length, 0, 'pad + bicubic + crop + float32 normalise');
  t.throws(() => resizePil(image, 0, 3, 3), { code: 'E_ARG' });
});

t.test('decoding matches PIL convert("RGB"): alpha dropped, grey replicated, 16-bit grey clipped', async (t) => {
  const rgba = await decodeRgb(await png([10, 20, 30, 0, 200, 100, 50, 128], 2, 1, 4));
  t.same([...rgba.data], [10, 20, 30, 200, 100, 50], 'transparent pixels keep their colour');
  const la = await decodeRgb(await png([77, 0, 200, 255], 2, 1, 2));
  t.same([...la.data], [77, 77, 77, 200, 200, 200]);
  const grey = await decodeRgb(await png([0, 50, 100, 255], 2, 2, 1));
  t.same([...grey.data], [0, 0, 0, 50, 50, 50, 100, 100, 100, 255, 255, 255]);
  const grey16 = await decodeRgb(path.resolve(__dirname, 'fixtures/model/grey16.png')); // 0, 200, 1000, 65535
  t.same([...grey16.data], [0, 0, 0, 200, 200, 200, 255, 255, 255, 255, 255, 255], 'PIL opens it as mode "I"; convert("RGB") clips');
  await t.rejects(decodeRgb(Buffer.from('not an image')), { code: 'E_DATA' });
  await t.rejects(decodeRgb(path.join(SHARED, 'no-such.jpg')), { code: 'E_DATA', message: /no-such\.jpg/ });
});

t.test('CMYK JPEGs decode like Pillow: the originals against the Pillow-converted copies', { skip: needShared('data/pathvqa/images_cmyk_original/test', 'data/pathvqa/images/test') }, async (t) => {
  const originals = path.join(SHARED, 'data/pathvqa/images_cmyk_original/test');
  const copies = path.join(SHARED, 'data/pathvqa/images/test');
  const files = fs.readdirSync(originals).sort().slice(0, 12);
  t.equal(files.length, 12);
  let worstPsnr = Infinity;
  let sharpDefaultBest = 0;
  for (const f of files) {
    const ours = await decodeRgb(path.join(originals, f));
    const copy = await decodeRgb(path.join(copies, f));
    t.same([ours.width, ours.height], [copy.width, copy.height]);
    worstPsnr = Math.min(worstPsnr, psnr(ours.data, copy.data));
    // the control: sharp's own (ICC-managed) CMYK conversion
    const managed = await sharp(path.join(originals, f)).removeAlpha().raw().toBuffer();
    sharpDefaultBest = Math.max(sharpDefaultBest, psnr(new Uint8Array(managed), copy.data));
  }
  // The copies were re-encoded at JPEG quality 95 (37.8 dB at worst against the decoded CMYK, per the README).
  t.ok(worstPsnr > 37, `worst PSNR ${worstPsnr.toFixed(2)} dB`);
  t.ok(sharpDefaultBest < 30, `sharp's ICC conversion would be far off: best ${sharpDefaultBest.toFixed(2)} dB`);
});

function psnr(a: Uint8Array, b: Uint8Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i] - b[i]) ** 2;
  return 10 * Math.log10((255 * 255) / (se / a.length));
}

t.test('preprocessor_config.json: CLIP\'s old format, LLaVA-Med\'s CLIP folder and config.json aspect ratio', async (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, 'vision_tower'));
  fs.writeFileSync(
    path.join(dir, 'vision_tower', 'preprocessor_config.json'),
    JSON.stringify({
      crop_size: 336,
      do_center_crop: true,
      do_normalize: true,
      do_resize: true,
      feature_extractor_type: 'CLIPFeatureExtractor',
      image_mean: CLIP_MEAN,
      image_std: CLIP_STD,
      resample: 3,
      size: 336,
    }),
  );
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ image_aspect_ratio: 'square' }));
  t.same(readPreprocessing(dir), { ...clipPreprocessing(336), aspectRatio: 'square' });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({}));
  t.equal(readPreprocessing(dir).aspectRatio, 'pad', 'LLaVA\'s default');
  const own = tempDir(t);
  const p: ImagePreprocessing = { ...clipPreprocessing(64), resample: 2, resize: { height: 70, width: 80 }, cropHeight: 60, cropWidth: 50 };
  writePreprocessing(own, p);
  t.same(readPreprocessing(own), p, 'round trip');
  for (const [field, value] of [['resample', 0], ['image_mean', [0.5, 0.5]], ['image_aspect_ratio', 'anyres'], ['size', 'big'], ['image_std', [1, 0, 1]]] as const) {
    fs.writeFileSync(path.join(own, 'preprocessor_config.json'), JSON.stringify({ [field]: value }));
    t.throws(() => readPreprocessing(own), { code: 'E_CONFIG', message: new RegExp(`"${field}"`) }, field);
  }
  t.throws(() => readPreprocessing(tempDir(t)), { code: 'E_CONFIG' });
});

t.test('loadImages: a batch [B, 3, H, W] in path order, equal to one-by-one preprocessing', { skip: needShared('data/slake/imgs/xmlab102/source.jpg', 'data/slake/imgs/xmlab103/source.jpg', 'data/slake/imgs/xmlab105/source.jpg') }, async (t) => {
  const dir = path.join(SHARED, 'data/slake/imgs');
  const files = ['xmlab102', 'xmlab103', 'xmlab105'].map((f) => path.join(dir, f, 'source.jpg'));
  const p = clipPreprocessing(32);
  const batch = await loadImages([...files, files[0]], p, { concurrency: 2 });
  t.equal(batch.length, 4 * 3 * 32 * 32);
  for (const [i, file] of [...files, files[0]].entries()) {
    const one = await preprocessImage(file, p);
    const slice = batch.subarray(i * 3072, (i + 1) * 3072);
    t.equal(slice.filter((v, j) => v !== one.data[j]).length, 0, `image ${i}`);
  }
  t.ok(batch.subarray(0, 3072).some((v, j) => v !== batch[3072 + j]), 'different images differ');
  await t.rejects(loadImages([files[0], path.join(dir, 'missing.jpg')], p), { code: 'E_DATA', message: /missing\.jpg/ });
  await t.rejects(loadImages(files, p, { concurrency: 0 }), { code: 'E_ARG' });
});
