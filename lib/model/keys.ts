/**
 * Checkpoint tensor names. hscr names parameters as transformers' old LlavaForConditionalGeneration layout
 * does ("internal" names); each layout users have is a set of prefix renames onto those:
 * - hf-old:    vision_tower.*, multi_modal_projector.*, language_model.model.*, language_model.lm_head.weight
 * - hf-new:    model.vision_tower.*, model.multi_modal_projector.*, model.language_model.*, lm_head.weight
 *              (transformers ≥ 4.52, LlavaForConditionalGeneration._checkpoint_conversion_mapping)
 * - llava-med: model.embed_tokens / model.layers.* / model.norm, lm_head.weight, model.mm_projector.{0,2}.*
 *              (nn.Sequential indices; a linear projector is model.mm_projector.*), and the CLIP tower either
 *              embedded as model.vision_tower.vision_tower.vision_model.* or in a separate CLIP folder
 *              whose keys are vision_model.* (the 'clip-tower' key layout).
 */
import { HscrError } from '../errors';
import type { ModelConfig, ProjectorType } from './config';

export type CheckpointLayout = 'hf-old' | 'hf-new' | 'llava-med';
/** A checkpoint layout, or the key layout of LLaVA-Med's separate CLIP folder. */
export type KeyLayout = CheckpointLayout | 'clip-tower';

export interface CheckpointEntry {
  name: string;
  shape: number[];
  /** The .safetensors file holding it. */
  file: string;
}

export interface ExpectedParameter {
  name: string;
  shape: number[];
}

export interface TensorSource {
  file: string;
  /** The name in the checkpoint's own spelling. */
  key: string;
}

const INTERNAL_NAME = new RegExp(
  '^(?:' +
    [
      String.raw`vision_tower\.vision_model\.embeddings\.(?:patch_embedding\.weight|class_embedding|position_embedding\.weight)`,
      String.raw`vision_tower\.vision_model\.pre_layrnorm\.(?:weight|bias)`,
      String.raw`vision_tower\.vision_model\.encoder\.layers\.\d+\.(?:self_attn\.(?:q|k|v|out)_proj|layer_norm[12]|mlp\.fc[12])\.(?:weight|bias)`,
      String.raw`multi_modal_projector\.linear_[12]\.(?:weight|bias)`,
      String.raw`language_model\.model\.embed_tokens\.weight`,
      String.raw`language_model\.model\.layers\.\d+\.(?:self_attn\.(?:q|k|v|o)_proj|mlp\.(?:gate|up|down)_proj|input_layernorm|post_attention_layernorm)\.weight`,
      String.raw`language_model\.model\.norm\.weight`,
      String.raw`language_model\.lm_head\.weight`,
    ].join('|') +
    ')$',
);

// Buffers that are recomputed (position ids, RoPE frequencies) and CLIP parts LLaVA never uses.
const IGNORED_INTERNAL = new RegExp(
  '^(?:' +
    [
      String.raw`vision_tower\.vision_model\.embeddings\.position_ids`,
      String.raw`vision_tower\.vision_model\.post_layernorm\.(?:weight|bias)`,
      String.raw`language_model\.model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq`,
    ].join('|') +
    ')$',
);

// A full CLIPModel checkpoint also holds the text tower and the contrastive heads.
const IGNORED_CLIP_TOWER = /^(?:text_model\.|visual_projection\.|text_projection\.|logit_scale$)/;

/** [checkpoint prefix, internal prefix], most specific first. */
const PREFIXES: Record<KeyLayout, Array<[string, string]>> = {
  'hf-old': [
    ['vision_tower.', 'vision_tower.'],
    ['multi_modal_projector.', 'multi_modal_projector.'],
    ['language_model.', 'language_model.'],
  ],
  'hf-new': [
    ['model.vision_tower.', 'vision_tower.'],
    ['model.multi_modal_projector.', 'multi_modal_projector.'],
    ['model.language_model.', 'language_model.model.'],
    ['lm_head.', 'language_model.lm_head.'],
  ],
  'llava-med': [
    ['model.vision_tower.vision_tower.', 'vision_tower.'],
    ['model.mm_projector.0.', 'multi_modal_projector.linear_1.'],
    ['model.mm_projector.2.', 'multi_modal_projector.linear_2.'],
    ['model.mm_projector.', 'multi_modal_projector.linear_1.'],
    ['model.', 'language_model.model.'],
    ['lm_head.', 'language_model.lm_head.'],
  ],
  'clip-tower': [['vision_model.', 'vision_tower.vision_model.']],
};

const LAYOUTS: readonly KeyLayout[] = ['hf-old', 'hf-new', 'llava-med', 'clip-tower'];

function checkLayout(layout: KeyLayout): void {
  if (!LAYOUTS.includes(layout)) throw new HscrError(`key layout must be one of ${LAYOUTS.join(', ')}`, 'E_ARG', layout);
}

/** Signs of each layout in a key list: prefixes no other layout uses. */
const EVIDENCE: Record<CheckpointLayout, RegExp> = {
  'hf-new': /^model\.(?:language_model|multi_modal_projector|vision_tower\.vision_model)\./,
  'hf-old': /^(?:language_model|multi_modal_projector|vision_tower)\./,
  'llava-med': /^model\.(?:embed_tokens|layers|norm|mm_projector|vision_tower\.vision_tower)\./,
};

/** Which layout a checkpoint's keys are in; E_CHECKPOINT when they tell none, or more than one. */
export function detectLayout(keys: Iterable<string>): CheckpointLayout {
  const all = [...keys];
  const found = (Object.keys(EVIDENCE) as CheckpointLayout[]).filter((layout) => all.some((k) => EVIDENCE[layout].test(k)));
  if (found.length === 1) return found[0];
  if (found.length === 0) {
    throw new HscrError(
      `cannot tell the checkpoint layout: no language_model.*, model.language_model.* or model.embed_tokens/model.layers.* keys (first keys: ${all.slice(0, 5).join(', ') || 'none'})`,
      'E_CHECKPOINT',
      all.slice(0, 5),
    );
  }
  const example = (layout: CheckpointLayout) => all.find((k) => EVIDENCE[layout].test(k));
  throw new HscrError(
    `the checkpoint mixes key layouts ${found.map((l) => `${l} (e.g. "${example(l)}")`).join(' and ')}`,
    'E_CHECKPOINT',
    found,
  );
}

/**
 * The internal name of a checkpoint key; null for a key hscr skips on purpose (recomputed buffers, CLIP's
 * post_layernorm and text tower). Any other key is an E_CHECKPOINT error naming it.
 */
export function toInternalKey(layout: KeyLayout, key: string): string | null {
  checkLayout(layout);
  if (layout === 'clip-tower' && IGNORED_CLIP_TOWER.test(key)) return null;
  const rule = PREFIXES[layout].find(([from]) => key.startsWith(from));
  const internal = rule ? rule[1] + key.slice(rule[0].length) : undefined;
  if (internal !== undefined && INTERNAL_NAME.test(internal)) return internal;
  if (internal !== undefined && IGNORED_INTERNAL.test(internal)) return null;
  throw new HscrError(
    `checkpoint key "${key}" is not part of a LLaVA model in the ${layout} layout (unmerged adapter, another architecture, or the wrong layout?)`,
    'E_CHECKPOINT',
    key,
  );
}

/**
 * The checkpoint key for an internal name. The projector type decides LLaVA-Med's spelling
 * (model.mm_projector.0.* for mlp2x_gelu, model.mm_projector.* for linear).
 */
export function fromInternalKey(layout: KeyLayout, name: string, projector: ProjectorType = 'mlp2x_gelu'): string {
  checkLayout(layout);
  if (!INTERNAL_NAME.test(name)) throw new HscrError(`"${name}" is not an hscr parameter name`, 'E_ARG', name);
  if (layout === 'llava-med' && name.startsWith('multi_modal_projector.')) {
    const part = name.slice('multi_modal_projector.'.length);
    if (projector === 'linear' && part.startsWith('linear_1.')) return `model.mm_projector.${part.slice('linear_1.'.length)}`;
    return `model.mm_projector.${part.startsWith('linear_1.') ? '0' : '2'}.${part.slice('linear_x.'.length)}`;
  }
  const rule = PREFIXES[layout].find(([, to]) => name.startsWith(to) && !(layout === 'llava-med' && to === 'multi_modal_projector.linear_1.'));
  if (!rule) throw new HscrError(`"${name}" has no spelling in the ${layout} layout`, 'E_ARG', name);
  return rule[0] + name.slice(rule[1].length);
}

/** Every parameter of the model `cfg` describes, with its shape (torch order: [out, in] for linears). */
export function expectedParameters(cfg: ModelConfig): ExpectedParameter[] {
  return [...visionParameters(cfg), ...projectorParameters(cfg), ...textParameters(cfg)];
}

function visionParameters(cfg: ModelConfig): ExpectedParameter[] {
  const v = cfg.vision;
  const d = v.hiddenSize;
  const grid = v.imageSize / v.patchSize;
  const p = 'vision_tower.vision_model.';
  const out: ExpectedParameter[] = [
    { name: `${p}embeddings.patch_embedding.weight`, shape: [d, v.numChannels, v.patchSize, v.patchSize] },
    { name: `${p}embeddings.class_embedding`, shape: [d] },
    { name: `${p}embeddings.position_embedding.weight`, shape: [grid * grid + 1, d] },
    { name: `${p}pre_layrnorm.weight`, shape: [d] },
    { name: `${p}pre_layrnorm.bias`, shape: [d] },
  ];
  for (let i = 0; i < v.numLayers; i++) {
    const l = `${p}encoder.layers.${i}.`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      out.push({ name: `${l}self_attn.${proj}.weight`, shape: [d, d] }, { name: `${l}self_attn.${proj}.bias`, shape: [d] });
    }
    out.push(
      { name: `${l}layer_norm1.weight`, shape: [d] },
      { name: `${l}layer_norm1.bias`, shape: [d] },
      { name: `${l}mlp.fc1.weight`, shape: [v.intermediateSize, d] },
      { name: `${l}mlp.fc1.bias`, shape: [v.intermediateSize] },
      { name: `${l}mlp.fc2.weight`, shape: [d, v.intermediateSize] },
      { name: `${l}mlp.fc2.bias`, shape: [d] },
      { name: `${l}layer_norm2.weight`, shape: [d] },
      { name: `${l}layer_norm2.bias`, shape: [d] },
    );
  }
  return out;
}

function projectorParameters(cfg: ModelConfig): ExpectedParameter[] {
  const d = cfg.text.hiddenSize;
  const out: ExpectedParameter[] = [
    { name: 'multi_modal_projector.linear_1.weight', shape: [d, cfg.vision.hiddenSize] },
    { name: 'multi_modal_projector.linear_1.bias', shape: [d] },
  ];
  if (cfg.projector.type === 'mlp2x_gelu') {
    out.push({ name: 'multi_modal_projector.linear_2.weight', shape: [d, d] }, { name: 'multi_modal_projector.linear_2.bias', shape: [d] });
  }
  return out;
}

function textParameters(cfg: ModelConfig): ExpectedParameter[] {
  const t = cfg.text;
  const d = t.hiddenSize;
  const q = t.numHeads * t.headDim;
  const kv = t.numKvHeads * t.headDim;
  const out: ExpectedParameter[] = [{ name: 'language_model.model.embed_tokens.weight', shape: [t.vocabSize, d] }];
  for (let i = 0; i < t.numLayers; i++) {
    const l = `language_model.model.layers.${i}.`;
    out.push(
      { name: `${l}self_attn.q_proj.weight`, shape: [q, d] },
      { name: `${l}self_attn.k_proj.weight`, shape: [kv, d] },
      { name: `${l}self_attn.v_proj.weight`, shape: [kv, d] },
      { name: `${l}self_attn.o_proj.weight`, shape: [d, q] },
      { name: `${l}mlp.gate_proj.weight`, shape: [t.intermediateSize, d] },
      { name: `${l}mlp.up_proj.weight`, shape: [t.intermediateSize, d] },
      { name: `${l}mlp.down_proj.weight`, shape: [d, t.intermediateSize] },
      { name: `${l}input_layernorm.weight`, shape: [d] },
      { name: `${l}post_attention_layernorm.weight`, shape: [d] },
    );
  }
  out.push({ name: 'language_model.model.norm.weight', shape: [d] });
  if (!t.tieWordEmbeddings) out.push({ name: 'language_model.lm_head.weight', shape: [t.vocabSize, d] });
  return out;
}

// ---- load planning --------------------------------------------------------------------------------

export interface PlanOptions {
  /** LLaVA-Med's separate CLIP folder (keys vision_model.*), when the tower is not embedded. */
  towerEntries?: CheckpointEntry[];
  /** Spelling of LLaVA-Med projector keys in messages. */
  projector?: ProjectorType;
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

interface Mapped {
  internal: string;
  entry: CheckpointEntry;
  layout: KeyLayout;
}

function mapEntries(layout: KeyLayout, entries: CheckpointEntry[], into: Map<string, Mapped>): void {
  for (const entry of entries) {
    const internal = toInternalKey(layout, entry.name);
    if (internal === null) continue;
    const earlier = into.get(internal);
    if (earlier) {
      throw new HscrError(
        `checkpoint holds "${internal}" twice: "${earlier.entry.name}" in ${earlier.entry.file} and "${entry.name}" in ${entry.file}`,
        'E_CHECKPOINT',
        entry.name,
      );
    }
    into.set(internal, { internal, entry, layout });
  }
}

function missingMessage(layout: CheckpointLayout, name: string, options: PlanOptions): string {
  const spellings = [`"${fromInternalKey(layout, name, options.projector)}"`];
  if (layout === 'llava-med' && name.startsWith('vision_tower.')) {
    spellings.push(options.towerEntries ? `"${fromInternalKey('clip-tower', name)}" in the CLIP folder` : 'or a separate CLIP folder');
  }
  return `missing ${spellings.join(' ')} (internal "${name}")`;
}

/**
 * Matches a checkpoint's tensors to the parameters the model expects: internal name → where to read it.
 * Fails with E_CHECKPOINT listing missing keys (in the checkpoint's spelling and the internal one),
 * unexpected keys, and shape mismatches (both shapes).
 */
export function planCheckpointLoad(
  layout: CheckpointLayout,
  checkpointEntries: CheckpointEntry[],
  expected: ExpectedParameter[],
  options: PlanOptions = {},
): Map<string, TensorSource> {
  checkLayout(layout);
  const mapped = new Map<string, Mapped>();
  mapEntries(layout, checkpointEntries, mapped);
  if (options.towerEntries) mapEntries('clip-tower', options.towerEntries, mapped);
  const wanted = new Map<string, ExpectedParameter>();
  for (const p of expected) {
    if (wanted.has(p.name)) throw new HscrError(`expected parameter "${p.name}" is listed twice`, 'E_ARG', p.name);
    wanted.set(p.name, p);
  }
  const problems: string[] = [];
  for (const m of mapped.values()) {
    if (!wanted.has(m.internal)) {
      const tied = m.internal === 'language_model.lm_head.weight' ? ' (the config ties lm_head to embed_tokens)' : '';
      problems.push(`unexpected "${m.entry.name}" in ${m.entry.file} (internal "${m.internal}")${tied}`);
    }
  }
  for (const p of expected) {
    const m = mapped.get(p.name);
    if (!m) problems.push(missingMessage(layout, p.name, options));
    else if (!sameShape(m.entry.shape, p.shape)) {
      problems.push(`"${m.entry.name}" in ${m.entry.file} has shape ${shapeText(m.entry.shape)}, the config implies ${shapeText(p.shape)} (internal "${p.name}")`);
    }
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 8).join('; ');
    const more = problems.length > 8 ? `; … ${problems.length - 8} more` : '';
    throw new HscrError(`checkpoint does not match the model (${problems.length} problem${problems.length > 1 ? 's' : ''}): ${shown}${more}`, 'E_CHECKPOINT', problems);
  }
  const plan = new Map<string, TensorSource>();
  for (const p of expected) {
    const m = mapped.get(p.name)!;
    plan.set(p.name, { file: m.entry.file, key: m.entry.name });
  }
  return plan;
}
