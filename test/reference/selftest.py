"""Internal-consistency checks of the reference scripts, each one able to fail.

usage: /usr/bin/python3 test/reference/selftest.py      (prints one line per check, then "N passed, M failed")
"""
import contextlib
import io
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch
import torch.nn.functional as F

torch.set_num_threads(1)  # tiny tensors: threads only add overhead on a shared 2-core machine

import adamw_ref
import contrastive_ref
import llava_ref
import mlpo_ref
import st
from common import RefError

CHECKS = []
SCRATCH = tempfile.mkdtemp(prefix='hscr-reference-selftest-')


def check(function):
    CHECKS.append(function)
    return function


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def expect_close(actual, expected, what, atol=1e-6, rtol=1e-6):
    actual, expected = torch.as_tensor(actual).double(), torch.as_tensor(expected).double()
    expect(actual.shape == expected.shape, f'{what}: shape {list(actual.shape)} != {list(expected.shape)}')
    gap = (actual - expected).abs().max().item() if actual.numel() else 0.0
    expect(torch.allclose(actual, expected, atol=atol, rtol=rtol), f'{what}: max abs gap {gap:.3g}')


def expect_equal_outputs(a, b, what):
    expect(set(a) == set(b), f'{what}: output names differ: {sorted(a)} vs {sorted(b)}')
    for name in a:
        expect(a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), f'{what}: "{name}" differs')


def expect_ref_error(function, fragment, what):
    try:
        function()
    except RefError as err:
        expect(fragment in str(err), f'{what}: message "{err}" lacks "{fragment}"')
        return
    raise AssertionError(f'{what}: no RefError raised')


def scratch(name):
    return os.path.join(SCRATCH, name)


# ---- tiny random LLaVA checkpoints -------------------------------------------------------------

VISION = dict(hidden_size=16, intermediate_size=24, num_hidden_layers=3, num_attention_heads=2, image_size=8,
              patch_size=4, hidden_act='quick_gelu', layer_norm_eps=1e-5, num_channels=3)
TEXT = dict(vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, hidden_act='silu', rms_norm_eps=1e-6, rope_theta=10000.0,
            sliding_window=None, tie_word_embeddings=False)
IMAGE_TOKEN = 39  # inside the vocabulary, as in llava-hf checkpoints (layout c uses LLaVA's -200)
PATCHES = (VISION['image_size'] // VISION['patch_size']) ** 2


def _random(generator, *shape, scale=0.3, offset=0.0):
    return torch.randn(*shape, generator=generator) * scale + offset


def random_weights(seed=0, text=None):
    """Canonical (layout-free) weights: {'vision': {...}, 'projector': [(w, b)...], 'text': {...}, 'head': w}."""
    t = dict(TEXT, **(text or {}))
    g = torch.Generator().manual_seed(seed)
    d, inner = VISION['hidden_size'], VISION['intermediate_size']
    vision = {
        'embeddings.patch_embedding.weight': _random(g, d, 3, VISION['patch_size'], VISION['patch_size']),
        'embeddings.class_embedding': _random(g, d),
        'embeddings.position_embedding.weight': _random(g, PATCHES + 1, d),
        'pre_layrnorm.weight': _random(g, d, scale=0.1, offset=1.0), 'pre_layrnorm.bias': _random(g, d, scale=0.1),
        'post_layernorm.weight': _random(g, d), 'post_layernorm.bias': _random(g, d),
    }
    for i in range(VISION['num_hidden_layers']):
        p = f'encoder.layers.{i}.'
        for proj in ('q_proj', 'k_proj', 'v_proj', 'out_proj'):
            vision[p + f'self_attn.{proj}.weight'] = _random(g, d, d)
            vision[p + f'self_attn.{proj}.bias'] = _random(g, d, scale=0.1)
        for norm in ('layer_norm1', 'layer_norm2'):
            vision[p + f'{norm}.weight'] = _random(g, d, scale=0.1, offset=1.0)
            vision[p + f'{norm}.bias'] = _random(g, d, scale=0.1)
        vision[p + 'mlp.fc1.weight'], vision[p + 'mlp.fc1.bias'] = _random(g, inner, d), _random(g, inner, scale=0.1)
        vision[p + 'mlp.fc2.weight'], vision[p + 'mlp.fc2.bias'] = _random(g, d, inner), _random(g, d, scale=0.1)
    h, q, kv, ff = t['hidden_size'], t['num_attention_heads'] * t['head_dim'], t['num_key_value_heads'] * t['head_dim'], t['intermediate_size']
    words = {'embed_tokens.weight': _random(g, t['vocab_size'], h, scale=1.0), 'norm.weight': _random(g, h, scale=0.1, offset=1.0)}
    for i in range(t['num_hidden_layers']):
        p = f'layers.{i}.'
        words.update({p + 'self_attn.q_proj.weight': _random(g, q, h), p + 'self_attn.k_proj.weight': _random(g, kv, h),
                      p + 'self_attn.v_proj.weight': _random(g, kv, h), p + 'self_attn.o_proj.weight': _random(g, h, q),
                      p + 'mlp.gate_proj.weight': _random(g, ff, h), p + 'mlp.up_proj.weight': _random(g, ff, h),
                      p + 'mlp.down_proj.weight': _random(g, h, ff),
                      p + 'input_layernorm.weight': _random(g, h, scale=0.1, offset=1.0),
                      p + 'post_attention_layernorm.weight': _random(g, h, scale=0.1, offset=1.0)})
    projector = [(_random(g, h, d), _random(g, h, scale=0.1)), (_random(g, h, h), _random(g, h, scale=0.1))]
    return {'vision': vision, 'projector': projector, 'text': words, 'head': _random(g, t['vocab_size'], h)}


def hf_config(text=None, **extra):
    config = {'architectures': ['LlavaForConditionalGeneration'], 'model_type': 'llava',
              'vision_config': dict(VISION, model_type='clip_vision_model'),
              'text_config': dict(TEXT, model_type='mistral', **(text or {})),
              'image_token_index': IMAGE_TOKEN, 'projector_hidden_act': 'gelu', 'vision_feature_layer': -2,
              'vision_feature_select_strategy': 'default'}
    config.update(extra)
    return config


def med_config(text=None, embed_vision_config=True, **extra):
    config = dict(TEXT, **(text or {}))
    config.update({'architectures': ['LlavaMistralForCausalLM'], 'model_type': 'llava_mistral',
                   'mm_vision_select_layer': -2, 'mm_vision_select_feature': 'patch', 'mm_projector_type': 'mlp2x_gelu',
                   'mm_vision_tower': 'openai/clip-vit-large-patch14-336'})
    if embed_vision_config:
        config['vision_config'] = dict(VISION)
    config.update(extra)
    return config


def layout_tensors(weights, layout, embed_vision=True):
    names = llava_ref.LAYOUTS[layout]
    tensors = {names['text'] + k: v for k, v in weights['text'].items()}
    if embed_vision:
        tensors.update({names['vision'] + k: v for k, v in weights['vision'].items()})
    stems = ['linear_1', 'linear_2'] if layout in 'ab' else ['0', '2']
    for stem, (w, b) in zip(stems, weights['projector']):
        tensors[f'{names["projector"]}{stem}.weight'] = w
        tensors[f'{names["projector"]}{stem}.bias'] = b
    if weights['head'] is not None:
        tensors[names['head']] = weights['head']
    return tensors


def write_model(name, tensors, config, shards=1):
    directory = scratch(name)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, 'config.json'), 'w') as handle:
        json.dump(config, handle)
    if shards == 1:
        st.write(os.path.join(directory, 'model.safetensors'), tensors)
        return directory
    keys = sorted(tensors)
    weight_map = {}
    for shard in range(shards):
        file = f'model-{shard + 1:05d}-of-{shards:05d}.safetensors'
        part = {k: tensors[k] for k in keys[shard::shards]}
        st.write(os.path.join(directory, file), part)
        weight_map.update({k: file for k in part})
    with open(os.path.join(directory, 'model.safetensors.index.json'), 'w') as handle:
        json.dump({'metadata': {}, 'weight_map': weight_map}, handle)
    return directory


def model_dir(name, weights, layout='a', config=None, dtype=None, shards=1):
    tensors = layout_tensors(weights, layout)
    if dtype is not None:
        tensors = {k: v.to(dtype) for k, v in tensors.items()}
    return write_model(name, tensors, config or (hf_config() if layout in 'ab' else med_config()), shards)


def batch_inputs(seed=1, image_token=IMAGE_TOKEN, lengths=(11, 8), placeholders=(2, 1)):
    """Two right-padded rows: prompt, <image>, more prompt, then an answer whose tokens are labelled."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(0, IMAGE_TOKEN, (len(lengths), width), generator=g)
    mask = torch.zeros(len(lengths), width, dtype=torch.int64)
    labels = torch.full((len(lengths), width), -100, dtype=torch.int64)
    for row, (length, where) in enumerate(zip(lengths, placeholders)):
        ids[row, where] = image_token
        ids[row, length:] = 0
        mask[row, :length] = 1
        labels[row, where + 3:length] = ids[row, where + 3:length]
    labels[0, 1] = ids[0, 1]  # one target before the image, predicted from text alone
    pixels = torch.randn(len(lengths), 3, VISION['image_size'], VISION['image_size'], generator=g)
    return {'pixel_values': pixels, 'input_ids': ids, 'attention_mask': mask, 'labels': labels}


def run_llava(directory, inputs):
    return llava_ref.compute(inputs, {}, directory)


def with_placeholder(inputs, old, new):
    changed = dict(inputs)
    changed['input_ids'] = torch.where(inputs['input_ids'] == old, torch.tensor(new), inputs['input_ids'])
    return changed


# ---- safetensors ---------------------------------------------------------------------------------

@check
def safetensors_round_trip_keeps_every_dtype_shape_and_metadata():
    tensors = {
        'f64': torch.tensor([1.5, -2.25], dtype=torch.float64), 'f32': torch.randn(2, 3),
        'f16': torch.randn(4).half(), 'bf16': torch.randn(3, 1).bfloat16(), 'i64': torch.tensor([[-(2 ** 40), 7]]),
        'i32': torch.tensor([-3, 4], dtype=torch.int32), 'u8': torch.tensor([0, 255], dtype=torch.uint8),
        'bool': torch.tensor([True, False, True]), 'empty': torch.zeros(0, 4), 'scalar': torch.tensor(3.25),
    }
    path = scratch('round.safetensors')
    st.write(path, tensors, {'beta': '0.9', 'note': 'ü'})
    loaded, metadata = st.read(path)
    expect(metadata == {'beta': '0.9', 'note': 'ü'}, f'metadata came back as {metadata}')
    for name, tensor in tensors.items():
        expect(loaded[name].dtype == tensor.dtype and loaded[name].shape == tensor.shape and torch.equal(loaded[name], tensor),
               f'tensor {name} changed in the round trip')
    with open(path, 'rb') as handle:
        (length,) = struct.unpack('<Q', handle.read(8))
    expect(length % 8 == 0, f'header length {length} is not 8-aligned')


@check
def safetensors_reader_follows_the_byte_layout_of_the_spec():
    # Written by hand: bf16 1.0 is 0x3F80 and -2.0 is 0xC000 (little-endian); I32 7 then -1.
    header = json.dumps({'__metadata__': {'k': 'v'}, 'a': {'dtype': 'BF16', 'shape': [2], 'data_offsets': [0, 4]},
                         'b': {'dtype': 'I32', 'shape': [2], 'data_offsets': [4, 12]}}).encode()
    blob = struct.pack('<Q', len(header)) + header + bytes([0x80, 0x3F, 0x00, 0xC0]) + struct.pack('<ii', 7, -1)
    path = scratch('by-hand.safetensors')
    with open(path, 'wb') as handle:
        handle.write(blob)
    loaded, metadata = st.read(path)
    expect(loaded['a'].tolist() == [1.0, -2.0] and loaded['a'].dtype == torch.bfloat16, f'BF16 read as {loaded["a"]}')
    expect(loaded['b'].tolist() == [7, -1], f'I32 read as {loaded["b"]}')
    expect(metadata == {'k': 'v'}, f'metadata {metadata}')


def _write_raw(name, header, data):
    raw = json.dumps(header).encode()
    path = scratch(name)
    with open(path, 'wb') as handle:
        handle.write(struct.pack('<Q', len(raw)) + raw + data)
    return path


@check
def safetensors_reader_rejects_malformed_files():
    good = {'x': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]}}
    cases = [
        (_write_raw('short.st', good, b'\0' * 4), 'buffer after the header has 4'),
        (_write_raw('gap.st', {'x': {'dtype': 'F32', 'shape': [1], 'data_offsets': [4, 8]}}, b'\0' * 8), 'gap or overlap'),
        (_write_raw('dtype.st', {'x': {'dtype': 'F8', 'shape': [2], 'data_offsets': [0, 2]}}, b'\0' * 2), 'unsupported dtype'),
        (_write_raw('size.st', {'x': {'dtype': 'F32', 'shape': [3], 'data_offsets': [0, 8]}}, b'\0' * 8), 'needs 12 bytes'),
        (_write_raw('meta.st', {'__metadata__': {'a': 1}, **good}, b'\0' * 8), '__metadata__'),
    ]
    for path, fragment in cases:
        expect_ref_error(lambda: st.read(path), fragment, os.path.basename(path))
    huge = scratch('huge.st')
    with open(huge, 'wb') as handle:
        handle.write(struct.pack('<Q', 10 ** 12) + b'{}')
    expect_ref_error(lambda: st.read(huge), 'does not fit', 'huge header length')


@check
def sharded_checkpoint_loads_every_shard():
    tensors = {f't{i}': torch.full((2,), float(i)) for i in range(5)}
    directory = write_model('sharded-plain', tensors, {}, shards=3)
    loaded = st.load_checkpoint(directory)
    expect(sorted(loaded) == sorted(tensors) and all(torch.equal(loaded[k], tensors[k]) for k in tensors), 'shards lost tensors')


# ---- llava_ref -------------------------------------------------------------------------------------

WEIGHTS = random_weights()
INPUTS = batch_inputs()
BASE_DIR = model_dir('layout-a', WEIGHTS, 'a')
BASE = run_llava(BASE_DIR, INPUTS)


@check
def layouts_a_b_c_of_the_same_weights_give_identical_outputs():
    outputs_b = run_llava(model_dir('layout-b', WEIGHTS, 'b'), INPUTS)
    med_inputs = with_placeholder(INPUTS, IMAGE_TOKEN, llava_ref.LLAVA_MED_IMAGE_TOKEN_INDEX)
    outputs_c = run_llava(model_dir('layout-c', WEIGHTS, 'c'), med_inputs)
    expect_equal_outputs(BASE, outputs_b, 'layout b vs a')
    expect_equal_outputs(BASE, outputs_c, 'layout c vs a')
    expect(BASE['target_count'].tolist() == [7, 4], f'target_count {BASE["target_count"].tolist()}')


@check
def layout_c_with_a_separate_sharded_vision_tower_matches():
    tensors = layout_tensors(WEIGHTS, 'c', embed_vision=False)
    directory = write_model('layout-c-tower', tensors, med_config(embed_vision_config=False), shards=2)
    clip = {'vision_model.' + k: v for k, v in WEIGHTS['vision'].items()}
    clip['text_model.embeddings.token_embedding.weight'] = torch.zeros(3, 4)  # a full CLIPModel also has a text side
    write_model('layout-c-tower/vision_tower', clip, {'model_type': 'clip', 'vision_config': dict(VISION)})
    outputs = run_llava(directory, with_placeholder(INPUTS, IMAGE_TOKEN, llava_ref.LLAVA_MED_IMAGE_TOKEN_INDEX))
    expect_equal_outputs(BASE, outputs, 'separate vision tower vs embedded')


@check
def bf16_weights_are_upcast_to_the_same_values():
    rounded = {'vision': {k: v.bfloat16().float() for k, v in WEIGHTS['vision'].items()},
               'projector': [(w.bfloat16().float(), b.bfloat16().float()) for w, b in WEIGHTS['projector']],
               'text': {k: v.bfloat16().float() for k, v in WEIGHTS['text'].items()}, 'head': WEIGHTS['head'].bfloat16().float()}
    stored_bf16 = run_llava(model_dir('bf16', WEIGHTS, 'a', dtype=torch.bfloat16), INPUTS)
    stored_f32 = run_llava(model_dir('bf16-rounded', rounded, 'b'), INPUTS)
    expect_equal_outputs(stored_bf16, stored_f32, 'bf16 storage vs fp32 storage of bf16 values')
    expect(not torch.equal(stored_bf16['target_logprobs'], BASE['target_logprobs']), 'bf16 rounding had no effect at all')


@check
def outputs_have_the_contracted_shapes_and_sums():
    batch, width = INPUTS['input_ids'].shape[0], int(BASE['target_count'].max())
    expect(list(BASE['target_logprobs'].shape) == [batch, width], f'target_logprobs {list(BASE["target_logprobs"].shape)}')
    expect(list(BASE['image_features'].shape) == [batch, PATCHES, TEXT['hidden_size']], 'image_features shape')
    for row, count in enumerate(BASE['target_count'].tolist()):
        expect(bool((BASE['target_logprobs'][row, count:] == 0).all()), f'row {row} padding is not zero')
        expect(bool((BASE['target_logprobs'][row, :count] < 0).all()), f'row {row} has a log-prob >= 0')
        expect_close(BASE['seq_logprobs'][row], BASE['target_logprobs'][row, :count].double().sum(), f'row {row} seq_logprobs', atol=1e-5)


@check
def a_later_token_never_changes_earlier_log_probs():
    changed = {k: v.clone() for k, v in INPUTS.items()}
    position = 7  # row 0: placeholder at 2, targets at 1 and 5..10
    changed['input_ids'][0, position] = (changed['input_ids'][0, position] + 1) % IMAGE_TOKEN
    outputs = run_llava(BASE_DIR, changed)
    before, after = BASE['target_logprobs'][0], outputs['target_logprobs'][0]
    # targets 0..3 are at input positions 1, 5, 6, 7: all predicted from positions < 7
    expect(torch.equal(before[:4], after[:4]), 'a target predicted before the change moved')
    expect(not torch.equal(before[4:7], after[4:7]), 'targets after the change did not move: the check is blind')
    expect(torch.equal(BASE['target_logprobs'][1], outputs['target_logprobs'][1]), 'another row moved')


@check
def junk_in_the_padding_changes_nothing():
    padded = {k: v.clone() for k, v in INPUTS.items()}
    padded['input_ids'][1, 8:] = torch.tensor([IMAGE_TOKEN, 5, 1000])  # even a second placeholder and a bad id
    extra = torch.full((2, 3), 0, dtype=torch.int64)
    padded['input_ids'] = torch.cat([padded['input_ids'], extra + 7], dim=1)
    padded['attention_mask'] = torch.cat([padded['attention_mask'], extra], dim=1)
    padded['labels'] = torch.cat([padded['labels'], extra - 100], dim=1)
    expect_equal_outputs(BASE, run_llava(BASE_DIR, padded), 'junk padding')


@check
def gqa_equals_mha_with_each_kv_head_copied_to_its_query_group():
    gqa = random_weights(seed=5, text={'num_key_value_heads': 2})
    mha = {part: (dict(value) if isinstance(value, dict) else value) for part, value in gqa.items()}
    group, head_dim, hidden = TEXT['num_attention_heads'] // 2, TEXT['head_dim'], TEXT['hidden_size']
    for i in range(TEXT['num_hidden_layers']):
        for proj in ('k_proj', 'v_proj'):
            name = f'layers.{i}.self_attn.{proj}.weight'
            mha['text'][name] = gqa['text'][name].view(2, head_dim, hidden).repeat_interleave(group, dim=0).reshape(-1, hidden)
    out_gqa = run_llava(model_dir('gqa', gqa, 'a'), INPUTS)
    out_mha = run_llava(model_dir('mha', mha, 'a', config=hf_config(text={'num_key_value_heads': 4})), INPUTS)
    expect_close(out_gqa['target_logprobs'], out_mha['target_logprobs'], 'GQA vs MHA log-probs', atol=2e-5)
    shuffled = dict(mha['text'])  # copying kv heads in the wrong (tiled) order must not match
    for i in range(TEXT['num_hidden_layers']):
        for proj in ('k_proj', 'v_proj'):
            name = f'layers.{i}.self_attn.{proj}.weight'
            shuffled[name] = gqa['text'][name].view(2, head_dim, hidden).repeat(group, 1, 1).reshape(-1, hidden)
    out_tiled = run_llava(model_dir('mha-tiled', dict(mha, text=shuffled), 'a', config=hf_config(text={'num_key_value_heads': 4})), INPUTS)
    expect((out_gqa['target_logprobs'] - out_tiled['target_logprobs']).abs().max() > 1e-3, 'tiled kv copy also matched: check is blind')


@check
def keeping_every_visual_token_equals_no_keep_mask():
    inputs = dict(INPUTS, visual_keep=torch.ones(2, PATCHES, dtype=torch.uint8))
    expect_equal_outputs(BASE, run_llava(BASE_DIR, inputs), 'visual_keep of ones')


@check
def dropping_every_visual_token_equals_the_text_alone():
    inputs = dict(INPUTS, visual_keep=torch.zeros(2, PATCHES, dtype=torch.bool))
    outputs = run_llava(BASE_DIR, inputs)
    model = llava_ref.load_model(BASE_DIR)
    for row in range(2):
        length = int(INPUTS['attention_mask'][row].sum())
        ids, labels = INPUTS['input_ids'][row, :length].tolist(), INPUTS['labels'][row, :length].tolist()
        where = ids.index(IMAGE_TOKEN)
        text = ids[:where] + ids[where + 1:]
        text_labels = labels[:where] + labels[where + 1:]
        with torch.no_grad():
            log_probs = torch.log_softmax(llava_ref.decoder_logits(model, model.tw['embed_tokens.weight'][text]), -1)
        expected = [log_probs[t - 1, token].item() for t, token in enumerate(text_labels) if token != -100]
        count = int(outputs['target_count'][row])
        expect_close(outputs['target_logprobs'][row, :count], torch.tensor(expected), f'row {row} text-only log-probs')
    expect(torch.equal(outputs['image_features'], BASE['image_features']), 'dropping changed image_features')


@check
def dropping_some_visual_tokens_moves_only_what_follows_the_image():
    keep = torch.ones(2, PATCHES, dtype=torch.bool)
    keep[:, 1] = False
    outputs = run_llava(BASE_DIR, dict(INPUTS, visual_keep=keep))
    expect(outputs['target_logprobs'][0, 0] == BASE['target_logprobs'][0, 0], 'the target before the image moved')
    expect(not torch.equal(outputs['target_logprobs'][0, 1:], BASE['target_logprobs'][0, 1:]), 'targets after the image did not move')
    shuffled = keep.clone()
    shuffled[:, 1], shuffled[:, 2] = True, False  # a different kept set must give different numbers
    other = run_llava(BASE_DIR, dict(INPUTS, visual_keep=shuffled))
    expect(not torch.equal(other['target_logprobs'], outputs['target_logprobs']), 'which tokens are dropped did not matter')


@check
def clip_encoder_layer_equals_torch_pre_norm_transformer_layer():
    spec = llava_ref._vision_spec(VISION, llava_ref.CLIP_VISION_DEFAULTS, 'selftest')
    d, w, p = VISION['hidden_size'], WEIGHTS['vision'], 'encoder.layers.1.'
    layer = torch.nn.TransformerEncoderLayer(d, VISION['num_attention_heads'], VISION['intermediate_size'], dropout=0.0,
                                             activation=lambda v: v * torch.sigmoid(1.702 * v), layer_norm_eps=1e-5,
                                             batch_first=True, norm_first=True).eval()
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(torch.cat([w[p + f'self_attn.{x}_proj.weight'] for x in 'qkv']))
        layer.self_attn.in_proj_bias.copy_(torch.cat([w[p + f'self_attn.{x}_proj.bias'] for x in 'qkv']))
        layer.self_attn.out_proj.weight.copy_(w[p + 'self_attn.out_proj.weight'])
        layer.self_attn.out_proj.bias.copy_(w[p + 'self_attn.out_proj.bias'])
        for mine, theirs in (('layer_norm1', layer.norm1), ('layer_norm2', layer.norm2), ('mlp.fc1', layer.linear1), ('mlp.fc2', layer.linear2)):
            theirs.weight.copy_(w[p + mine + '.weight'])
            theirs.bias.copy_(w[p + mine + '.bias'])
        x = torch.randn(2, PATCHES + 1, d)
        expect_close(llava_ref.clip_encoder_layer(x, w, 1, spec), layer(x), 'CLIP layer vs torch layer', atol=1e-5)


@check
def clip_embeddings_take_patches_in_row_major_order():
    spec = llava_ref._vision_spec(VISION, llava_ref.CLIP_VISION_DEFAULTS, 'selftest')
    w, size, grid = WEIGHTS['vision'], VISION['patch_size'], VISION['image_size'] // VISION['patch_size']
    pixels = INPUTS['pixel_values']
    with torch.no_grad():
        embedded = llava_ref.clip_embeddings(pixels, w, spec)
    kernel, position = w['embeddings.patch_embedding.weight'], w['embeddings.position_embedding.weight']
    for b in range(pixels.shape[0]):
        expect_close(embedded[b, 0], w['embeddings.class_embedding'] + position[0], 'class token', atol=1e-6)
        for row in range(grid):
            for col in range(grid):
                patch = pixels[b, :, row * size:(row + 1) * size, col * size:(col + 1) * size]
                expected = (kernel * patch[None]).sum(dim=(1, 2, 3)) + position[1 + row * grid + col]
                expect_close(embedded[b, 1 + row * grid + col], expected, f'patch ({row}, {col})', atol=1e-5)


def naive_decoder_logits(model, embeddings):
    """Mistral decoder written out position by position in float64: RoPE as complex rotation, GQA by head // group."""
    spec, w = model.text, {k: v.double() for k, v in model.tw.items()}
    heads, group, head_dim = spec.num_attention_heads, spec.num_attention_heads // spec.num_key_value_heads, spec.head_dim
    length, half = embeddings.shape[0], spec.head_dim // 2

    def norm(x, weight):
        return torch.stack([weight * row / math.sqrt(sum(v * v for v in row.tolist()) / len(row) + spec.rms_norm_eps) for row in x])

    def rotate(vector, position):
        out = vector.clone()
        for i in range(half):
            z = complex(vector[i].item(), vector[i + half].item()) * complex(
                math.cos(position * spec.rope_theta ** (-2 * i / head_dim)), math.sin(position * spec.rope_theta ** (-2 * i / head_dim)))
            out[i], out[i + half] = z.real, z.imag
        return out

    x = embeddings.double()
    for layer in range(spec.num_hidden_layers):
        p = f'layers.{layer}.'
        h = norm(x, w[p + 'input_layernorm.weight'])
        q, k, v = (h @ w[p + f'self_attn.{n}_proj.weight'].T for n in 'qkv')
        mixed = torch.zeros(length, heads * head_dim, dtype=torch.float64)
        for head in range(heads):
            kv = head // group
            for i in range(length):
                query = rotate(q[i, head * head_dim:(head + 1) * head_dim], i)
                visible = [j for j in range(i + 1) if spec.sliding_window is None or i - j < spec.sliding_window]
                scores = [float(query @ rotate(k[j, kv * head_dim:(kv + 1) * head_dim], j)) / math.sqrt(head_dim) for j in visible]
                top = max(scores)
                weights = [math.exp(s - top) for s in scores]
                for j, weight in zip(visible, weights):
                    mixed[i, head * head_dim:(head + 1) * head_dim] += weight / sum(weights) * v[j, kv * head_dim:(kv + 1) * head_dim]
        x = x + mixed @ w[p + 'self_attn.o_proj.weight'].T
        h = norm(x, w[p + 'post_attention_layernorm.weight'])
        gate = h @ w[p + 'mlp.gate_proj.weight'].T
        x = x + (gate * torch.sigmoid(gate) * (h @ w[p + 'mlp.up_proj.weight'].T)) @ w[p + 'mlp.down_proj.weight'].T
    return norm(x, w['norm.weight']) @ model.head.double().T


@check
def decoder_equals_a_position_by_position_float64_transcription():
    config = hf_config(text={'sliding_window': 4, 'rope_theta': 100.0})  # small theta: rotations that matter at short range
    model = llava_ref.load_model(model_dir('naive-decoder', WEIGHTS, 'a', config=config))
    x = torch.randn(7, TEXT['hidden_size'], generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        expect_close(llava_ref.decoder_logits(model, x), naive_decoder_logits(model, x), 'decoder logits', atol=2e-4, rtol=1e-4)


@check
def feature_layer_and_cls_selection_follow_the_hidden_state_indexing():
    layers = VISION['num_hidden_layers']
    explicit = run_llava(model_dir('layer-explicit', WEIGHTS, 'a', config=hf_config(vision_feature_layer=layers - 1)), INPUTS)
    expect(torch.equal(explicit['image_features'], BASE['image_features']), 'layer -2 is not hidden_states[L-1]')
    last = run_llava(model_dir('layer-last', WEIGHTS, 'a', config=hf_config(vision_feature_layer=-1)), INPUTS)
    expect(not torch.equal(last['image_features'], BASE['image_features']), 'layer -1 equals layer -2: check is blind')
    full = run_llava(model_dir('select-full', WEIGHTS, 'a', config=hf_config(vision_feature_select_strategy='full')), INPUTS)
    expect(full['image_features'].shape[1] == PATCHES + 1, 'strategy full does not keep the CLS token')
    # per-token maps, but a longer matmul may round differently: equal up to fp32 noise
    expect_close(full['image_features'][:, 1:], BASE['image_features'], 'strategy full minus CLS vs default', atol=1e-6)
    med = run_llava(model_dir('med-cls', WEIGHTS, 'c', config=med_config(mm_vision_select_feature='cls_patch')),
                    with_placeholder(INPUTS, IMAGE_TOKEN, -200))
    expect_equal_outputs(full, med, 'cls_patch (layout c) vs full (layout a)')


@check
def a_list_of_feature_layers_concatenates_them_in_order():
    g = torch.Generator().manual_seed(13)
    wide = dict(WEIGHTS, projector=[(_random(g, TEXT['hidden_size'], 2 * VISION['hidden_size']), _random(g, TEXT['hidden_size'])),
                                    WEIGHTS['projector'][1]])
    outputs = run_llava(model_dir('layer-list', wide, 'b', config=hf_config(vision_feature_layer=[-2, 1])), INPUTS)
    spec = llava_ref._vision_spec(VISION, llava_ref.CLIP_VISION_DEFAULTS, 'selftest')
    with torch.no_grad():
        states = llava_ref.clip_hidden_states(INPUTS['pixel_values'], WEIGHTS['vision'], spec, VISION['num_hidden_layers'])
        selected = torch.cat([states[-2][:, 1:], states[1][:, 1:]], dim=-1)
        (w1, b1), (w2, b2) = wide['projector']
        expected = F.linear(F.gelu(F.linear(selected, w1, b1)), w2, b2)
    expect_close(outputs['image_features'], expected, 'features of layers [-2, 1]', atol=1e-5)


@check
def linear_projector_is_one_affine_map_of_the_selected_layer():
    w, b = torch.randn(TEXT['hidden_size'], VISION['hidden_size']) * 0.3, torch.randn(TEXT['hidden_size']) * 0.1
    tensors = layout_tensors(dict(WEIGHTS, projector=[]), 'c')
    tensors.update({'model.mm_projector.weight': w, 'model.mm_projector.bias': b})
    directory = write_model('med-linear', tensors, med_config(mm_projector_type='linear'))
    outputs = run_llava(directory, with_placeholder(INPUTS, IMAGE_TOKEN, -200))
    spec = llava_ref._vision_spec(VISION, llava_ref.CLIP_VISION_DEFAULTS, 'selftest')
    with torch.no_grad():
        states = llava_ref.clip_hidden_states(INPUTS['pixel_values'], WEIGHTS['vision'], spec, VISION['num_hidden_layers'])
    expect_close(outputs['image_features'], F.linear(states[-2][:, 1:], w, b), 'linear projector', atol=1e-5)


@check
def rope_rotate_half_equals_complex_rotation_of_split_pairs():
    length, head_dim, theta = 9, 8, 10000.0
    cos, sin = llava_ref.rope_tables(length, head_dim, theta)
    x = torch.randn(length, head_dim, dtype=torch.float64)
    rotated = llava_ref.apply_rope(x, cos.double(), sin.double())
    half = head_dim // 2
    for position in range(length):
        for i in range(half):
            angle = position * theta ** (-2 * i / head_dim)
            z = complex(x[position, i].item(), x[position, i + half].item()) * complex(math.cos(angle), math.sin(angle))
            expect(abs(rotated[position, i].item() - z.real) < 1e-6 and abs(rotated[position, i + half].item() - z.imag) < 1e-6,
                   f'rotation wrong at position {position}, pair {i}')


@check
def rope_scores_depend_only_on_relative_position():
    cos, sin = llava_ref.rope_tables(20, 8, 10000.0)
    q, k = torch.randn(8), torch.randn(8)
    rot = lambda v, p: llava_ref.apply_rope(v, cos[p], sin[p])  # noqa: E731
    expect_close(rot(q, 7) @ rot(k, 3), rot(q, 15) @ rot(k, 11), 'shifted q.k', atol=1e-5)
    expect(abs((rot(q, 7) @ rot(k, 3)) - (rot(q, 7) @ rot(k, 5))) > 1e-4, 'q.k ignores the distance: check is blind')


@check
def sliding_window_hides_exactly_the_keys_at_or_beyond_the_window():
    window, length, changed_at = 3, 10, 2
    one_layer = random_weights(seed=7, text={'num_hidden_layers': 1})
    config = hf_config(text={'num_hidden_layers': 1, 'sliding_window': window})
    model = llava_ref.load_model(model_dir('window', one_layer, 'a', config=config))
    x = torch.randn(length, TEXT['hidden_size'])
    y = x.clone()
    y[changed_at] += 1.0
    with torch.no_grad():
        moved = (llava_ref.decoder_logits(model, x) - llava_ref.decoder_logits(model, y)).abs().amax(-1) > 0
    expected = [changed_at <= i < changed_at + window for i in range(length)]  # i sees j iff i - window < j <= i
    expect(moved.tolist() == expected, f'rows that moved {moved.int().tolist()}, expected {[int(e) for e in expected]}')
    wide = llava_ref.load_model(model_dir('window-wide', one_layer, 'a', config=hf_config(text={'num_hidden_layers': 1, 'sliding_window': length})))
    none = llava_ref.load_model(model_dir('window-none', one_layer, 'a', config=hf_config(text={'num_hidden_layers': 1})))
    with torch.no_grad():
        expect(torch.equal(llava_ref.decoder_logits(wide, x), llava_ref.decoder_logits(none, x)), 'window >= length differs from no window')


@check
def tied_or_missing_lm_head_reads_the_input_embeddings():
    copied = dict(WEIGHTS, head=WEIGHTS['text']['embed_tokens.weight'].clone())
    expected = run_llava(model_dir('head-copy', copied, 'a'), INPUTS)
    missing = run_llava(model_dir('head-missing', dict(WEIGHTS, head=None), 'a'), INPUTS)
    tied = run_llava(model_dir('head-tied', WEIGHTS, 'b', config=hf_config(text={'tie_word_embeddings': True})), INPUTS)
    expect_equal_outputs(expected, missing, 'missing lm_head')
    expect_equal_outputs(expected, tied, 'tie_word_embeddings')
    expect(not torch.equal(expected['target_logprobs'], BASE['target_logprobs']), 'the head made no difference: check is blind')


@check
def bad_llava_inputs_are_refused_with_the_reason():
    def run_with(**changes):
        inputs = {k: v.clone() for k, v in INPUTS.items()}
        for name, (index, value) in changes.items():
            inputs[name][index] = value
        return lambda: run_llava(BASE_DIR, inputs)

    expect_ref_error(run_with(input_ids=((0, 4), IMAGE_TOKEN)), 'exactly one image placeholder', 'two placeholders')
    expect_ref_error(run_with(labels=((0, 2), 5)), 'image placeholder', 'label on the placeholder')
    expect_ref_error(run_with(labels=((1, 9), 5)), 'padding', 'label in the padding')
    expect_ref_error(run_with(labels=((0, 0), 5)), 'first token', 'label at position 0')
    expect_ref_error(run_with(labels=((0, 6), 40)), 'outside the vocabulary', 'label outside the vocabulary')
    expect_ref_error(run_with(attention_mask=((0, 3), 0)), 'ones then zeros', 'left/holey padding')
    expect_ref_error(lambda: run_llava(BASE_DIR, dict(INPUTS, pixel_values=torch.zeros(2, 3, 16, 16))), 'pixel_values', 'image size')
    expect_ref_error(lambda: run_llava(BASE_DIR, dict(INPUTS, visual_keep=torch.ones(2, PATCHES + 1, dtype=torch.bool))),
                     'visual_keep', 'keep mask width')
    lora = layout_tensors(WEIGHTS, 'a')
    lora['language_model.model.layers.0.self_attn.q_proj.lora_A.weight'] = torch.zeros(2, 32)
    expect_ref_error(lambda: run_llava(write_model('lora', lora, hf_config()), INPUTS), 'lora_A', 'unmerged adapter')
    wrong = model_dir('wrong-heads', WEIGHTS, 'a', config=hf_config(text={'num_key_value_heads': 4}))
    expect_ref_error(lambda: run_llava(wrong, INPUTS), 'config implies', 'config/weight mismatch')


# ---- mlpo_ref ------------------------------------------------------------------------------------

def mlpo_inputs(batch=3, ranks=3, seed=3, mask=None):
    g = torch.Generator().manual_seed(seed)
    lp = lambda *shape: -torch.rand(*shape, generator=g, dtype=torch.float64) * 20  # noqa: E731
    return {'policy_chosen': lp(batch), 'policy_rejected': lp(batch, ranks), 'ref_chosen': lp(batch),
            'ref_rejected': lp(batch, ranks), 'mask': torch.ones(batch, ranks, dtype=torch.uint8) if mask is None else mask}


MLPO_META = {'gamma': '0.1', 'lambda_explicit': '1', 'lambda_implicit': '1', 'pair_weighting': 'sum'}


@check
def mlpo_at_policy_equal_reference_is_pairs_times_log2():
    inputs = mlpo_inputs(mask=torch.tensor([[1, 1, 1], [1, 1, 0], [0, 0, 0]], dtype=torch.uint8))
    inputs['policy_chosen'], inputs['policy_rejected'] = inputs['ref_chosen'].clone(), inputs['ref_rejected'].clone()
    out = mlpo_ref.compute(inputs, MLPO_META)
    pairs = [3 + 3, 2 + 1, 0]  # J + J(J-1)/2 per sample with J valid
    expect_close(out['loss'], sum(pairs) / 3 * math.log(2), 'loss at policy = ref', atol=1e-12)
    expect_close(out['loss_explicit'], (3 + 2) / 3 * math.log(2), 'explicit loss at policy = ref', atol=1e-12)


@check
def mlpo_gradients_match_the_closed_form():
    inputs = mlpo_inputs(mask=torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=torch.uint8))
    meta = dict(MLPO_META, lambda_explicit='0.7', lambda_implicit='1.3')
    out = mlpo_ref.compute(inputs, meta)
    gamma, batch = 0.1, 3
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    grad_w, grad_l = torch.zeros(batch, dtype=torch.float64), torch.zeros(batch, 3, dtype=torch.float64)
    loss = 0.0
    for b in range(batch):
        r_w = gamma * (inputs['policy_chosen'][b] - inputs['ref_chosen'][b]).item()
        r_l = [gamma * (inputs['policy_rejected'][b, j] - inputs['ref_rejected'][b, j]).item() for j in range(3)]
        valid = inputs['mask'][b].tolist()
        for j in range(3):
            if valid[j]:  # d/dm of -log sigmoid(m) is sigmoid(m) - 1
                slope = 0.7 * (sig(r_w - r_l[j]) - 1) * gamma / batch
                grad_w[b] += slope
                grad_l[b, j] -= slope
                loss += 0.7 * -math.log(sig(r_w - r_l[j])) / batch
            for m in range(j + 1, 3):
                if valid[j] and valid[m]:
                    slope = 1.3 * (sig(r_l[j] - r_l[m]) - 1) * gamma / batch
                    grad_l[b, j] += slope
                    grad_l[b, m] -= slope
                    loss += 1.3 * -math.log(sig(r_l[j] - r_l[m])) / batch
    expect_close(out['loss'], loss, 'loss', atol=1e-12)
    expect_close(out['grad_policy_chosen'], grad_w, 'grad_policy_chosen', atol=1e-12)
    expect_close(out['grad_policy_rejected'], grad_l, 'grad_policy_rejected', atol=1e-12)


@check
def mlpo_mean_weighting_divides_each_level_by_its_pair_count():
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [0, 0, 0]], dtype=torch.uint8)
    inputs = mlpo_inputs(mask=mask)
    per_sample = []
    for b in range(3):
        single = {k: v[b:b + 1] for k, v in inputs.items()}
        summed = mlpo_ref.compute(single, MLPO_META)
        meaned = mlpo_ref.compute(single, dict(MLPO_META, pair_weighting='mean'))
        valid = int(mask[b].sum())
        implicit_pairs = valid * (valid - 1) // 2
        expect_close(meaned['loss_explicit'], summed['loss_explicit'] / valid if valid else 0.0, f'sample {b} explicit mean')
        expect_close(meaned['loss_implicit'], summed['loss_implicit'] / implicit_pairs if implicit_pairs else 0.0, f'sample {b} implicit mean')
        per_sample.append(meaned['loss'].item())
    whole = mlpo_ref.compute(inputs, dict(MLPO_META, pair_weighting='mean'))
    expect_close(whole['loss'], sum(per_sample) / 3, 'batch mean of per-sample losses', atol=1e-12)


@check
def mlpo_ignores_masked_answers_entirely():
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.uint8)
    inputs = mlpo_inputs(batch=2, mask=mask)
    moved = dict(inputs, policy_rejected=inputs['policy_rejected'].clone())
    moved['policy_rejected'][0, 2] += 50
    moved['policy_rejected'][1, 1:] -= 50
    a, b = mlpo_ref.compute(inputs, MLPO_META), mlpo_ref.compute(moved, MLPO_META)
    expect_equal_outputs(a, b, 'masked values changed')
    expect(bool((a['grad_policy_rejected'][mask == 0] == 0).all()), 'masked answers got a gradient')
    expect(bool((a['grad_policy_rejected'][mask == 1] != 0).all()), 'valid answers got no gradient')
    expect_ref_error(lambda: mlpo_ref.compute(mlpo_inputs(batch=1, mask=torch.tensor([[1, 0, 1]])), MLPO_META), 'ranked', 'unranked mask')


@check
def mlpo_reward_accuracy_counts_positive_margins():
    inputs = {'policy_chosen': torch.tensor([0.0], dtype=torch.float64), 'ref_chosen': torch.tensor([-5.0], dtype=torch.float64),
              'policy_rejected': torch.tensor([[-3.0, -2.0, -9.0]], dtype=torch.float64),
              'ref_rejected': torch.zeros(1, 3, dtype=torch.float64), 'mask': torch.ones(1, 3, dtype=torch.bool)}
    out = mlpo_ref.compute(inputs, MLPO_META)  # r_w = 0.5 beats all; implicit: -0.3 < -0.2 wrong, -0.3 > -0.9, -0.2 > -0.9
    expect(out['reward_acc_explicit'].item() == 1.0, f'explicit accuracy {out["reward_acc_explicit"].item()}')
    expect(abs(out['reward_acc_implicit'].item() - 2 / 3) < 1e-12, f'implicit accuracy {out["reward_acc_implicit"].item()}')


# ---- adamw_ref -----------------------------------------------------------------------------------

ADAM_META = {'lr': '0.01', 'beta1': '0.9', 'beta2': '0.999', 'eps': '1e-8', 'weight_decay': '0.1', 'warmup_steps': '0',
             'total_steps': '10', 'schedule': 'constant', 'max_grad_norm': '0'}


def hand_adamw(param, grads, lrs, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, max_norm=0.0):
    """Adam with decoupled weight decay (Loshchilov & Hutter), written out in float64."""
    p, m, v, history = param.double().clone(), torch.zeros_like(param, dtype=torch.float64), torch.zeros_like(param, dtype=torch.float64), []
    for step, (grad, lr) in enumerate(zip(grads.double(), lrs), start=1):
        if max_norm > 0:
            grad = grad * min(1.0, max_norm / (grad.norm().item() + 1e-6))
        p = p * (1 - lr * weight_decay)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        p = p - lr * (m / (1 - beta1 ** step)) / ((v / (1 - beta2 ** step)).sqrt() + eps)
        history.append(p)
    return torch.stack(history)


@check
def adamw_matches_hand_written_adam():
    g = torch.Generator().manual_seed(11)
    param, grads = torch.randn(6, generator=g), torch.randn(3, 6, generator=g)
    out = adamw_ref.compute({'param0': param, 'grads': grads}, ADAM_META)
    expect_close(out['params'], hand_adamw(param, grads, [0.01] * 3), 'params after 3 steps', atol=1e-6)
    expect_close(out['grad_norms'], grads.norm(dim=1), 'grad norms', atol=1e-6)
    expect(not torch.allclose(out['params'][0], param), 'step 1 did not move the params')


@check
def adamw_warmup_starts_at_lr_zero_and_schedules_follow_hf():
    param, grads = torch.randn(4), torch.randn(11, 4)
    meta = dict(ADAM_META, warmup_steps='2', total_steps='10', schedule='cosine')
    out = adamw_ref.compute({'param0': param, 'grads': grads}, meta)
    lrs = out['lrs'].tolist()
    expect(torch.equal(out['params'][0], param), 'the first warm-up step (lr 0) moved the params')
    expect_close(lrs[:3], [0.0, 0.005, 0.01], 'warm-up lrs', atol=1e-15)
    expect_close([lrs[6], lrs[10]], [0.005, 0.0], 'cosine lrs at half-way and at the end', atol=1e-15)
    linear = adamw_ref.compute({'param0': param, 'grads': grads}, dict(meta, schedule='linear'))['lrs'].tolist()
    expect_close([linear[2], linear[6], linear[10]], [0.01, 0.005, 0.0], 'linear lrs', atol=1e-15)
    constant = adamw_ref.compute({'param0': param, 'grads': grads}, dict(meta, schedule='constant'))['lrs'].tolist()
    expect_close(constant[2:], [0.01] * 9, 'constant lrs after warm-up', atol=1e-15)


@check
def adamw_clips_the_global_norm_before_each_step():
    param = torch.randn(5)
    grads = torch.stack([torch.full((5,), 10 / math.sqrt(5)), torch.randn(5) * 0.1])  # norms 10 (clipped) and small
    out = adamw_ref.compute({'param0': param, 'grads': grads}, dict(ADAM_META, max_grad_norm='1'))
    expect_close(out['grad_norms'][0], 10.0, 'pre-clip norm', atol=1e-5)
    clipped = hand_adamw(param, grads, [0.01, 0.01], max_norm=1.0)
    unclipped = hand_adamw(param, grads, [0.01, 0.01])
    expect_close(out['params'], clipped, 'params with clipping', atol=1e-6)
    expect((clipped[1] - unclipped[1]).abs().max() > 1e-4, 'clipping made no difference: check is blind')
    expect_ref_error(lambda: adamw_ref.compute({'param0': param, 'grads': grads}, dict(ADAM_META, schedule='step')), 'schedule', 'bad schedule')
    expect_ref_error(lambda: adamw_ref.compute({'param0': param, 'grads': grads[:, :4]}, ADAM_META), 'grads', 'bad width')


# ---- contrastive_ref -------------------------------------------------------------------------------

CONTRAST_META = {'beta': '0.9', 'n': '3', 'alpha': '0.1', 'c': '4'}


def vectorized_contrastive(full, drop, targets, eligible, beta, n, alpha, c):
    """The same definitions written with tensor ops and stable sorts, to cross-check the loops."""
    safe = targets.clamp(min=0)
    shift = (full.double().log_softmax(-1).gather(-1, safe[..., None]) - drop.double().log_softmax(-1).gather(-1, safe[..., None]))[..., 0]
    shift = torch.where(targets >= 0, shift, torch.zeros_like(shift))
    key = torch.where(eligible, shift, torch.full_like(shift, -math.inf))
    order = torch.sort(key, dim=-1, descending=True, stable=True).indices[:, :n]
    positions = torch.where(torch.gather(eligible, 1, order), order, torch.full_like(order, -1))
    contrast = (1 + beta) * full.double() - beta * drop.double()
    p = drop.double().softmax(-1)
    plausible = p >= alpha * p.amax(-1, keepdim=True)
    plausible &= torch.arange(full.shape[-1]) != safe[..., None]
    ranked = torch.sort(torch.where(plausible, contrast, torch.full_like(contrast, math.inf)), dim=-1, stable=True)
    candidates = torch.full((full.shape[0], n, c), -1, dtype=torch.int64)
    scores = torch.zeros(full.shape[0], n, c, dtype=torch.float64)
    for b in range(full.shape[0]):
        for slot, t in enumerate(positions[b].tolist()):
            if t >= 0:
                kept = int(plausible[b, t].sum().clamp(max=c))
                candidates[b, slot, :kept] = ranked.indices[b, t, :kept]
                scores[b, slot, :kept] = ranked.values[b, t, :kept]
    return shift.float(), positions, candidates, scores.float()


@check
def contrastive_loops_match_a_vectorized_implementation():
    g = torch.Generator().manual_seed(21)
    full, drop = torch.randn(2, 7, 30, generator=g) * 3, torch.randn(2, 7, 30, generator=g) * 3
    targets = torch.randint(0, 30, (2, 7), generator=g)
    targets[1, 6] = -100
    eligible = torch.tensor([[1, 1, 0, 1, 1, 1, 1], [0, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    out = contrastive_ref.compute({'logits_full': full, 'logits_drop': drop, 'targets': targets, 'eligible': eligible}, CONTRAST_META)
    shift, positions, candidates, scores = vectorized_contrastive(full, drop, targets, eligible, 0.9, 3, 0.1, 4)
    expect_close(out['shift'], shift, 'shift', atol=1e-5)
    expect(torch.equal(out['positions'], positions), f'positions {out["positions"].tolist()} vs {positions.tolist()}')
    expect(out['positions'][1].tolist()[2] == -1, 'fewer eligible positions than n must pad with -1')
    expect(torch.equal(out['candidates'], candidates), 'candidates differ')
    expect_close(out['candidate_scores'], scores, 'candidate scores', atol=1e-5)
    expect(bool((out['candidates'] >= 0).sum() > 4), 'almost no candidates: check is weak')


@check
def contrastive_hand_computed_case_and_ties():
    full = torch.tensor([[[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    drop = torch.zeros(1, 3, 4)
    drop[0, 0, 3] = -10.0  # token 3 is implausible at position 0 under the dropped view
    targets, eligible = torch.tensor([[0, 1, 2]]), torch.ones(1, 3, dtype=torch.bool)
    out = contrastive_ref.compute({'logits_full': full, 'logits_drop': drop, 'targets': targets, 'eligible': eligible},
                                  {'beta': '0.5', 'n': '3', 'alpha': '0.1', 'c': '3'})
    expected_shift = math.log(math.exp(2) / (math.exp(2) + 3)) - math.log(1 / (3 + math.exp(-10)))
    expect_close(out['shift'][0, 0], expected_shift, 'hand-computed shift', atol=1e-6)
    expect(out['positions'][0].tolist() == [0, 1, 2], f'ties must keep lower positions first: {out["positions"][0].tolist()}')
    expect(out['candidates'][0, 0].tolist() == [1, 2, -1], f'position 0 candidates {out["candidates"][0, 0].tolist()}')
    expect(out['candidates'][0, 1].tolist() == [0, 2, 3], f'ties must keep lower token ids first: {out["candidates"][0, 1].tolist()}')
    expect_close(out['target_contrastive'][0], [3.0, 0.0, 0.0], 'target contrastive (1+b)*full - b*drop')
    expect_ref_error(lambda: contrastive_ref.compute({'logits_full': full, 'logits_drop': drop, 'targets': torch.tensor([[0, -100, 2]]),
                                                      'eligible': eligible}, CONTRAST_META), 'names no token', 'eligible without target')


# ---- the command lines ------------------------------------------------------------------------------

@check
def command_lines_write_out_and_refuse_bad_input_without_touching_out():
    cases = [(mlpo_ref, mlpo_inputs(), MLPO_META), (adamw_ref, {'param0': torch.randn(3), 'grads': torch.randn(2, 3)}, ADAM_META)]
    for module, inputs, meta in cases:
        name = module.__name__
        st.write(scratch(f'{name}-in.safetensors'), inputs, meta)
        expect(module.main([scratch(f'{name}-in.safetensors'), scratch(f'{name}-out.safetensors')]) == 0, f'{name} failed')
        expect_equal_outputs(st.read(scratch(f'{name}-out.safetensors'))[0], module.compute(inputs, meta), f'{name} OUT')
        st.write(scratch(f'{name}-bad.safetensors'), inputs, {})
        before = open(scratch(f'{name}-out.safetensors'), 'rb').read()
        messages = io.StringIO()
        with contextlib.redirect_stderr(messages):
            status = module.main([scratch(f'{name}-bad.safetensors'), scratch(f'{name}-out.safetensors')])
        expect(status == 2 and 'is required' in messages.getvalue(), f'{name} without metadata: exit {status}, {messages.getvalue()!r}')
        expect(open(scratch(f'{name}-out.safetensors'), 'rb').read() == before, f'{name} touched OUT on bad input')


@check
def llava_command_line_runs_as_a_separate_process():
    st.write(scratch('llava-in.safetensors'), INPUTS)
    script = os.path.join(HERE, 'llava_ref.py')
    done = subprocess.run([sys.executable, script, scratch('llava-in.safetensors'), scratch('llava-out.safetensors'), BASE_DIR],
                          capture_output=True, text=True)
    expect(done.returncode == 0, f'exit {done.returncode}: {done.stderr}')
    expect_equal_outputs(st.read(scratch('llava-out.safetensors'))[0], BASE, 'llava OUT')
    bad = dict(INPUTS, labels=INPUTS['labels'].clone())
    bad['labels'][0, 2] = 3
    st.write(scratch('llava-bad.safetensors'), bad)
    done = subprocess.run([sys.executable, script, scratch('llava-bad.safetensors'), scratch('llava-bad-out.safetensors'), BASE_DIR],
                          capture_output=True, text=True)
    expect(done.returncode == 2 and 'labels row 0 position 2' in done.stderr and 'Traceback' not in done.stderr,
           f'bad input: exit {done.returncode}, stderr {done.stderr!r}')
    expect(not os.path.exists(scratch('llava-bad-out.safetensors')), 'OUT was written for bad input')


def main():
    passed, failed = 0, 0
    try:
        for function in CHECKS:
            try:
                function()
                passed += 1
                print(f'ok   {function.__name__}')
            except Exception:  # noqa: BLE001 - every failure is reported, then counted
                failed += 1
                print(f'FAIL {function.__name__}\n{traceback.format_exc()}')
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
    print(f'selftest: {passed} passed, {failed} failed')
    return 0 if failed == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
