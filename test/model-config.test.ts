import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HscrError } from '../lib/errors';
import { readModelConfig, writeModelConfig, type ModelConfig, type VisionConfig } from '../lib/model/config';
import { presetConfig } from '../lib/model/presets';

type TapTest = Parameters<Extract<Parameters<typeof t.test>[0], (...a: never[]) => unknown>>[0];

function tempDir(t: TapTest): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-config-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function writeJson(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value));
}

function configFailure(t: TapTest, fn: () => unknown, field: string, file: string, value?: unknown): void {
  try {
    fn();
    t.fail(`expected E_CONFIG about ${field}`);
  } catch (e) {
    t.ok(e instanceof HscrError, 'an HscrError');
    const err = e as HscrError;
    t.equal(err.code, 'E_CONFIG', `${field}: code`);
    t.match(err.message, file, `${field}: message names the file`);
    t.match(err.message, `"${field}"`, `${field}: message names the field`);
    if (value !== undefined) t.same(err.value, value, `${field}: the offending value`);
  }
}

// Shaped like llava-hf/llava-1.5-7b-hf's config.json: text_config names only what differs from LlamaConfig.
const LLAVA_15_HF = {
  architectures: ['LlavaForConditionalGeneration'],
  ignore_index: -100,
  image_token_index: 32000,
  model_type: 'llava',
  pad_token_id: 32001,
  projector_hidden_act: 'gelu',
  text_config: { architectures: ['LlamaForCausalLM'], max_position_embeddings: 4096, model_type: 'llama', rms_norm_eps: 1e-5, vocab_size: 32064 },
  tie_word_embeddings: false,
  vision_config: {
    hidden_size: 1024,
    image_size: 336,
    intermediate_size: 4096,
    model_type: 'clip_vision_model',
    num_attention_heads: 16,
    num_hidden_layers: 24,
    patch_size: 14,
    projection_dim: 768,
  },
  vision_feature_layer: -2,
  vision_feature_select_strategy: 'default',
  vocab_size: 32064,
};

// Shaped like microsoft/llava-med-v1.5-mistral-7b's config.json (training-only keys left out).
const LLAVA_MED_15 = {
  architectures: ['LlavaMistralForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  image_aspect_ratio: 'pad',
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  mm_hidden_size: 1024,
  mm_patch_merge_type: 'flat',
  mm_projector_type: 'mlp2x_gelu',
  mm_use_im_patch_token: false,
  mm_use_im_start_end: false,
  mm_vision_select_feature: 'patch',
  mm_vision_select_layer: -2,
  mm_vision_tower: 'openai/clip-vit-large-patch14-336',
  model_type: 'llava_mistral',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 1000000.0,
  sliding_window: null,
  tie_word_embeddings: false,
  vocab_size: 32000,
};

// A CLIPModel config as openai/clip-vit-large-patch14-336 ships it: the vision part is nested.
const CLIP_L_336 = {
  architectures: ['CLIPModel'],
  model_type: 'clip',
  projection_dim: 768,
  text_config: { hidden_size: 768, num_hidden_layers: 12 },
  vision_config: {
    hidden_size: 1024,
    image_size: 336,
    intermediate_size: 4096,
    num_attention_heads: 16,
    num_hidden_layers: 24,
    patch_size: 14,
    projection_dim: 768,
  },
};

const CLIP_L_336_VISION: VisionConfig = {
  hiddenSize: 1024,
  intermediateSize: 4096,
  numLayers: 24,
  numHeads: 16,
  imageSize: 336,
  patchSize: 14,
  numChannels: 3,
  layerNormEps: 1e-5,
  hiddenAct: 'quick_gelu',
};

t.test('transformers layout: text_config gaps take LlamaConfig defaults, top-level pad and image token are read', async (t) => {
  const dir = tempDir(t);
  writeJson(path.join(dir, 'config.json'), LLAVA_15_HF);
  const cfg = readModelConfig(dir);
  t.same(cfg, {
    architecture: 'llava-hf',
    vision: CLIP_L_336_VISION,
    projector: { type: 'mlp2x_gelu' },
    text: {
      vocabSize: 32064,
      hiddenSize: 4096,
      intermediateSize: 11008,
      numLayers: 32,
      numHeads: 32,
      numKvHeads: 32,
      headDim: 128,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      slidingWindow: null,
      tieWordEmbeddings: false,
      maxPositionEmbeddings: 4096,
      bosTokenId: 1,
      eosTokenId: 2,
      padTokenId: 32001,
    },
    selectLayer: -2,
    selectFeature: 'patch',
    imageTokenIndex: 32000,
    template: 'vicuna_v1',
  } satisfies ModelConfig);
});

t.test('transformers layout: a Mistral text_config, strategy "full", absent vision_config = LLaVA\'s CLIP-L/336', async (t) => {
  const dir = tempDir(t);
  writeJson(path.join(dir, 'config.json'), {
    architectures: ['LlavaForConditionalGeneration'],
    text_config: { model_type: 'mistral', num_hidden_layers: 2 },
    vision_feature_select_strategy: 'full',
    vision_feature_layer: [-1],
  });
  const cfg = readModelConfig(dir);
  t.same(cfg.vision, CLIP_L_336_VISION);
  t.equal(cfg.text.intermediateSize, 14336, 'MistralConfig default');
  t.equal(cfg.text.numKvHeads, 8);
  t.equal(cfg.text.slidingWindow, 4096);
  t.equal(cfg.text.maxPositionEmbeddings, 131072);
  t.equal(cfg.text.numLayers, 2);
  t.equal(cfg.selectFeature, 'cls_patch');
  t.equal(cfg.selectLayer, -1);
  t.equal(cfg.template, 'mistral_instruct');
  t.equal(cfg.imageTokenIndex, 32000, 'LlavaConfig default');
});

t.test('LLaVA-Med layout: flat Mistral keys, CLIP config from <dir>/<basename of mm_vision_tower>', async (t) => {
  const dir = tempDir(t);
  writeJson(path.join(dir, 'config.json'), LLAVA_MED_15);
  writeJson(path.join(dir, 'clip-vit-large-patch14-336', 'config.json'), CLIP_L_336);
  const cfg = readModelConfig(dir);
  t.same(cfg, {
    architecture: 'llava-med',
    vision: CLIP_L_336_VISION,
    projector: { type: 'mlp2x_gelu' },
    text: {
      vocabSize: 32000,
      hiddenSize: 4096,
      intermediateSize: 14336,
      numLayers: 32,
      numHeads: 32,
      numKvHeads: 8,
      headDim: 128,
      rmsNormEps: 1e-5,
      ropeTheta: 1e6,
      slidingWindow: null,
      tieWordEmbeddings: false,
      maxPositionEmbeddings: 32768,
      bosTokenId: 1,
      eosTokenId: 2,
      padTokenId: null,
    },
    selectLayer: -2,
    selectFeature: 'patch',
    imageTokenIndex: -200,
    template: 'mistral_instruct',
  } satisfies ModelConfig);
});

t.test('LLaVA-Med layout: the CLIP folder can be given, can be a flat CLIPVisionModel config, or be vision_tower/', async (t) => {
  const dir = tempDir(t);
  const elsewhere = tempDir(t);
  writeJson(path.join(dir, 'config.json'), LLAVA_MED_15);
  writeJson(path.join(elsewhere, 'config.json'), { model_type: 'clip_vision_model', ...CLIP_L_336.vision_config, patch_size: 16, image_size: 224 });
  configFailure(t, () => readModelConfig(dir), 'mm_vision_tower', path.join(dir, 'config.json'), LLAVA_MED_15.mm_vision_tower);
  const given = readModelConfig(dir, { visionTowerDir: elsewhere });
  t.equal(given.vision.patchSize, 16);
  t.equal(given.vision.imageSize, 224);
  writeJson(path.join(dir, 'vision_tower', 'config.json'), CLIP_L_336);
  t.equal(readModelConfig(dir).vision.patchSize, 14, 'found in vision_tower/');
});

t.test('LLaVA-Med layout defaults: linear projector, llama family → vicuna_v1, explicit image_token_index kept', async (t) => {
  const dir = tempDir(t);
  writeJson(path.join(dir, 'config.json'), {
    architectures: ['LlavaLlamaForCausalLM'],
    model_type: 'llava_llama',
    hidden_size: 256,
    intermediate_size: 512,
    num_attention_heads: 4,
    num_hidden_layers: 2,
    vocab_size: 1000,
    sliding_window: 16, // LlamaConfig has none: ignored, as transformers ignores it
    image_token_index: 999,
    vision_config: { hidden_size: 64, intermediate_size: 128, num_attention_heads: 4, num_hidden_layers: 2, image_size: 32, patch_size: 8 },
  });
  const cfg = readModelConfig(dir);
  t.equal(cfg.projector.type, 'linear');
  t.equal(cfg.template, 'vicuna_v1');
  t.equal(cfg.imageTokenIndex, 999);
  t.equal(cfg.text.numKvHeads, 4, 'LlamaConfig: num_key_value_heads defaults to num_attention_heads');
  t.equal(cfg.text.headDim, 64);
  t.equal(cfg.text.slidingWindow, null);
  t.equal(cfg.text.maxPositionEmbeddings, 2048);
  t.equal(cfg.text.rmsNormEps, 1e-6);
});

t.test('writeModelConfig → readModelConfig gives the same ModelConfig, in both layouts', async (t) => {
  const configs: ModelConfig[] = [
    presetConfig('tiny', { vocabSize: 321, imageTokenIndex: 4, padTokenId: 3, slidingWindow: 7 }),
    presetConfig('small', { vocabSize: 32000 }),
    {
      ...presetConfig('tiny', { vocabSize: 100 }),
      projector: { type: 'linear' },
      selectFeature: 'cls_patch',
      selectLayer: 1,
      template: 'vicuna_v1',
      vision: { ...presetConfig('tiny', { vocabSize: 100 }).vision, hiddenAct: 'gelu', layerNormEps: 1e-6 },
      text: { ...presetConfig('tiny', { vocabSize: 100 }).text, slidingWindow: null, tieWordEmbeddings: true, eosTokenId: 7 },
    },
  ];
  for (const [i, cfg] of configs.entries()) {
    for (const layout of ['llava-hf', 'llava-med'] as const) {
      const dir = tempDir(t);
      writeModelConfig(dir, cfg, layout);
      t.same(readModelConfig(dir), { ...cfg, architecture: layout }, `config ${i} via ${layout}`);
      const raw = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      t.same(raw.architectures, [layout === 'llava-hf' ? 'LlavaForConditionalGeneration' : cfg.text.slidingWindow !== null || cfg.template === 'mistral_instruct' ? 'LlavaMistralForCausalLM' : 'LlavaLlamaForCausalLM']);
    }
  }
});

t.test('bad or missing fields: E_CONFIG naming file and field, with the value', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'config.json');
  const cases: Array<[Record<string, unknown>, string, unknown]> = [
    [{ ...LLAVA_15_HF, text_config: { ...LLAVA_15_HF.text_config, hidden_size: 'big' } }, 'text_config.hidden_size', 'big'],
    [{ ...LLAVA_15_HF, text_config: { model_type: 'gpt2' } }, 'text_config.model_type', 'gpt2'],
    [{ ...LLAVA_15_HF, text_config: { ...LLAVA_15_HF.text_config, num_key_value_heads: 5 } }, 'text_config.num_key_value_heads', 5],
    [{ ...LLAVA_15_HF, text_config: { ...LLAVA_15_HF.text_config, rope_scaling: { type: 'linear', factor: 2 } } }, 'text_config.rope_scaling', { type: 'linear', factor: 2 }],
    [{ ...LLAVA_15_HF, vision_config: { ...LLAVA_15_HF.vision_config, patch_size: 13 } }, 'vision_config.patch_size', 13],
    [{ ...LLAVA_15_HF, vision_config: { ...LLAVA_15_HF.vision_config, model_type: 'siglip_vision_model' } }, 'vision_config.model_type', 'siglip_vision_model'],
    [{ ...LLAVA_15_HF, vision_feature_select_strategy: 'cls' }, 'vision_feature_select_strategy', 'cls'],
    [{ ...LLAVA_15_HF, vision_feature_layer: -26 }, 'vision_feature_layer', -26],
    [{ ...LLAVA_15_HF, projector_hidden_act: 'relu' }, 'projector_hidden_act', 'relu'],
    [{ ...LLAVA_15_HF, hscr_template: 'chatml' }, 'hscr_template', 'chatml'],
    [{ ...LLAVA_MED_15, vision_config: CLIP_L_336.vision_config, mm_projector_type: 'mlp3x_gelu' }, 'mm_projector_type', 'mlp3x_gelu'],
    [{ ...LLAVA_MED_15, vision_config: CLIP_L_336.vision_config, mm_hidden_size: 768 }, 'mm_hidden_size', 768],
    [{ ...LLAVA_MED_15, vision_config: CLIP_L_336.vision_config, mm_use_im_start_end: true }, 'mm_use_im_start_end', true],
    [{ ...LLAVA_MED_15, vision_config: CLIP_L_336.vision_config, hidden_act: 'gelu' }, 'hidden_act', 'gelu'],
    [{ ...LLAVA_MED_15, vision_config: CLIP_L_336.vision_config, sliding_window: 0 }, 'sliding_window', 0],
    [{ model_type: 'bert' }, 'architectures', undefined],
  ];
  for (const [raw, field, value] of cases) {
    writeJson(file, raw);
    configFailure(t, () => readModelConfig(dir), field, file, value);
  }
  fs.writeFileSync(file, '{"architectures": ');
  t.throws(() => readModelConfig(dir), { code: 'E_CONFIG' }, 'JSON syntax error');
  t.throws(() => readModelConfig(path.join(dir, 'absent')), { code: 'E_IO' });
});

t.test('writeModelConfig refuses a config that would not read back, and leaves the old file alone', async (t) => {
  const dir = tempDir(t);
  const good = presetConfig('tiny', { vocabSize: 50 });
  writeModelConfig(dir, good, 'llava-hf');
  const before = fs.readFileSync(path.join(dir, 'config.json'), 'utf8');
  const bad: ModelConfig[] = [
    { ...good, text: { ...good.text, numKvHeads: 3 } },
    { ...good, text: { ...good.text, headDim: 31.5 } },
    { ...good, vision: { ...good.vision, patchSize: 7 } },
    { ...good, selectLayer: 5 },
  ];
  for (const cfg of bad) {
    t.throws(() => writeModelConfig(dir, cfg, 'llava-med'), { code: 'E_ARG' });
    t.equal(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'), before);
  }
  t.throws(() => writeModelConfig(dir, good, 'gguf' as never), { code: 'E_ARG' });
  t.same(fs.readdirSync(dir), ['config.json'], 'no temporary files left');
});
