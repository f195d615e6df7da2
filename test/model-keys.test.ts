import t from 'tap';
import { HscrError } from '../lib/errors';
import type { ModelConfig } from '../lib/model/config';
import {
  detectLayout,
  expectedParameters,
  fromInternalKey,
  planCheckpointLoad,
  toInternalKey,
  type CheckpointEntry,
  type CheckpointLayout,
} from '../lib/model/keys';
import { presetConfig } from '../lib/model/presets';

type TapTest = Parameters<Extract<Parameters<typeof t.test>[0], (...a: never[]) => unknown>>[0];

const tiny = presetConfig('tiny', { vocabSize: 500 });
const tinyLinear: ModelConfig = { ...tiny, projector: { type: 'linear' } };
const tinyTied: ModelConfig = { ...tiny, text: { ...tiny.text, tieWordEmbeddings: true } };

/** transformers' LlavaForConditionalGeneration._checkpoint_conversion_mapping (old key → new key). */
const HF_CONVERSION: Array<[RegExp, string]> = [
  [/^language_model\.model/, 'model.language_model'],
  [/^vision_tower/, 'model.vision_tower'],
  [/^multi_modal_projector/, 'model.multi_modal_projector'],
  [/^language_model\.lm_head/, 'lm_head'],
];

function entries(layout: CheckpointLayout, cfg: ModelConfig, file = 'model.safetensors'): CheckpointEntry[] {
  return expectedParameters(cfg).map((p) => ({ name: fromInternalKey(layout, p.name, cfg.projector.type), shape: p.shape, file }));
}

function checkpointError(t: TapTest, fn: () => unknown, ...fragments: string[]): void {
  try {
    fn();
    t.fail('expected E_CHECKPOINT');
  } catch (e) {
    t.ok(e instanceof HscrError && e.code === 'E_CHECKPOINT', `E_CHECKPOINT (${(e as Error).message.slice(0, 120)})`);
    for (const f of fragments) t.match((e as Error).message, f, `message names ${f}`);
  }
}

t.test('expectedParameters: shapes follow the config (GQA k/v, patch grid + CLS, untied head)', async (t) => {
  const byName = new Map(expectedParameters(tiny).map((p) => [p.name, p.shape]));
  t.same(byName.get('vision_tower.vision_model.embeddings.patch_embedding.weight'), [64, 3, 16, 16]);
  t.same(byName.get('vision_tower.vision_model.embeddings.position_embedding.weight'), [17, 64], '(64/16)² patches + CLS');
  t.same(byName.get('vision_tower.vision_model.encoder.layers.1.mlp.fc1.weight'), [256, 64]);
  t.same(byName.get('multi_modal_projector.linear_1.weight'), [128, 64]);
  t.same(byName.get('multi_modal_projector.linear_2.weight'), [128, 128]);
  t.same(byName.get('language_model.model.layers.3.self_attn.q_proj.weight'), [128, 128]);
  t.same(byName.get('language_model.model.layers.3.self_attn.k_proj.weight'), [64, 128], '2 kv heads × 32');
  t.same(byName.get('language_model.model.layers.3.self_attn.o_proj.weight'), [128, 128]);
  t.same(byName.get('language_model.model.layers.0.mlp.down_proj.weight'), [128, 256]);
  t.same(byName.get('language_model.lm_head.weight'), [500, 128]);
  t.notOk(byName.has('language_model.model.layers.4.input_layernorm.weight'), 'only 4 decoder layers');
  t.notOk(new Set(expectedParameters(tinyTied).map((p) => p.name)).has('language_model.lm_head.weight'), 'tied: no lm_head');
  t.notOk(new Set(expectedParameters(tinyLinear).map((p) => p.name)).has('multi_modal_projector.linear_2.weight'), 'linear projector');
  t.equal(expectedParameters(tiny).length, 5 + 2 * 16 + 4 + 1 + 4 * 9 + 2);
});

t.test('hf-new spelling is transformers\' conversion mapping applied to hf-old', async (t) => {
  for (const p of expectedParameters(tiny)) {
    const old = fromInternalKey('hf-old', p.name);
    t.equal(old, p.name, 'internal names are the old layout');
    const rule = HF_CONVERSION.find(([re]) => re.test(old));
    const converted = rule ? old.replace(rule[0], rule[1]) : old;
    if (fromInternalKey('hf-new', p.name) !== converted) t.fail(`${p.name}: ${fromInternalKey('hf-new', p.name)} vs ${converted}`);
  }
  t.equal(fromInternalKey('hf-new', 'language_model.model.layers.0.mlp.up_proj.weight'), 'model.language_model.layers.0.mlp.up_proj.weight');
  t.equal(fromInternalKey('hf-new', 'language_model.lm_head.weight'), 'lm_head.weight');
});

t.test('LLaVA-Med spellings', async (t) => {
  const cases: Array<[string, string, 'mlp2x_gelu' | 'linear']> = [
    ['language_model.model.embed_tokens.weight', 'model.embed_tokens.weight', 'mlp2x_gelu'],
    ['language_model.model.layers.2.self_attn.k_proj.weight', 'model.layers.2.self_attn.k_proj.weight', 'mlp2x_gelu'],
    ['language_model.model.norm.weight', 'model.norm.weight', 'mlp2x_gelu'],
    ['language_model.lm_head.weight', 'lm_head.weight', 'mlp2x_gelu'],
    ['multi_modal_projector.linear_1.weight', 'model.mm_projector.0.weight', 'mlp2x_gelu'],
    ['multi_modal_projector.linear_2.bias', 'model.mm_projector.2.bias', 'mlp2x_gelu'],
    ['multi_modal_projector.linear_1.bias', 'model.mm_projector.bias', 'linear'],
    ['vision_tower.vision_model.pre_layrnorm.weight', 'model.vision_tower.vision_tower.vision_model.pre_layrnorm.weight', 'mlp2x_gelu'],
  ];
  for (const [internal, key, projector] of cases) {
    t.equal(fromInternalKey('llava-med', internal, projector), key);
    t.equal(toInternalKey('llava-med', key), internal);
  }
  t.equal(fromInternalKey('clip-tower', 'vision_tower.vision_model.encoder.layers.0.mlp.fc1.bias'), 'vision_model.encoder.layers.0.mlp.fc1.bias');
  t.equal(toInternalKey('clip-tower', 'vision_model.embeddings.class_embedding'), 'vision_tower.vision_model.embeddings.class_embedding');
});

t.test('every parameter survives from → to in every layout', async (t) => {
  let checked = 0;
  for (const cfg of [tiny, tinyLinear]) {
    for (const layout of ['hf-old', 'hf-new', 'llava-med'] as const) {
      for (const p of expectedParameters(cfg)) {
        const back = toInternalKey(layout, fromInternalKey(layout, p.name, cfg.projector.type));
        if (back !== p.name) t.fail(`${layout}: ${p.name} came back as ${back}`);
        checked++;
      }
    }
  }
  t.ok(checked > 400, `${checked} names checked`);
});

t.test('keys hscr skips on purpose give null; others are E_CHECKPOINT naming the key', async (t) => {
  const ignored: Array<[CheckpointLayout | 'clip-tower', string]> = [
    ['hf-old', 'vision_tower.vision_model.post_layernorm.weight'],
    ['hf-old', 'vision_tower.vision_model.embeddings.position_ids'],
    ['hf-new', 'model.vision_tower.vision_model.post_layernorm.bias'],
    ['hf-old', 'language_model.model.layers.3.self_attn.rotary_emb.inv_freq'],
    ['llava-med', 'model.layers.0.self_attn.rotary_emb.inv_freq'],
    ['llava-med', 'model.vision_tower.vision_tower.vision_model.embeddings.position_ids'],
    ['clip-tower', 'text_model.encoder.layers.0.mlp.fc1.weight'],
    ['clip-tower', 'logit_scale'],
    ['clip-tower', 'visual_projection.weight'],
  ];
  for (const [layout, key] of ignored) t.equal(toInternalKey(layout, key), null, `${layout} ${key}`);
  const unknown: Array<[CheckpointLayout | 'clip-tower', string]> = [
    ['hf-old', 'language_model.model.layers.0.self_attn.q_proj.lora_A.weight'],
    ['hf-old', 'model.language_model.norm.weight'],
    ['hf-new', 'language_model.model.norm.weight'],
    ['llava-med', 'model.mm_projector.4.weight'],
    ['llava-med', 'model.vision_tower.vision_model.pre_layrnorm.weight'],
    ['llava-med', 'model.layers.0.self_attn.q_proj.bias'],
    ['clip-tower', 'vision_model.post_layernormx.weight'],
    ['hf-old', 'image_newline'],
  ];
  for (const [layout, key] of unknown) checkpointError(t, () => toInternalKey(layout, key), key);
  t.throws(() => toInternalKey('gguf' as never, 'x'), { code: 'E_ARG' });
  t.throws(() => fromInternalKey('hf-old', 'language_model.model.rotary.weight'), { code: 'E_ARG' });
});

t.test('detectLayout', async (t) => {
  for (const layout of ['hf-old', 'hf-new', 'llava-med'] as const) {
    t.equal(detectLayout(entries(layout, tiny).map((e) => e.name)), layout);
  }
  t.equal(detectLayout(['lm_head.weight', 'model.embed_tokens.weight']), 'llava-med');
  checkpointError(t, () => detectLayout(['a.weight', 'b.weight']), 'cannot tell', 'a.weight');
  checkpointError(t, () => detectLayout(['model.language_model.norm.weight', 'model.layers.0.mlp.up_proj.weight']), 'hf-new', 'llava-med', 'model.layers.0.mlp.up_proj.weight');
});

t.test('planCheckpointLoad: a sharded LLaVA-Med checkpoint with a separate CLIP folder', async (t) => {
  const expected = expectedParameters(tiny);
  const all = entries('llava-med', tiny);
  const language = all.filter((e) => !e.name.startsWith('model.vision_tower.')).map((e, i) => ({ ...e, file: i % 2 ? 'model-00002-of-00002.safetensors' : 'model-00001-of-00002.safetensors' }));
  const tower = expected
    .filter((p) => p.name.startsWith('vision_tower.'))
    .map((p) => ({ name: fromInternalKey('clip-tower', p.name), shape: p.shape, file: 'clip/model.safetensors' }));
  tower.push({ name: 'text_model.embeddings.token_embedding.weight', shape: [49408, 768], file: 'clip/model.safetensors' });
  tower.push({ name: 'vision_model.post_layernorm.weight', shape: [64], file: 'clip/model.safetensors' });
  const plan = planCheckpointLoad('llava-med', [...language, { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', shape: [16], file: 'x' }], expected, { towerEntries: tower });
  t.equal(plan.size, expected.length);
  t.same(plan.get('vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight'), { file: 'clip/model.safetensors', key: 'vision_model.encoder.layers.0.self_attn.q_proj.weight' });
  t.same(plan.get('multi_modal_projector.linear_2.weight'), { file: language.find((e) => e.name === 'model.mm_projector.2.weight')!.file, key: 'model.mm_projector.2.weight' });
  t.same([...plan.keys()], expected.map((p) => p.name), 'in the order of `expected`');
});

t.test('planCheckpointLoad errors name the missing key in both spellings, unexpected keys, and both shapes', async (t) => {
  const expected = expectedParameters(tiny);
  const hfNew = entries('hf-new', tiny);
  checkpointError(
    t,
    () => planCheckpointLoad('hf-new', hfNew.filter((e) => e.name !== 'model.language_model.layers.1.mlp.gate_proj.weight'), expected),
    '"model.language_model.layers.1.mlp.gate_proj.weight"',
    '"language_model.model.layers.1.mlp.gate_proj.weight"',
  );
  const reshaped = hfNew.map((e) => (e.name === 'lm_head.weight' ? { ...e, shape: [501, 128] } : e));
  checkpointError(t, () => planCheckpointLoad('hf-new', reshaped, expected), '"lm_head.weight"', '[501, 128]', '[500, 128]');
  checkpointError(t, () => planCheckpointLoad('hf-new', hfNew, expectedParameters(tinyTied)), 'unexpected "lm_head.weight"', 'ties');
  checkpointError(
    t,
    () => planCheckpointLoad('hf-new', [...hfNew, { name: 'model.language_model.layers.4.input_layernorm.weight', shape: [128], file: 'm' }], expected),
    'unexpected "model.language_model.layers.4.input_layernorm.weight"',
  );
  const llavaMedNoTower = entries('llava-med', tiny).filter((e) => !e.name.startsWith('model.vision_tower.'));
  checkpointError(
    t,
    () => planCheckpointLoad('llava-med', llavaMedNoTower, expected),
    '"model.vision_tower.vision_tower.vision_model.embeddings.class_embedding" or a separate CLIP folder',
    '(internal "vision_tower.vision_model.embeddings.class_embedding")',
  );
  checkpointError(t, () => planCheckpointLoad('llava-med', [...entries('llava-med', tiny), ...entries('llava-med', tiny, 'copy.safetensors')], expected), 'twice', 'copy.safetensors');
  checkpointError(t, () => planCheckpointLoad('hf-old', [...entries('hf-old', tiny), { name: 'language_model.model.layers.0.mlp.gate_proj.lora_B.weight', shape: [1], file: 'm' }], expected), 'lora_B');
  t.throws(() => planCheckpointLoad('hf-old', entries('hf-old', tiny), [...expected, expected[0]]), { code: 'E_ARG' });
  try {
    planCheckpointLoad('hf-old', [], expected);
  } catch (e) {
    t.match((e as Error).message, `(${expected.length} problems)`, 'counts every problem');
    t.match((e as Error).message, `${expected.length - 8} more`, 'shows the first few');
  }
});
