/** A hand-sized model config and batch for native model tests (no tokenizer or images needed). */
import type { ModelConfig } from '../../lib/model/config';
import { randn } from '../../lib/tensor';
import type { Batch } from '../../lib/model/vlm';

export const IMAGE = -200;

export function tinyConfig(overrides: Partial<ModelConfig['text']> = {}): ModelConfig {
  return {
    architecture: 'llava-hf',
    vision: { hiddenSize: 32, intermediateSize: 64, numLayers: 3, numHeads: 4, imageSize: 32, patchSize: 8, numChannels: 3, layerNormEps: 1e-5, hiddenAct: 'quick_gelu' },
    projector: { type: 'mlp2x_gelu' },
    text: {
      vocabSize: 61, hiddenSize: 48, intermediateSize: 96, numLayers: 3, numHeads: 4, numKvHeads: 2, headDim: 12,
      rmsNormEps: 1e-5, ropeTheta: 10000, slidingWindow: 12, tieWordEmbeddings: false, maxPositionEmbeddings: 512,
      bosTokenId: 1, eosTokenId: 2, padTokenId: 0, ...overrides,
    },
    selectLayer: -2,
    selectFeature: 'patch',
    imageTokenIndex: IMAGE,
    template: 'mistral_instruct',
  };
}

/** Ragged rows over two images; row 2 reuses image 0. */
export function tinyBatch(seed = 11): Batch {
  return {
    pixels: randn([2, 3, 32, 32], { seed }),
    rows: [
      { image: 0, prompt: [1, 5, 6, IMAGE, 7, 8, 9], answer: [10, 11, 12, 2] },
      { image: 1, prompt: [1, IMAGE, 13], answer: [14, 15, 16, 17, 18, 19, 2] },
      { image: 0, prompt: [1, 20, IMAGE, 21, 22], answer: [23, 2] },
    ],
  };
}
