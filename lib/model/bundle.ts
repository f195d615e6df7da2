/**
 * A model as the pipeline stages use it: the native VLM with its tokenizer, chat template and image
 * preprocessing, and the one place where records become batches (prompt ids, answer ids, pixels).
 */
import { HscrError } from '../errors';
import type { DType } from '../native';
import { readPreprocessing, type ImagePreprocessing } from './image';
import { PixelCache } from './pixel-cache';
import { encodeExample } from './template';
import { loadTokenizer, type HscrTokenizer } from './tokenizer';
import { VisionLanguageModel, type Batch, type BatchRow, type GenerateOptions, type ModelOptions } from './vlm';

export interface ModelBundle {
  dir: string;
  model: VisionLanguageModel;
  tokenizer: HscrTokenizer;
  preprocessing: ImagePreprocessing;
}

export interface LoadBundleOptions extends ModelOptions {
  device?: string;
  dtype?: DType;
  visionTowerDir?: string;
}

export async function loadModelBundle(dir: string, options: LoadBundleOptions = {}): Promise<ModelBundle> {
  if (typeof dir !== 'string' || dir === '') throw new HscrError('model folder must be a non-empty string', 'E_ARG', dir);
  if (typeof options !== 'object' || options === null) throw new HscrError('options must be an object', 'E_ARG', options);
  const tokenizer = await loadTokenizer(dir);
  const preprocessing = readPreprocessing(dir);
  const model = await VisionLanguageModel.load(dir, options);
  if (tokenizer.vocabSize > model.config.text.vocabSize) {
    model.dispose();
    throw new HscrError(`${dir}: the tokenizer has ${tokenizer.vocabSize} ids but the model only ${model.config.text.vocabSize}`, 'E_CONFIG', dir);
  }
  return { dir, model, tokenizer, preprocessing };
}

export interface ExampleInput {
  image: string;
  question: string;
  answer?: string;
}

export interface EncodedRecord {
  promptIds: number[];
  answerIds: number[];
}

export function encodeRecord(bundle: ModelBundle, r: { question: string; answer?: string }): EncodedRecord {
  return encodeExample({ question: r.question, answer: r.answer }, bundle.tokenizer, bundle.model.config);
}

/** Pixels for the distinct images of `paths` (decoded once each) and, for every path, its index in them. */
export function loadBatchImages(bundle: ModelBundle, paths: readonly string[]): Promise<{ pixels: Batch['pixels']; index: number[] }> {
  return new PixelCache(bundle.preprocessing, bundle.model.config.vision.imageSize, 0).batch(paths);
}

/** A teacher-forcing batch: one row per record (answer = the record's answer). */
export async function batchOf(bundle: ModelBundle, records: readonly ExampleInput[]): Promise<Batch> {
  const { pixels, index } = await loadBatchImages(
    bundle,
    records.map((r) => r.image),
  );
  const rows: BatchRow[] = records.map((r, i) => {
    const enc = encodeRecord(bundle, r);
    return { image: index[i], prompt: enc.promptIds, answer: enc.answerIds };
  });
  return { pixels, rows };
}

/** Answers generated for a batch of questions (greedy by default), detokenised. */
export async function generateAnswers(
  bundle: ModelBundle,
  records: readonly ExampleInput[],
  options: GenerateOptions = {},
): Promise<string[]> {
  const batch = await batchOf(
    bundle,
    records.map((r) => ({ image: r.image, question: r.question })),
  );
  try {
    const out = await bundle.model.generate(batch, { maxNewTokens: 32, ...options });
    return out.tokens.map((ids) => bundle.tokenizer.decode(ids, { skipSpecial: true }).trim());
  } finally {
    batch.pixels.dispose();
  }
}

export function disposeBundle(bundle: ModelBundle): void {
  bundle.model.dispose();
}
