"""What every reference script shares: the error type, input checks, and the IN/OUT command line."""
import math
import os
import sys

import torch


class RefError(Exception):
    """Bad input: reported as one clear line and a non-zero exit, never as a traceback."""


EXIT_BAD_INPUT = 2

FLOAT_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


# ---- metadata (scalar options arrive as strings) ---------------------------------------------

def meta_float(meta, key, low=-math.inf, high=math.inf, default=None):
    raw = meta.get(key, default)
    if raw is None:
        raise RefError(f'metadata "{key}" is required (a number as a string)')
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise RefError(f'metadata "{key}" must be a number, got {raw!r}') from None
    if not math.isfinite(value) or not low <= value <= high:
        raise RefError(f'metadata "{key}" must be a finite number in [{low}, {high}], got {raw!r}')
    return value


def meta_int(meta, key, low=-(2 ** 62), high=2 ** 62, default=None):
    raw = meta.get(key, default)
    if raw is None:
        raise RefError(f'metadata "{key}" is required (an integer as a string)')
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise RefError(f'metadata "{key}" must be an integer, got {raw!r}') from None
    if not low <= value <= high:
        raise RefError(f'metadata "{key}" must be an integer in [{low}, {high}], got {raw!r}')
    return value


def meta_choice(meta, key, choices, default=None):
    raw = meta.get(key, default)
    if raw not in choices:
        raise RefError(f'metadata "{key}" must be one of {", ".join(choices)}; got {raw!r}')
    return raw


# ---- tensors ---------------------------------------------------------------------------------

def require(tensors, name, rank=None, dtypes=None):
    if name not in tensors:
        raise RefError(f'input tensor "{name}" is missing (have: {", ".join(sorted(tensors)) or "none"})')
    tensor = tensors[name]
    if rank is not None and tensor.dim() != rank:
        raise RefError(f'input tensor "{name}" must have rank {rank}, got shape {list(tensor.shape)}')
    if dtypes is not None and tensor.dtype not in dtypes:
        raise RefError(f'input tensor "{name}" has dtype {tensor.dtype}; expected one of {", ".join(str(d) for d in dtypes)}')
    return tensor


def require_shape(name, tensor, shape):
    if list(tensor.shape) != list(shape):
        raise RefError(f'input tensor "{name}" must have shape {list(shape)}, got {list(tensor.shape)}')


def as_float(name, tensor, dtype):
    """Cast a float input, refusing NaN/inf: every script's maths assumes finite inputs."""
    if tensor.dtype not in FLOAT_DTYPES:
        raise RefError(f'input tensor "{name}" must be floating point, got {tensor.dtype}')
    value = tensor.to(dtype)
    if value.numel() and not torch.isfinite(value).all():
        bad = torch.nonzero(~torch.isfinite(value))[0].tolist()
        raise RefError(f'input tensor "{name}" has a non-finite value at index {bad}: {value[tuple(bad)].item()}')
    return value


def as_flags(name, tensor):
    """A BOOL/U8 (or other integer) 0/1 tensor, as bool."""
    if tensor.dtype == torch.bool:
        return tensor
    if tensor.dtype not in INT_DTYPES:
        raise RefError(f'input tensor "{name}" must be BOOL or U8 (0/1), got {tensor.dtype}')
    bad = (tensor != 0) & (tensor != 1)
    if bad.any():
        index = torch.nonzero(bad)[0].tolist()
        raise RefError(f'input tensor "{name}" must hold only 0/1, got {tensor[tuple(index)].item()} at index {index}')
    return tensor.bool()


def as_ints(name, tensor):
    if tensor.dtype not in INT_DTYPES:
        raise RefError(f'input tensor "{name}" must be an integer tensor (I64), got {tensor.dtype}')
    return tensor.to(torch.int64)


# ---- the command line shared by all scripts ----------------------------------------------------

def run_cli(argv, compute, program, takes_model_dir=False):
    """`program IN.safetensors OUT.safetensors [MODEL_DIR]` -> exit status.

    compute(tensors, metadata[, model_dir]) returns the OUT tensors; OUT is written only when it succeeds.
    """
    import st  # here, so that st can import RefError from this module

    usage = f'usage: {program} IN.safetensors OUT.safetensors' + (' MODEL_DIR' if takes_model_dir else '')
    expected = 3 if takes_model_dir else 2
    if len(argv) != expected:
        print(f'{program}: error: expected {expected} arguments, got {len(argv)}\n{usage}', file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        tensors, metadata = st.read(argv[0])
        if takes_model_dir:
            if not os.path.isdir(argv[2]):
                raise RefError(f'{argv[2]}: MODEL_DIR is not a directory')
            outputs = compute(tensors, metadata, argv[2])
        else:
            outputs = compute(tensors, metadata)
        st.write(argv[1], outputs, {'reference': program})
    except RefError as err:
        print(f'{program}: error: {err}', file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0
