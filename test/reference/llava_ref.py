"""Teacher-forced log-probs of a LLaVA model (CLIP vision tower -> projector -> Llama/Mistral decoder), fp32.

An independent re-implementation of Hugging Face transformers' CLIPVisionModel, LlavaMultiModalProjector,
MistralModel/LlamaModel semantics and LLaVA's (llava_arch.py) image splicing, used only to cross-check
hscr's native model. Rows are computed one at a time and unpadded: right padding cannot leak into a
causal model, so this is the plainest correct form.

usage: /usr/bin/python3 llava_ref.py IN.safetensors OUT.safetensors MODEL_DIR
"""
import math
import os
import re
import sys

sys.dont_write_bytecode = True

import torch
import torch.nn.functional as F

import st
from common import RefError, as_flags, as_float, as_ints, require, require_shape, run_cli

IGNORE_INDEX = -100
LLAVA_MED_IMAGE_TOKEN_INDEX = -200  # LLaVA's IMAGE_TOKEN_INDEX: a placeholder id outside the vocabulary

ACTIVATIONS = {
    'gelu': F.gelu,  # exact erf GELU, as transformers' ACT2FN["gelu"] and torch.nn.GELU()
    'quick_gelu': lambda x: x * torch.sigmoid(1.702 * x),
    'gelu_new': lambda x: F.gelu(x, approximate='tanh'),
    'gelu_pytorch_tanh': lambda x: F.gelu(x, approximate='tanh'),
    'gelu_fast': lambda x: F.gelu(x, approximate='tanh'),
    'silu': F.silu,
    'swish': F.silu,
    'relu': F.relu,
}

# transformers' config defaults, used for keys a config.json leaves out.
CLIP_VISION_DEFAULTS = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                            image_size=224, patch_size=32, hidden_act='quick_gelu', layer_norm_eps=1e-5, num_channels=3)
# LlavaConfig builds this CLIP ViT-L/14-336 when vision_config is absent.
LLAVA_DEFAULT_VISION = dict(CLIP_VISION_DEFAULTS, hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                            num_attention_heads=16, image_size=336, patch_size=14)
LLAMA_DEFAULTS = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=None, head_dim=None, hidden_act='silu',
                      rms_norm_eps=1e-6, rope_theta=10000.0, rope_scaling=None, tie_word_embeddings=False,
                      sliding_window=None)
MISTRAL_DEFAULTS = dict(LLAMA_DEFAULTS, intermediate_size=14336, num_key_value_heads=8, sliding_window=4096)
TEXT_DEFAULTS = {'llama': LLAMA_DEFAULTS, 'mistral': MISTRAL_DEFAULTS,
                 'llava_llama': LLAMA_DEFAULTS, 'llava': LLAMA_DEFAULTS, 'llava_mistral': MISTRAL_DEFAULTS}

# Checkpoint entries that carry no weights this model uses (recomputed buffers, unused CLIP parts).
HARMLESS_KEY = re.compile(r'(rotary_emb\.inv_freq|position_ids|post_layernorm\.(weight|bias))$')


# ---- configuration ----------------------------------------------------------------------------

class Spec:
    """Plain attribute bag built from a config dict with defaults."""

    def __init__(self, source, defaults, where):
        merged = dict(defaults)
        merged.update({k: v for k, v in source.items() if k in defaults})
        self.__dict__.update(merged)
        self.where = where


def _activation(name, where):
    if name not in ACTIVATIONS:
        raise RefError(f'{where}: activation {name!r} is not supported (supported: {", ".join(ACTIVATIONS)})')
    return ACTIVATIONS[name]


def _text_spec(source, model_type, where):
    if model_type not in TEXT_DEFAULTS:
        raise RefError(f'{where}: text model_type {model_type!r} is not supported (llama, mistral, llava_llama, llava_mistral)')
    spec = Spec(source, TEXT_DEFAULTS[model_type], where)
    if spec.rope_scaling not in (None, {}):
        raise RefError(f'{where}: rope_scaling {spec.rope_scaling!r} is not supported by this reference')
    if spec.num_key_value_heads is None:
        spec.num_key_value_heads = spec.num_attention_heads
    if spec.num_attention_heads % spec.num_key_value_heads:
        raise RefError(f'{where}: num_attention_heads {spec.num_attention_heads} is not a multiple of num_key_value_heads {spec.num_key_value_heads}')
    if spec.head_dim is None:
        spec.head_dim = spec.hidden_size // spec.num_attention_heads
    if spec.sliding_window is not None and spec.sliding_window < 1:
        raise RefError(f'{where}: sliding_window must be a positive integer or null, got {spec.sliding_window!r}')
    spec.act = _activation(spec.hidden_act, where)
    return spec


def _vision_spec(source, defaults, where):
    spec = Spec(source, defaults, where)
    spec.act = _activation(spec.hidden_act, where)
    return spec


def _feature_layers(value, where):
    layers = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(layers, list) or not layers or not all(isinstance(i, int) and not isinstance(i, bool) for i in layers):
        raise RefError(f'{where}: vision feature layer must be an integer or a list of integers, got {value!r}')
    return layers


class MultiModalSpec:
    def __init__(self, image_token_id, feature_layers, keep_cls, projector_act, projector_type):
        self.image_token_id = image_token_id
        self.feature_layers = feature_layers
        self.keep_cls = keep_cls
        self.projector_act = projector_act
        self.projector_type = projector_type


def _hf_llava_specs(config, where):
    """Layouts a and b: transformers' LlavaConfig."""
    vision_source = config.get('vision_config')
    vision = _vision_spec(vision_source or {}, CLIP_VISION_DEFAULTS if vision_source else LLAVA_DEFAULT_VISION, f'{where} vision_config')
    text_source = config.get('text_config') or {}
    text = _text_spec(text_source, text_source.get('model_type', 'llama'), f'{where} text_config')
    strategy = config.get('vision_feature_select_strategy', 'default')
    if strategy not in ('default', 'full'):
        raise RefError(f'{where}: vision_feature_select_strategy must be "default" or "full", got {strategy!r}')
    image_token = config.get('image_token_index', config.get('image_token_id', 32000))
    mm = MultiModalSpec(image_token, _feature_layers(config.get('vision_feature_layer', -2), where),
                        strategy == 'full', _activation(config.get('projector_hidden_act', 'gelu'), where), 'hf')
    return vision, text, mm


def _llava_med_vision_source(config, model_dir, where):
    if isinstance(config.get('vision_config'), dict):
        return config['vision_config'], where
    tower_config = os.path.join(model_dir, 'vision_tower', 'config.json')
    if not os.path.exists(tower_config):
        raise RefError(f'{where}: no "vision_config" object and no {tower_config}')
    source = st.read_json(tower_config)
    # A full CLIPModel config nests the vision part; a CLIPVisionModel config is flat.
    return (source.get('vision_config') or {}) if 'vision_config' in source else source, tower_config


def _llava_med_specs(config, model_dir, where):
    """Layout c: LLaVA's LlavaMistralForCausalLM / LlavaLlamaForCausalLM (flat text keys + mm_* keys)."""
    vision_source, vision_where = _llava_med_vision_source(config, model_dir, where)
    vision = _vision_spec(vision_source, CLIP_VISION_DEFAULTS, vision_where)
    text = _text_spec(config, config.get('model_type', 'llava_mistral'), where)
    select = config.get('mm_vision_select_feature', 'patch')
    if select not in ('patch', 'cls_patch'):
        raise RefError(f'{where}: mm_vision_select_feature must be "patch" or "cls_patch", got {select!r}')
    projector_type = config.get('mm_projector_type', 'linear')  # LLaVA's builder default
    if projector_type != 'linear' and not re.fullmatch(r'mlp([1-9][0-9]*)x_gelu', str(projector_type)):
        raise RefError(f'{where}: mm_projector_type must be "linear" or "mlp<N>x_gelu", got {projector_type!r}')
    mm = MultiModalSpec(config.get('image_token_index', LLAVA_MED_IMAGE_TOKEN_INDEX),
                        _feature_layers(config.get('mm_vision_select_layer', -2), where),
                        select == 'cls_patch', ACTIVATIONS['gelu'], projector_type)
    return vision, text, mm


# ---- weights ----------------------------------------------------------------------------------

LAYOUTS = {
    'a': dict(vision='vision_tower.vision_model.', projector='multi_modal_projector.', text='language_model.model.',
              head='language_model.lm_head.weight'),
    'b': dict(vision='model.vision_tower.vision_model.', projector='model.multi_modal_projector.',
              text='model.language_model.', head='lm_head.weight'),
    'c': dict(vision='model.vision_tower.vision_tower.vision_model.', projector='model.mm_projector.', text='model.',
              head='lm_head.weight'),
}
TEXT_PARTS = ('embed_tokens.', 'layers.', 'norm.')


def detect_layout(keys, where):
    if any(k.startswith('model.language_model.') for k in keys):
        return 'b'
    if any(k.startswith('language_model.model.') for k in keys):
        return 'a'
    if 'model.embed_tokens.weight' in keys:
        return 'c'
    sample = ', '.join(sorted(keys)[:5])
    raise RefError(f'{where}: cannot tell the checkpoint layout (no language_model.model.*, model.language_model.* '
                   f'or model.embed_tokens.weight); first keys: {sample}')


def _take(weights, prefix, parts, used):
    taken = {}
    for key, value in weights.items():
        if key.startswith(prefix) and key[len(prefix):].startswith(parts):
            taken[key[len(prefix):]] = value.float()
            used.add(key)
    return taken


def _projector_names(layout, mm):
    if layout in ('a', 'b'):
        return ['linear_1', 'linear_2']
    if mm.projector_type == 'linear':
        return ['']
    depth = int(re.fullmatch(r'mlp(\d+)x_gelu', mm.projector_type).group(1))
    return [str(2 * i) for i in range(depth)]  # nn.Sequential indices: Linear, GELU, Linear, ...


def _projector(weights, layout, mm, used, where):
    prefix = LAYOUTS[layout]['projector']
    linears = []
    for name in _projector_names(layout, mm):
        stem = prefix + name + '.' if name else prefix
        if stem + 'weight' not in weights:
            raise RefError(f'{where}: projector weight "{stem}weight" is missing (projector type {mm.projector_type})')
        used.update(k for k in (stem + 'weight', stem + 'bias') if k in weights)
        bias = weights.get(stem + 'bias')
        linears.append((weights[stem + 'weight'].float(), None if bias is None else bias.float()))
    return linears


def _separate_vision_tower(model_dir, where):
    directory = os.path.join(model_dir, 'vision_tower')
    if not os.path.isdir(directory):
        raise RefError(f'{where}: no embedded vision tower (model.vision_tower.vision_tower.vision_model.*) '
                       f'and no {directory}/ with CLIP weights')
    tensors = st.load_checkpoint(directory)
    vision = {k[len('vision_model.'):]: v.float() for k, v in tensors.items() if k.startswith('vision_model.')}
    if not vision:
        raise RefError(f'{directory}: no vision_model.* tensors (expected a CLIPVisionModel or CLIPModel checkpoint)')
    return vision


def _check_all_used(weights, used, where):
    for key in sorted(weights):
        if key not in used and not HARMLESS_KEY.search(key):
            raise RefError(f'{where}: checkpoint tensor "{key}" is not used by this model (unmerged adapter or wrong layout?)')


class Model:
    def __init__(self, vision, text, mm, vision_weights, projector, text_weights, head, layout):
        self.vision, self.text, self.mm = vision, text, mm
        self.vw, self.projector, self.tw, self.head = vision_weights, projector, text_weights, head
        self.layout = layout


def load_model(model_dir):
    where = os.path.join(model_dir, 'config.json')
    config = st.read_json(where)
    if not isinstance(config, dict):
        raise RefError(f'{where}: must be a JSON object')
    weights = st.load_checkpoint(model_dir)
    layout = detect_layout(weights.keys(), model_dir)
    vision, text, mm = _hf_llava_specs(config, where) if layout != 'c' else _llava_med_specs(config, model_dir, where)
    names = LAYOUTS[layout]
    used = set()
    text_weights = _take(weights, names['text'], TEXT_PARTS, used)
    vision_weights = _take(weights, names['vision'], ('',), used)
    if not vision_weights:
        if layout != 'c':
            raise RefError(f'{model_dir}: no {names["vision"]}* tensors')
        vision_weights = _separate_vision_tower(model_dir, where)
    projector = _projector(weights, layout, mm, used, model_dir)
    head = weights.get(names['head'])
    used.add(names['head'])
    _check_all_used(weights, used, model_dir)
    if text.tie_word_embeddings or head is None:
        head = text_weights.get('embed_tokens.weight')
    model = Model(vision, text, mm, vision_weights, projector, text_weights, None if head is None else head.float(), layout)
    check_shapes(model, model_dir)
    return model


def _expect(weights, name, shape, where, part, seen, optional=False):
    if name not in weights:
        if optional:
            return
        raise RefError(f'{where}: {part} weight "{name}" is missing')
    if list(weights[name].shape) != list(shape):
        raise RefError(f'{where}: {part} weight "{name}" has shape {list(weights[name].shape)}, config implies {list(shape)}')
    seen.add(name)


def _check_nothing_else(weights, seen, where, part):
    for name in sorted(weights):
        if name not in seen and not HARMLESS_KEY.search(name):
            raise RefError(f'{where}: {part} weight "{name}" is not part of the configured model '
                           f'(unmerged adapter, extra layer, or a config that does not match the weights?)')


def _check_vision_shapes(model, where):
    v, w, seen = model.vision, model.vw, set()
    d, grid = v.hidden_size, v.image_size // v.patch_size
    _expect(w, 'embeddings.patch_embedding.weight', [d, v.num_channels, v.patch_size, v.patch_size], where, 'vision', seen)
    _expect(w, 'embeddings.patch_embedding.bias', [d], where, 'vision', seen, optional=True)  # CLIP has none; used if present
    _expect(w, 'embeddings.class_embedding', [d], where, 'vision', seen)
    _expect(w, 'embeddings.position_embedding.weight', [grid * grid + 1, d], where, 'vision', seen)
    for part in ('pre_layrnorm.weight', 'pre_layrnorm.bias'):
        _expect(w, part, [d], where, 'vision', seen)
    for i in range(v.num_hidden_layers):
        p = f'encoder.layers.{i}.'
        for proj in ('q_proj', 'k_proj', 'v_proj', 'out_proj'):
            _expect(w, p + f'self_attn.{proj}.weight', [d, d], where, 'vision', seen)
            _expect(w, p + f'self_attn.{proj}.bias', [d], where, 'vision', seen)
        for norm in ('layer_norm1', 'layer_norm2'):
            _expect(w, p + f'{norm}.weight', [d], where, 'vision', seen)
            _expect(w, p + f'{norm}.bias', [d], where, 'vision', seen)
        _expect(w, p + 'mlp.fc1.weight', [v.intermediate_size, d], where, 'vision', seen)
        _expect(w, p + 'mlp.fc1.bias', [v.intermediate_size], where, 'vision', seen)
        _expect(w, p + 'mlp.fc2.weight', [d, v.intermediate_size], where, 'vision', seen)
        _expect(w, p + 'mlp.fc2.bias', [d], where, 'vision', seen)
    _check_nothing_else(w, seen, where, 'vision')
    if d % v.num_attention_heads:
        raise RefError(f'{where}: vision hidden_size {d} is not a multiple of num_attention_heads {v.num_attention_heads}')


def _check_text_shapes(model, where):
    t, w, seen = model.text, model.tw, set()
    d, q, kv, inner = t.hidden_size, t.num_attention_heads * t.head_dim, t.num_key_value_heads * t.head_dim, t.intermediate_size
    _expect(w, 'embed_tokens.weight', [t.vocab_size, d], where, 'text', seen)
    _expect(w, 'norm.weight', [d], where, 'text', seen)
    for i in range(t.num_hidden_layers):
        p = f'layers.{i}.'
        for name, out_size, in_size in (('self_attn.q_proj', q, d), ('self_attn.k_proj', kv, d), ('self_attn.v_proj', kv, d),
                                        ('self_attn.o_proj', d, q), ('mlp.gate_proj', inner, d), ('mlp.up_proj', inner, d),
                                        ('mlp.down_proj', d, inner)):
            _expect(w, p + name + '.weight', [out_size, in_size], where, 'text', seen)
            # attention_bias / mlp_bias variants: used when present
            _expect(w, p + name + '.bias', [out_size], where, 'text', seen, optional=True)
        _expect(w, p + 'input_layernorm.weight', [d], where, 'text', seen)
        _expect(w, p + 'post_attention_layernorm.weight', [d], where, 'text', seen)
    _check_nothing_else(w, seen, where, 'text')
    if model.head is None or list(model.head.shape) != [t.vocab_size, d]:
        raise RefError(f'{where}: lm_head must be [{t.vocab_size}, {d}], got {None if model.head is None else list(model.head.shape)}')


def _check_projector_shapes(model, where):
    width = model.vision.hidden_size * len(model.mm.feature_layers)
    for index, (weight, bias) in enumerate(model.projector):
        expected_in = width if index == 0 else model.text.hidden_size
        if list(weight.shape) != [model.text.hidden_size, expected_in]:
            raise RefError(f'{where}: projector linear {index} is {list(weight.shape)}, expected [{model.text.hidden_size}, {expected_in}]')
        if bias is not None and list(bias.shape) != [model.text.hidden_size]:
            raise RefError(f'{where}: projector linear {index} bias is {list(bias.shape)}, expected [{model.text.hidden_size}]')


def check_shapes(model, where):
    _check_vision_shapes(model, where)
    _check_text_shapes(model, where)
    _check_projector_shapes(model, where)
    layers = model.vision.num_hidden_layers
    for index in model.mm.feature_layers:
        if not -(layers + 1) <= index <= layers:
            raise RefError(f'{where}: vision feature layer {index} is outside the {layers + 1} hidden states')


# ---- CLIP vision tower --------------------------------------------------------------------------

def _linear(x, weights, stem):
    return F.linear(x, weights[stem + '.weight'], weights.get(stem + '.bias'))


def _layer_norm(x, weights, stem, eps):
    return F.layer_norm(x, (x.shape[-1],), weights[stem + '.weight'], weights[stem + '.bias'], eps)


def clip_attention(x, weights, stem, heads):
    batch, length, width = x.shape
    head_dim = width // heads

    def split(name):
        return _linear(x, weights, f'{stem}.{name}').view(batch, length, heads, head_dim).transpose(1, 2)

    q, k, v = split('q_proj'), split('k_proj'), split('v_proj')
    probs = torch.softmax((q @ k.transpose(-1, -2)) * head_dim ** -0.5, dim=-1)  # no mask: every patch sees all
    mixed = (probs @ v).transpose(1, 2).reshape(batch, length, width)
    return _linear(mixed, weights, f'{stem}.out_proj')


def clip_encoder_layer(x, weights, index, spec):
    p = f'encoder.layers.{index}.'
    x = x + clip_attention(_layer_norm(x, weights, p + 'layer_norm1', spec.layer_norm_eps), weights, p + 'self_attn',
                           spec.num_attention_heads)
    h = _layer_norm(x, weights, p + 'layer_norm2', spec.layer_norm_eps)
    return x + _linear(spec.act(_linear(h, weights, p + 'mlp.fc1')), weights, p + 'mlp.fc2')


def clip_embeddings(pixels, weights, spec):
    patches = F.conv2d(pixels, weights['embeddings.patch_embedding.weight'], weights.get('embeddings.patch_embedding.bias'),
                       stride=spec.patch_size)
    patches = patches.flatten(2).transpose(1, 2)
    cls = weights['embeddings.class_embedding'].expand(pixels.shape[0], 1, -1)
    return torch.cat([cls, patches], dim=1) + weights['embeddings.position_embedding.weight'][None]


def clip_hidden_states(pixels, weights, spec, up_to):
    """hidden_states[0] = embeddings after pre_layrnorm, hidden_states[i] = output of layer i (i <= up_to)."""
    x = _layer_norm(clip_embeddings(pixels, weights, spec), weights, 'pre_layrnorm', spec.layer_norm_eps)
    states = [x]
    for index in range(up_to):
        x = clip_encoder_layer(x, weights, index, spec)
        states.append(x)
    return states


def image_features(model, pixels):
    """Projector output [B, N, D] for pixel_values [B, 3, H, W]."""
    layers = model.vision.num_hidden_layers
    resolved = [i if i >= 0 else layers + 1 + i for i in model.mm.feature_layers]
    states = clip_hidden_states(pixels, model.vw, model.vision, max(resolved))
    selected = [states[i] if model.mm.keep_cls else states[i][:, 1:] for i in resolved]
    x = torch.cat(selected, dim=-1)
    for index, (weight, bias) in enumerate(model.projector):
        if index:
            x = model.mm.projector_act(x)
        x = F.linear(x, weight, bias)
    return x


# ---- Llama / Mistral decoder ----------------------------------------------------------------------

def rms_norm(x, weight, eps):
    x32 = x.float()
    return weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def rope_tables(length, head_dim, theta):
    """cos/sin [length, head_dim], computed in float64 then rounded once to fp32."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.arange(length, dtype=torch.float64)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float(), angles.sin().float()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x, cos, sin):
    return x * cos + rotate_half(x) * sin


def attention_allowed(length, sliding_window):
    """allowed[i, j]: query i may read key j (j <= i, and i - window < j when a window is set)."""
    i = torch.arange(length)[:, None]
    j = torch.arange(length)[None, :]
    allowed = j <= i
    if sliding_window is not None:
        allowed &= j > i - sliding_window
    return allowed


def decoder_attention(x, weights, stem, spec, cos, sin, allowed):
    length = x.shape[0]
    heads, kv_heads, head_dim = spec.num_attention_heads, spec.num_key_value_heads, spec.head_dim
    q = _linear(x, weights, stem + 'q_proj').view(length, heads, head_dim).transpose(0, 1)
    k = _linear(x, weights, stem + 'k_proj').view(length, kv_heads, head_dim).transpose(0, 1)
    v = _linear(x, weights, stem + 'v_proj').view(length, kv_heads, head_dim).transpose(0, 1)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    group = heads // kv_heads
    # Query head h reads key/value head h // group (transformers' repeat_kv).
    k, v = k.repeat_interleave(group, dim=0), v.repeat_interleave(group, dim=0)
    scores = (q @ k.transpose(-1, -2)) * head_dim ** -0.5
    scores = scores.masked_fill(~allowed, float('-inf'))
    mixed = torch.softmax(scores, dim=-1, dtype=torch.float32) @ v
    return _linear(mixed.transpose(0, 1).reshape(length, heads * head_dim), weights, stem + 'o_proj')


def decoder_mlp(x, weights, stem, spec):
    return _linear(spec.act(_linear(x, weights, stem + 'gate_proj')) * _linear(x, weights, stem + 'up_proj'),
                   weights, stem + 'down_proj')


def decoder_logits(model, embeddings):
    """Logits [L, V] for one unpadded row of input embeddings [L, D] at positions 0..L-1."""
    spec, weights = model.text, model.tw
    length = embeddings.shape[0]
    cos, sin = rope_tables(length, spec.head_dim, spec.rope_theta)
    allowed = attention_allowed(length, spec.sliding_window)
    x = embeddings
    for index in range(spec.num_hidden_layers):
        p = f'layers.{index}.'
        x = x + decoder_attention(rms_norm(x, weights[p + 'input_layernorm.weight'], spec.rms_norm_eps), weights,
                                  p + 'self_attn.', spec, cos, sin, allowed)
        x = x + decoder_mlp(rms_norm(x, weights[p + 'post_attention_layernorm.weight'], spec.rms_norm_eps), weights,
                            p + 'mlp.', spec)
    return F.linear(rms_norm(x, weights['norm.weight'], spec.rms_norm_eps), model.head)


# ---- splicing the image into each row -----------------------------------------------------------

def _row_length(attention_mask, row):
    length = int(attention_mask.sum())
    if not bool(attention_mask[:length].all()) or bool(attention_mask[length:].any()):
        raise RefError(f'attention_mask row {row} must be ones then zeros (right padding), got {attention_mask.tolist()}')
    return length


def _placeholder(ids, image_token_id, row):
    where = torch.nonzero(ids == image_token_id).flatten().tolist()
    if len(where) != 1:
        raise RefError(f'input_ids row {row} must hold exactly one image placeholder (id {image_token_id}) '
                       f'in its unpadded part, found {len(where)}')
    return where[0]


def _check_token_ids(ids, placeholder, vocab, row):
    for position, token in enumerate(ids.tolist()):
        if position != placeholder and not 0 <= token < vocab:
            raise RefError(f'input_ids row {row} position {position}: token id {token} is outside the vocabulary [0, {vocab})')


def _targets(labels, length, placeholder, vocab, row):
    """[(position in input_ids, token)] for every label != -100, after checking each can be predicted."""
    targets = []
    for position, token in enumerate(labels.tolist()):
        if token == IGNORE_INDEX:
            continue
        problem = None
        if not 0 <= token < vocab:
            problem = f'token id {token} is outside the vocabulary [0, {vocab}) (use -100 for no target)'
        elif position >= length:
            problem = 'is in the padding (attention_mask 0)'
        elif position == placeholder:
            problem = 'is the image placeholder, which has no token to predict'
        elif position == 0:
            problem = 'is the first token, which nothing predicts'
        if problem:
            raise RefError(f'labels row {row} position {position}: label {token} {problem}')
        targets.append((position, token))
    return targets


def row_embeddings(model, ids, placeholder, visual):
    embed = model.tw['embed_tokens.weight']
    return torch.cat([embed[ids[:placeholder]], visual, embed[ids[placeholder + 1:]]], dim=0)


def score_row(model, ids, placeholder, visual, targets):
    """(log-probs, top-1 ids) of each target, predicted from the position before it in the spliced row."""
    logits = decoder_logits(model, row_embeddings(model, ids, placeholder, visual))
    log_probs = torch.log_softmax(logits, dim=-1)
    shift = visual.shape[0] - 1  # text after the placeholder moves by (kept visual tokens - 1)
    scores, top1 = [], []
    for position, token in targets:
        predictor = (position if position < placeholder else position + shift) - 1
        scores.append(log_probs[predictor, token].item())
        top1.append(int(torch.argmax(logits[predictor])))
    return scores, top1


# ---- the script ---------------------------------------------------------------------------------

def _inputs(tensors, model):
    ids = as_ints('input_ids', require(tensors, 'input_ids', rank=2))
    batch, length = ids.shape
    mask = as_ints('attention_mask', require(tensors, 'attention_mask', rank=2))
    labels = as_ints('labels', require(tensors, 'labels', rank=2))
    require_shape('attention_mask', mask, [batch, length])
    require_shape('labels', labels, [batch, length])
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise RefError('attention_mask must hold only 0/1')
    pixels = as_float('pixel_values', require(tensors, 'pixel_values', rank=4), torch.float32)
    size, channels = model.vision.image_size, model.vision.num_channels
    require_shape('pixel_values', pixels, [batch, channels, size, size])
    return ids, mask, labels, pixels


def _keep_mask(tensors, batch, tokens):
    if 'visual_keep' not in tensors:
        return torch.ones(batch, tokens, dtype=torch.bool)
    keep = as_flags('visual_keep', require(tensors, 'visual_keep', rank=2))
    require_shape('visual_keep', keep, [batch, tokens])
    return keep


def compute(tensors, metadata, model_dir):
    del metadata  # no scalar options: everything comes from MODEL_DIR/config.json
    model = load_model(model_dir)
    ids, mask, labels, pixels = _inputs(tensors, model)
    with torch.no_grad():
        features = image_features(model, pixels)
    keep = _keep_mask(tensors, ids.shape[0], features.shape[1])
    rows = []
    for row in range(ids.shape[0]):
        length = _row_length(mask[row], row)
        row_ids = ids[row, :length]
        placeholder = _placeholder(row_ids, model.mm.image_token_id, row)
        _check_token_ids(row_ids, placeholder, model.text.vocab_size, row)
        targets = _targets(labels[row], length, placeholder, model.text.vocab_size, row)
        with torch.no_grad():
            rows.append(score_row(model, row_ids, placeholder, features[row][keep[row]], targets))
    return pack_outputs(rows, features)


def pack_outputs(rows, features):
    width = max([len(scores) for scores, _ in rows] + [0])
    logprobs = torch.zeros(len(rows), width, dtype=torch.float32)
    top1 = torch.zeros(len(rows), width, dtype=torch.int64)
    for row, (scores, best) in enumerate(rows):
        logprobs[row, :len(scores)] = torch.tensor(scores, dtype=torch.float32)
        top1[row, :len(best)] = torch.tensor(best, dtype=torch.int64)
    return {
        'target_logprobs': logprobs,
        'target_count': torch.tensor([len(scores) for scores, _ in rows], dtype=torch.int64),
        # Summed in float64 from the fp32 values, so the sum adds no rounding of its own.
        'seq_logprobs': torch.tensor([math.fsum(torch.tensor(s, dtype=torch.float32).double().tolist()) for s, _ in rows],
                                     dtype=torch.float32),
        'image_features': features.float().contiguous(),
        'target_top1': top1,
    }


def main(argv):
    return run_cli(argv, compute, 'llava_ref.py', takes_model_dir=True)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
