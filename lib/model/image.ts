/**
 * Image preprocessing as LLaVA + transformers' CLIPImageProcessor do it, from preprocessor_config.json:
 * PIL `Image.open(p).convert('RGB')` → LLaVA `expand2square` with the mean colour (image_aspect_ratio "pad")
 * → resize the shortest edge (PIL resampling) → centre crop → rescale → normalise → float32 [3, H, W].
 *
 * sharp decodes; the colour conversion and the resampling are PIL's, written out here, because sharp's own
 * (ICC-managed CMYK, libvips' shrink-then-reduce resize) give visibly different pixels from what LLaVA's
 * models saw in training. The PIL resampler is reproduced bit for bit (tested against Pillow's output).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { HscrError, dataError } from '../errors';
import { configError, readJsonObject, writeFileAtomic } from './config';

/** Pillow's resampling filter codes (Image.Resampling): LANCZOS 1, BILINEAR 2, BICUBIC 3, BOX 4, HAMMING 5. */
export type PilResample = 1 | 2 | 3 | 4 | 5;
export type AspectRatio = 'pad' | 'square';
export type Rgb = [number, number, number];

export interface ImagePreprocessing {
  imageMean: Rgb;
  imageStd: Rgb;
  doResize: boolean;
  /** Resize target: the shortest edge (aspect kept, as CLIP's `shortest_edge`), or an exact size. */
  resize: { shortestEdge: number } | { height: number; width: number };
  resample: PilResample;
  doCenterCrop: boolean;
  cropHeight: number;
  cropWidth: number;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  /** LLaVA's image_aspect_ratio: "pad" expands to a square in the mean colour first; "square" does not. */
  aspectRatio: AspectRatio;
}

/** OpenAI CLIP's normalisation (transformers' OPENAI_CLIP_MEAN / OPENAI_CLIP_STD). */
export const CLIP_MEAN: Rgb = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: Rgb = [0.26862954, 0.26130258, 0.27577711];

/** CLIPImageProcessor at one input size, with LLaVA's padding: what `hscr init` writes. */
export function clipPreprocessing(imageSize: number, aspectRatio: AspectRatio = 'pad'): ImagePreprocessing {
  return {
    imageMean: [...CLIP_MEAN],
    imageStd: [...CLIP_STD],
    doResize: true,
    resize: { shortestEdge: imageSize },
    resample: 3,
    doCenterCrop: true,
    cropHeight: imageSize,
    cropWidth: imageSize,
    doRescale: true,
    rescaleFactor: 1 / 255,
    doNormalize: true,
    aspectRatio,
  };
}

// ---- preprocessor_config.json ---------------------------------------------------------------------

type Json = Record<string, unknown>;

function rgb(file: string, raw: Json, key: string, fallback: Rgb): Rgb {
  const v = raw[key];
  if (v === undefined || v === null) return [...fallback];
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw configError(file, key, 'must be a list of three numbers (R, G, B)', v);
  }
  return [v[0], v[1], v[2]];
}

function flag(file: string, raw: Json, key: string, fallback: boolean): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw configError(file, key, 'must be true or false', v);
  return v;
}

function positiveInt(file: string, key: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw configError(file, key, 'must be a positive integer', v);
  return v;
}

/** `size` / `crop_size`: an int (old configs) or {shortest_edge} / {height, width}. */
function sizeField(file: string, raw: Json, key: string, fallback: number): { shortestEdge: number } | { height: number; width: number } {
  const v = raw[key];
  if (v === undefined || v === null) return { shortestEdge: fallback };
  if (typeof v === 'number') return { shortestEdge: positiveInt(file, key, v) };
  if (typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Json;
    if (o.shortest_edge !== undefined) return { shortestEdge: positiveInt(file, `${key}.shortest_edge`, o.shortest_edge) };
    if (o.height !== undefined || o.width !== undefined) {
      return { height: positiveInt(file, `${key}.height`, o.height), width: positiveInt(file, `${key}.width`, o.width) };
    }
  }
  throw configError(file, key, 'must be an integer, {"shortest_edge": n} or {"height": h, "width": w}', v);
}

function aspectRatio(file: string, raw: Json, modelRaw: Json | undefined): AspectRatio {
  const explicit = raw.image_aspect_ratio ?? (raw.do_pad === undefined ? modelRaw?.image_aspect_ratio : raw.do_pad ? 'pad' : 'square');
  if (explicit === undefined || explicit === null) {
    // transformers' own LLaVA processor does not pad; LLaVA and LLaVA-Med trained with "pad".
    return raw.processor_class === 'LlavaProcessor' ? 'square' : 'pad';
  }
  if (explicit !== 'pad' && explicit !== 'square') {
    throw configError(file, 'image_aspect_ratio', 'must be "pad" or "square" (anyres tiling is not implemented)', explicit);
  }
  return explicit;
}

/** Parses one preprocessor_config.json object; missing keys take CLIPImageProcessor's defaults. */
export function parsePreprocessing(raw: Json, file: string, modelRaw?: Json): ImagePreprocessing {
  const resample = raw.resample ?? 3;
  if (resample !== 1 && resample !== 2 && resample !== 3 && resample !== 4 && resample !== 5) {
    throw configError(file, 'resample', 'must be a Pillow filter code 1–5 (LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING)', resample);
  }
  const crop = sizeField(file, raw, 'crop_size', 224);
  const cropHeight = 'shortestEdge' in crop ? crop.shortestEdge : crop.height;
  const cropWidth = 'shortestEdge' in crop ? crop.shortestEdge : crop.width;
  const rescaleFactor = raw.rescale_factor ?? 1 / 255;
  if (typeof rescaleFactor !== 'number' || !(rescaleFactor > 0)) throw configError(file, 'rescale_factor', 'must be a positive number', rescaleFactor);
  const std = rgb(file, raw, 'image_std', CLIP_STD);
  if (std.some((s) => s <= 0)) throw configError(file, 'image_std', 'must be positive', std);
  return {
    imageMean: rgb(file, raw, 'image_mean', CLIP_MEAN),
    imageStd: std,
    doResize: flag(file, raw, 'do_resize', true),
    resize: sizeField(file, raw, 'size', 224),
    resample,
    doCenterCrop: flag(file, raw, 'do_center_crop', true),
    cropHeight,
    cropWidth,
    doRescale: flag(file, raw, 'do_rescale', true),
    rescaleFactor,
    doNormalize: flag(file, raw, 'do_normalize', true),
    aspectRatio: aspectRatio(file, raw, modelRaw),
  };
}

export interface ReadPreprocessingOptions {
  /** Where LLaVA-Med's CLIP folder is (its preprocessor_config.json is used when the model folder has none). */
  visionTowerDir?: string;
}

/**
 * <dir>/preprocessor_config.json, else the CLIP folder's (LLaVA-Med loads its image processor from
 * mm_vision_tower). image_aspect_ratio comes from the preprocessor file, else config.json (LLaVA-Med keeps
 * it there), else "pad".
 */
export function readPreprocessing(dir: string, options: ReadPreprocessingOptions = {}): ImagePreprocessing {
  const candidates = [path.join(dir, 'preprocessor_config.json')];
  if (options.visionTowerDir) candidates.push(path.join(options.visionTowerDir, 'preprocessor_config.json'));
  candidates.push(path.join(dir, 'vision_tower', 'preprocessor_config.json'));
  const file = candidates.find((c) => fs.existsSync(c));
  if (!file) throw new HscrError(`no preprocessor_config.json in ${dir} or its vision tower folder`, 'E_CONFIG', dir);
  const modelFile = path.join(dir, 'config.json');
  const modelRaw = fs.existsSync(modelFile) ? readJsonObject(modelFile) : undefined;
  return parsePreprocessing(readJsonObject(file), file, modelRaw);
}

/** Writes <dir>/preprocessor_config.json as CLIPImageProcessor writes it, plus LLaVA's image_aspect_ratio. */
export function writePreprocessing(dir: string, p: ImagePreprocessing): void {
  const json: Json = {
    image_processor_type: 'CLIPImageProcessor',
    do_convert_rgb: true,
    do_resize: p.doResize,
    size: 'shortestEdge' in p.resize ? { shortest_edge: p.resize.shortestEdge } : { height: p.resize.height, width: p.resize.width },
    resample: p.resample,
    do_center_crop: p.doCenterCrop,
    crop_size: { height: p.cropHeight, width: p.cropWidth },
    do_rescale: p.doRescale,
    rescale_factor: p.rescaleFactor,
    do_normalize: p.doNormalize,
    image_mean: p.imageMean,
    image_std: p.imageStd,
    image_aspect_ratio: p.aspectRatio,
  };
  const file = path.join(dir, 'preprocessor_config.json');
  parsePreprocessing(json, file); // the same checks a reader applies, before anything is written
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomic(file, `${JSON.stringify(json, null, 2)}\n`);
}

// ---- decoding: PIL's convert('RGB') ---------------------------------------------------------------

/** Interleaved 8-bit RGB. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** PIL's CMYK→RGB (Convert.c cmyk2rgb): R = (255−K) − C·(255−K)/255, no colour management. */
function cmykToRgb(cmyk: Uint8Array): Uint8Array {
  const out = new Uint8Array((cmyk.length / 4) * 3);
  const mulDiv255 = (a: number, b: number) => {
    const t = a * b + 128;
    return ((t >> 8) + t) >> 8;
  };
  for (let i = 0, j = 0; i < cmyk.length; i += 4, j += 3) {
    const nk = 255 - cmyk[i + 3];
    out[j] = nk - mulDiv255(cmyk[i], nk);
    out[j + 1] = nk - mulDiv255(cmyk[i + 1], nk);
    out[j + 2] = nk - mulDiv255(cmyk[i + 2], nk);
  }
  return out;
}

/** PIL opens 16-bit greyscale as mode "I"; convert('RGB') then clips at 255 (it does not scale). */
function clipGrey16(grey: Uint8Array): Uint8Array {
  const values = new Uint16Array(grey.buffer.slice(grey.byteOffset, grey.byteOffset + grey.length));
  const out = new Uint8Array(values.length * 3);
  for (let i = 0; i < values.length; i++) out.fill(Math.min(values[i], 255), i * 3, i * 3 + 3);
  return out;
}

/**
 * Decodes any image sharp reads into the RGB bytes PIL's `Image.open(p).convert('RGB')` gives: embedded ICC
 * profiles ignored, alpha dropped (not composited), greyscale replicated, Adobe CMYK converted naively,
 * no EXIF rotation, first frame only.
 */
export async function decodeRgb(input: string | Buffer): Promise<RgbImage> {
  const where = typeof input === 'string' ? input : '<buffer>';
  try {
    const open = () => sharp(input, { ignoreIcc: true, failOn: 'error' });
    const meta = await open().metadata();
    let data: Uint8Array;
    let info: sharp.OutputInfo;
    if (meta.space === 'cmyk') {
      ({ data, info } = await open().pipelineColourspace('cmyk').toColourspace('cmyk').raw().toBuffer({ resolveWithObject: true }));
      data = cmykToRgb(data);
    } else if (meta.depth === 'ushort' && meta.channels === 1) {
      ({ data, info } = await open().toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true }));
      data = clipGrey16(data);
    } else {
      ({ data, info } = await open().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true }));
      if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    }
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
  } catch (e) {
    if (e instanceof HscrError) throw e;
    throw dataError(where, undefined, undefined, `cannot decode the image: ${(e as Error).message}`, where);
  }
}

// ---- geometry: LLaVA's expand2square, PIL's resize, transformers' center_crop ----------------------

/** LLaVA's expand2square: centred on a square canvas of the background colour (offset (long−short)//2). */
export function expandToSquare(image: RgbImage, background: Rgb): RgbImage {
  const { width, height } = image;
  if (width === height) return image;
  const side = Math.max(width, height);
  const out = new Uint8Array(side * side * 3);
  const backgroundRow = new Uint8Array(side * 3);
  for (let x = 0; x < side; x++) backgroundRow.set(background, x * 3);
  for (let y = 0; y < side; y++) out.set(backgroundRow, y * side * 3);
  const left = Math.floor((side - width) / 2);
  const top = Math.floor((side - height) / 2);
  for (let y = 0; y < height; y++) {
    out.set(image.data.subarray(y * width * 3, (y + 1) * width * 3), ((top + y) * side + left) * 3);
  }
  return { data: out, width: side, height: side };
}

/** LLaVA's background: tuple(int(x*255) for x in image_processor.image_mean), truncation included. */
export function padColour(mean: Rgb): Rgb {
  return [Math.trunc(mean[0] * 255), Math.trunc(mean[1] * 255), Math.trunc(mean[2] * 255)];
}

interface PilFilter {
  support: number;
  weight(x: number): number;
}

const sinc = (x: number) => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));

// Pillow's Resample.c filters.
const PIL_FILTERS: Record<PilResample, PilFilter> = {
  1: { support: 3, weight: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
  2: { support: 1, weight: (x) => (Math.abs(x) < 1 ? 1 - Math.abs(x) : 0) },
  3: {
    support: 2,
    weight: (x) => {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
  4: { support: 0.5, weight: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  5: {
    support: 1,
    weight: (x) => {
      const t = Math.abs(x);
      if (t === 0) return 1;
      if (t >= 1) return 0;
      // Pillow writes 0.54f and 0.46f: float constants.
      return (Math.sin(Math.PI * t) / (Math.PI * t)) * (Math.fround(0.54) + Math.fround(0.46) * Math.cos(Math.PI * t));
    },
  },
};

const PRECISION_BITS = 32 - 8 - 2;

interface Coefficients {
  /** Per output index: first input index and tap count. */
  first: Int32Array;
  count: Int32Array;
  /** Fixed-point weights, `ksize` per output index. */
  weights: Int32Array;
  ksize: number;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis. */
function coefficients(inSize: number, outSize: number, filter: PilFilter): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const inverseScale = 1 / filterScale; // Pillow multiplies by the reciprocal; dividing would round differently
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = filter.weight((x + xmin - center + 0.5) * inverseScale);
      total += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const k = total !== 0 ? w[x] / total : w[x];
      weights[xx * ksize + x] = Math.trunc(k < 0 ? -0.5 + k * (1 << PRECISION_BITS) : 0.5 + k * (1 << PRECISION_BITS));
    }
    first[xx] = xmin;
    count[xx] = xmax;
  }
  return { first, count, weights, ksize };
}

function clip8(v: number): number {
  if (v >= 1 << (PRECISION_BITS + 8)) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

function resampleHorizontal(src: RgbImage, rowFirst: number, rows: number, outWidth: number, c: Coefficients): RgbImage {
  const out = new Uint8Array(outWidth * rows * 3);
  const data = src.data;
  const { first, count, weights, ksize } = c;
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < rows; y++) {
    const rowBase = (y + rowFirst) * src.width * 3;
    let o = y * outWidth * 3;
    for (let xx = 0; xx < outWidth; xx++) {
      let r = half;
      let g = half;
      let b = half;
      let k = xx * ksize;
      let p = rowBase + first[xx] * 3;
      for (let x = count[xx]; x > 0; x--, k++, p += 3) {
        const w = weights[k];
        r += data[p] * w;
        g += data[p + 1] * w;
        b += data[p + 2] * w;
      }
      out[o++] = clip8(r);
      out[o++] = clip8(g);
      out[o++] = clip8(b);
    }
  }
  return { data: out, width: outWidth, height: rows };
}

function resampleVertical(src: RgbImage, outHeight: number, c: Coefficients, shift: number): RgbImage {
  const rowLength = src.width * 3;
  const out = new Uint8Array(rowLength * outHeight);
  const data = src.data;
  const { first, count, weights, ksize } = c;
  // Accumulate whole rows at once: the inner loop then walks memory in order.
  const sums = new Float64Array(rowLength);
  for (let yy = 0; yy < outHeight; yy++) {
    sums.fill(1 << (PRECISION_BITS - 1));
    const ymin = first[yy] - shift;
    for (let y = 0; y < count[yy]; y++) {
      const w = weights[yy * ksize + y];
      const base = (ymin + y) * rowLength;
      for (let i = 0; i < rowLength; i++) sums[i] += data[base + i] * w;
    }
    const o = yy * rowLength;
    for (let i = 0; i < rowLength; i++) out[o + i] = clip8(sums[i]);
  }
  return { data: out, width: src.width, height: outHeight };
}

/** Pillow's Image.resize((width, height), resample) on an RGB image: horizontal pass, then vertical, in 8 bits. */
export function resizePil(image: RgbImage, width: number, height: number, resample: PilResample): RgbImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new HscrError('resize target must be positive integers', 'E_ARG', { width, height });
  }
  const filter = PIL_FILTERS[resample];
  if (!filter) throw new HscrError('resample must be a Pillow filter code 1–5', 'E_ARG', resample);
  let current = image;
  const vertical = coefficients(image.height, height, filter);
  let shift = 0;
  if (width !== image.width) {
    // Only the source rows the vertical pass reads go through the horizontal pass (as Pillow does).
    const rowFirst = vertical.first[0];
    const rowLast = vertical.first[height - 1] + vertical.count[height - 1];
    current = resampleHorizontal(image, rowFirst, rowLast - rowFirst, width, coefficients(image.width, width, filter));
    shift = rowFirst;
  }
  if (height !== image.height) current = resampleVertical(current, height, vertical, shift);
  else if (shift !== 0) throw new HscrError('resize: rows skipped without a vertical pass', 'E_INTERNAL');
  return current === image ? { data: image.data.slice(), width, height } : current;
}

/** transformers' get_resize_output_image_size(default_to_square=False): short side → size, long side truncated. */
export function resizeTarget(width: number, height: number, p: ImagePreprocessing): { width: number; height: number } {
  if (!('shortestEdge' in p.resize)) return { width: p.resize.width, height: p.resize.height };
  const s = p.resize.shortestEdge;
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((s * long) / short);
  return width <= height ? { width: s, height: newLong } : { width: newLong, height: s };
}

/** transformers' center_crop: top-left at (size − crop)//2, zero padding where the image is smaller. */
export function centerCrop(image: RgbImage, cropHeight: number, cropWidth: number): RgbImage {
  const { width, height } = image;
  const padTop = Math.max(0, Math.ceil((cropHeight - height) / 2));
  const padLeft = Math.max(0, Math.ceil((cropWidth - width) / 2));
  const top = Math.floor((height - cropHeight) / 2) + padTop;
  const left = Math.floor((width - cropWidth) / 2) + padLeft;
  const out = new Uint8Array(cropWidth * cropHeight * 3);
  for (let y = 0; y < cropHeight; y++) {
    const sy = top + y - padTop;
    if (sy < 0 || sy >= height) continue;
    for (let x = 0; x < cropWidth; x++) {
      const sx = left + x - padLeft;
      if (sx < 0 || sx >= width) continue;
      const s = (sy * width + sx) * 3;
      out.set(image.data.subarray(s, s + 3), (y * cropWidth + x) * 3);
    }
  }
  return { data: out, width: cropWidth, height: cropHeight };
}

/**
 * transformers' rescale then normalize, with its float rounding: float32(float64(v)·factor), then
 * (x − float32(mean)) / float32(std) in float32. Channel-first output.
 */
export function normalizeToChw(image: RgbImage, p: ImagePreprocessing, out?: Float32Array): Float32Array {
  const plane = image.width * image.height;
  const target = out ?? new Float32Array(plane * 3);
  const f = Math.fround;
  for (let c = 0; c < 3; c++) {
    const mean = f(p.imageMean[c]);
    const std = f(p.imageStd[c]);
    for (let i = 0; i < plane; i++) {
      let v = image.data[i * 3 + c];
      if (p.doRescale) v = f(v * p.rescaleFactor);
      if (p.doNormalize) v = f(f(v - mean) / std);
      target[c * plane + i] = v;
    }
  }
  return target;
}

/** The pixel geometry steps, on decoded RGB (exported for tests and for callers that decode themselves). */
export function preprocessRgb(image: RgbImage, p: ImagePreprocessing): RgbImage {
  let current = p.aspectRatio === 'pad' ? expandToSquare(image, padColour(p.imageMean)) : image;
  if (p.doResize) {
    const target = resizeTarget(current.width, current.height, p);
    if (target.width !== current.width || target.height !== current.height) {
      current = resizePil(current, target.width, target.height, p.resample);
    }
  }
  if (p.doCenterCrop) current = centerCrop(current, p.cropHeight, p.cropWidth);
  return current;
}

export interface PreprocessedImage {
  /** float32 [3, height, width]. */
  data: Float32Array;
  width: number;
  height: number;
}

/** One image file or buffer → pixel_values [3, H, W]. */
export async function preprocessImage(input: string | Buffer, p: ImagePreprocessing): Promise<PreprocessedImage> {
  const pixels = preprocessRgb(await decodeRgb(input), p);
  return { data: normalizeToChw(pixels, p), width: pixels.width, height: pixels.height };
}

export interface LoadImagesOptions {
  /** Images decoded at once (default: the machine's cores). */
  concurrency?: number;
}

/**
 * A batch of image files → pixel_values [B, 3, H, W], in `paths` order. Every image must come out the same
 * size (the crop size); decoding runs `concurrency` at a time.
 */
export async function loadImages(paths: readonly string[], p: ImagePreprocessing, options: LoadImagesOptions = {}): Promise<Float32Array> {
  const concurrency = options.concurrency ?? os.availableParallelism();
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new HscrError('concurrency must be a positive integer', 'E_ARG', concurrency);
  if (!p.doCenterCrop && !('height' in p.resize)) {
    throw new HscrError('a batch needs one image size: enable do_center_crop or resize to a fixed height and width', 'E_CONFIG', p.resize);
  }
  const height = p.doCenterCrop ? p.cropHeight : (p.resize as { height: number }).height;
  const width = p.doCenterCrop ? p.cropWidth : (p.resize as { width: number }).width;
  const plane = 3 * height * width;
  const batch = new Float32Array(paths.length * plane);
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const index = next++;
      const pixels = preprocessRgb(await decodeRgb(paths[index]), p);
      normalizeToChw(pixels, p, batch.subarray(index * plane, (index + 1) * plane));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, paths.length) }, worker));
  return batch;
}
