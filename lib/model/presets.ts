/**
 * Model sizes for `hscr init`: `tiny` runs the whole pipeline in tests on a 2-core CPU; `small` is the bench
 * size, with LLaVA-Med 1.5's real vocabulary (the Mistral-7B tokenizer). Both keep LLaVA-Med's shape:
 * CLIP ViT (quick_gelu, penultimate layer, patch features) → mlp2x_gelu → Mistral-style decoder.
 */
import * as path from 'node:path';
import { HscrError } from '../errors';
import { PACKAGE_ROOT } from '../native';
import { LLAVA_IMAGE_TOKEN_INDEX, type ModelConfig } from './config';
import { expectedParameters } from './keys';

export type PresetName = 'tiny' | 'small';
export const PRESET_NAMES: readonly PresetName[] = ['tiny', 'small'];

export interface PresetOptions {
  /** The tokenizer's vocabulary size: the embedding rows. */
  vocabSize: number;
  /** The id <image> becomes in prompts; default LLaVA's −200. */
  imageTokenIndex?: number;
  padTokenId?: number | null;
  bosTokenId?: number;
  eosTokenId?: number;
  /** Mistral's attention window; tests shrink it below the sequence length to exercise it. */
  slidingWindow?: number | null;
}

/** Where the tokenizer of a preset comes from. */
export interface PresetInfo {
  tokenizer: 'corpus' | 'mistral';
  /** Largest vocabulary that keeps the preset within its parameter budget (corpus tokenizers are cut to it). */
  maxVocab: number;
  /** Parameter budget, inclusive. */
  parameterBounds: [number, number];
}

export const PRESET_INFO: Record<PresetName, PresetInfo> = {
  tiny: { tokenizer: 'corpus', maxVocab: 4096, parameterBounds: [0, 2_000_000] },
  small: { tokenizer: 'mistral', maxVocab: 32_000, parameterBounds: [20_000_000, 40_000_000] },
};

/**
 * The real Mistral-7B tokenizer beside the project (../shared, or HSCR_SHARED_DIR), the `small` preset's
 * default. An installed package has no ../shared: pass `--tokenizer <dir>` (any folder with Mistral's tokenizer.json).
 */
export function defaultMistralTokenizerDir(): string {
  const shared = process.env.HSCR_SHARED_DIR ? path.resolve(process.env.HSCR_SHARED_DIR) : path.resolve(PACKAGE_ROOT, '../shared');
  return path.join(shared, 'models/mistral-7b-tokenizer');
}

/** The special-token ids both presets take from the tokenizer. */
function tokenIds(o: PresetOptions): Pick<ModelConfig['text'], 'bosTokenId' | 'eosTokenId' | 'padTokenId'> {
  return { bosTokenId: o.bosTokenId ?? 1, eosTokenId: o.eosTokenId ?? 2, padTokenId: o.padTokenId === undefined ? null : o.padTokenId };
}

/** How both presets join vision and text: LLaVA-Med 1.5's choices (penultimate layer, patch tokens, Mistral chat). */
function llavaWiring(o: PresetOptions): Pick<ModelConfig, 'selectLayer' | 'selectFeature' | 'imageTokenIndex' | 'template'> {
  return { selectLayer: -2, selectFeature: 'patch', imageTokenIndex: o.imageTokenIndex ?? LLAVA_IMAGE_TOKEN_INDEX, template: 'mistral_instruct' };
}

function tiny(o: PresetOptions): ModelConfig {
  return {
    architecture: 'llava-hf',
    vision: {
      hiddenSize: 64,
      intermediateSize: 256,
      numLayers: 2,
      numHeads: 4,
      imageSize: 64,
      // 16-px patches: 16 visual tokens instead of 64 make every step about twice as fast, so the demo's SFT can
      // see 16k samples in its time budget — what it takes before a model trained from scratch answers from the
      // pixels (closed 62% vs 55% at 8 px in the same time). A phantom lesion (radius ≥ 4 px) still fits a patch.
      patchSize: 16,
      numChannels: 3,
      layerNormEps: 1e-5,
      hiddenAct: 'quick_gelu',
    },
    projector: { type: 'mlp2x_gelu' },
    text: {
      vocabSize: o.vocabSize,
      hiddenSize: 128,
      intermediateSize: 256,
      numLayers: 4,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 32,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      slidingWindow: o.slidingWindow === undefined ? 4096 : o.slidingWindow,
      tieWordEmbeddings: false,
      maxPositionEmbeddings: 4096,
      ...tokenIds(o),
    },
    ...llavaWiring(o),
  };
}

function small(o: PresetOptions): ModelConfig {
  return {
    architecture: 'llava-hf',
    vision: {
      hiddenSize: 256,
      intermediateSize: 1024,
      numLayers: 4,
      numHeads: 4,
      imageSize: 128,
      patchSize: 16,
      numChannels: 3,
      layerNormEps: 1e-5,
      hiddenAct: 'quick_gelu',
    },
    projector: { type: 'mlp2x_gelu' },
    text: {
      vocabSize: o.vocabSize,
      hiddenSize: 512,
      intermediateSize: 1536,
      numLayers: 6,
      numHeads: 8,
      numKvHeads: 4,
      headDim: 64,
      rmsNormEps: 1e-5,
      // LLaVA-Med 1.5 (Mistral-7B-Instruct-v0.2): θ = 1e6, no sliding window.
      ropeTheta: 1e6,
      slidingWindow: o.slidingWindow === undefined ? null : o.slidingWindow,
      tieWordEmbeddings: true,
      maxPositionEmbeddings: 32768,
      ...tokenIds(o),
    },
    ...llavaWiring(o),
  };
}

/** The ModelConfig of a preset for a tokenizer of `vocabSize` ids. */
export function presetConfig(name: PresetName, options: PresetOptions): ModelConfig {
  if (!PRESET_NAMES.includes(name)) throw new HscrError(`preset must be one of ${PRESET_NAMES.join(', ')}`, 'E_ARG', name);
  if (!Number.isInteger(options.vocabSize) || options.vocabSize < 1) {
    throw new HscrError('vocabSize must be a positive integer', 'E_ARG', options.vocabSize);
  }
  return name === 'tiny' ? tiny(options) : small(options);
}

/** Number of parameters (every weight, bias and embedding; a tied lm_head counted once). */
export function parameterCount(cfg: ModelConfig): number {
  return expectedParameters(cfg).reduce((sum, p) => sum + p.shape.reduce((a, b) => a * b, 1), 0);
}
