/** Image batches for the model: each distinct image decoded once per batch, optionally kept across batches. */
import { loadImages, type ImagePreprocessing } from './image';
import { tensor, type Tensor } from '../tensor';

/** Decoded images by path, up to a byte budget (the first ones seen stay; the rest are decoded each time). */
export class PixelCache {
  private readonly cache = new Map<string, Float32Array>();
  private bytes = 0;

  constructor(
    private readonly preprocessing: ImagePreprocessing,
    private readonly imageSize: number,
    private readonly maxBytes = 512 * 2 ** 20,
  ) {}

  /** Pixels of the distinct images of `paths` (each once) and every path's index into them. */
  async batch(paths: readonly string[]): Promise<{ pixels: Tensor; index: number[] }> {
    const unique = [...new Set(paths)];
    const missing = unique.filter((p) => !this.cache.has(p));
    const plane = 3 * this.imageSize * this.imageSize;
    const decoded = missing.length ? await loadImages(missing, this.preprocessing) : new Float32Array(0);
    const fresh = new Map(missing.map((p, i) => [p, decoded.subarray(i * plane, (i + 1) * plane)] as const));
    const data = new Float32Array(unique.length * plane);
    unique.forEach((p, i) => data.set(this.cache.get(p) ?? fresh.get(p)!, i * plane));
    for (const [p, px] of fresh) this.keep(p, px);
    const at = new Map(unique.map((p, i) => [p, i] as const));
    return { pixels: tensor(data, [unique.length, 3, this.imageSize, this.imageSize]), index: paths.map((p) => at.get(p)!) };
  }

  private keep(path: string, pixels: Float32Array): void {
    if (this.bytes + pixels.byteLength > this.maxBytes) return;
    this.cache.set(path, pixels.slice());
    this.bytes += pixels.byteLength;
  }
}
