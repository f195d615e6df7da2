"""A small, strict safetensors reader/writer on torch alone (no numpy, no safetensors package).

Format: 8-byte little-endian header length N, N bytes of JSON header, then the byte buffer.
The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative
to the buffer) plus an optional "__metadata__" map of str -> str. Like the official Rust reader,
this one insists that the tensors tile the buffer exactly (no gaps, no overlaps, nothing left
over), so that a sloppy writer on the hscr side is caught by the cross-checks.
"""
import ctypes
import json
import mmap
import os
import struct
import sys

import torch

from common import RefError

DTYPES = {
    'F64': torch.float64,
    'F32': torch.float32,
    'F16': torch.float16,
    'BF16': torch.bfloat16,
    'I64': torch.int64,
    'I32': torch.int32,
    'I16': torch.int16,
    'I8': torch.int8,
    'U8': torch.uint8,
    'BOOL': torch.bool,
}
NAMES = {dtype: name for name, dtype in DTYPES.items()}

# A header beyond this is a corrupt length field, not a real checkpoint (the Rust crate uses 100 MB).
MAX_HEADER_BYTES = 100_000_000

if sys.byteorder != 'little':
    raise RuntimeError('st.py reinterprets raw little-endian bytes and needs a little-endian host')


def _element_count(shape):
    count = 1
    for dim in shape:
        count *= dim
    return count


def _parse_header(path, file_size, raw_length):
    if file_size < 8:
        raise RefError(f'{path}: {file_size} bytes is too short for a safetensors file (needs an 8-byte header length)')
    (header_length,) = struct.unpack('<Q', raw_length)
    if header_length > MAX_HEADER_BYTES or 8 + header_length > file_size:
        raise RefError(f'{path}: header length {header_length} does not fit a file of {file_size} bytes')
    return header_length


def _check_entry(path, name, entry):
    if not isinstance(entry, dict) or set(entry) != {'dtype', 'shape', 'data_offsets'}:
        raise RefError(f'{path}: tensor "{name}": entry must have exactly dtype, shape, data_offsets; got {entry!r}')
    if entry['dtype'] not in DTYPES:
        raise RefError(f'{path}: tensor "{name}": unsupported dtype {entry["dtype"]!r} (supported: {", ".join(DTYPES)})')
    shape = entry['shape']
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise RefError(f'{path}: tensor "{name}": shape must be a list of non-negative integers, got {shape!r}')
    offsets = entry['data_offsets']
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
            or offsets[1] < offsets[0]):
        raise RefError(f'{path}: tensor "{name}": data_offsets must be [begin, end] with 0 <= begin <= end, got {offsets!r}')
    itemsize = torch.empty((), dtype=DTYPES[entry['dtype']]).element_size()
    expected = _element_count(shape) * itemsize
    if offsets[1] - offsets[0] != expected:
        raise RefError(f'{path}: tensor "{name}": {entry["dtype"]}{shape} needs {expected} bytes, data_offsets span {offsets[1] - offsets[0]}')


def _check_tiling(path, entries, buffer_size):
    cursor = 0
    for name, entry in sorted(entries.items(), key=lambda item: tuple(item[1]['data_offsets'])):
        begin, end = entry['data_offsets']
        if begin != cursor:
            raise RefError(f'{path}: tensor "{name}" starts at byte {begin} of the buffer, expected {cursor} (gap or overlap)')
        cursor = end
    if cursor != buffer_size:
        raise RefError(f'{path}: tensors cover {cursor} bytes but the buffer after the header has {buffer_size}')


def read_header(path):
    """(entries, metadata, data_start) without touching the tensor bytes."""
    try:
        with open(path, 'rb') as handle:
            file_size = os.fstat(handle.fileno()).st_size
            header_length = _parse_header(path, file_size, handle.read(8).ljust(8, b'\0'))
            raw = handle.read(header_length)
    except OSError as err:
        raise RefError(f'{path}: cannot read: {err.strerror}') from None
    try:
        header = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RefError(f'{path}: header is not valid UTF-8 JSON: {err}') from None
    if not isinstance(header, dict):
        raise RefError(f'{path}: header must be a JSON object')
    metadata = header.pop('__metadata__', None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise RefError(f'{path}: __metadata__ must map strings to strings, got {metadata!r}')
    for name, entry in header.items():
        _check_entry(path, name, entry)
    data_start = 8 + header_length
    _check_tiling(path, header, file_size - data_start)
    return header, metadata, data_start


def read(path, names=None):
    """(tensors, metadata). Tensors own their memory (copied out of a private mapping)."""
    entries, metadata, data_start = read_header(path)
    wanted = entries if names is None else {n: entries[n] for n in names if n in entries}
    tensors = {}
    with open(path, 'rb') as handle:
        # ACCESS_COPY: a writable private view, so torch.frombuffer does not warn, and the file is never written.
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY) if os.fstat(handle.fileno()).st_size else None
        try:
            for name, entry in wanted.items():
                dtype = DTYPES[entry['dtype']]
                count = _element_count(entry['shape'])
                if count == 0:
                    tensors[name] = torch.empty(entry['shape'], dtype=dtype)
                    continue
                view = torch.frombuffer(mapped, dtype=dtype, count=count, offset=data_start + entry['data_offsets'][0])
                tensors[name] = view.clone().reshape(entry['shape'])
                del view  # a live view is a buffer export, and mmap.close() refuses while one exists
        finally:
            if mapped is not None:
                try:
                    mapped.close()
                except BufferError:
                    pass  # only after an earlier error left a view alive; that error is the one to report
    return tensors, metadata


def _tensor_bytes(tensor):
    tensor = tensor.detach().cpu().contiguous()
    size = tensor.numel() * tensor.element_size()
    return ctypes.string_at(tensor.data_ptr(), size) if size else b''


def write(path, tensors, metadata=None):
    """Write atomically (temp file + rename): a failed write never leaves a half file at `path`."""
    header = {}
    if metadata:
        header['__metadata__'] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, tensor in tensors.items():
        if tensor.dtype not in NAMES:
            raise RefError(f'cannot write tensor "{name}": dtype {tensor.dtype} has no safetensors name here')
        blob = _tensor_bytes(tensor)
        header[name] = {'dtype': NAMES[tensor.dtype], 'shape': list(tensor.shape), 'data_offsets': [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    encoded = json.dumps(header, separators=(',', ':')).encode('utf-8')
    encoded += b' ' * (-len(encoded) % 8)  # the reference writer pads so the buffer starts 8-aligned
    temp = f'{path}.tmp-{os.getpid()}'
    try:
        with open(temp, 'wb') as handle:
            handle.write(struct.pack('<Q', len(encoded)))
            handle.write(encoded)
            for blob in blobs:
                handle.write(blob)
        os.replace(temp, path)
    except OSError as err:
        if os.path.exists(temp):
            os.unlink(temp)
        raise RefError(f'{path}: cannot write: {err.strerror}') from None


def _read_json(path):
    try:
        with open(path, 'r', encoding='utf-8') as handle:
            return json.load(handle)
    except OSError as err:
        raise RefError(f'{path}: cannot read: {err.strerror}') from None
    except json.JSONDecodeError as err:
        raise RefError(f'{path}: not valid JSON: {err}') from None


def load_checkpoint(directory):
    """All tensors of DIR/model.safetensors, or of the shards listed in DIR/model.safetensors.index.json."""
    single = os.path.join(directory, 'model.safetensors')
    index = os.path.join(directory, 'model.safetensors.index.json')
    if os.path.exists(single):
        return read(single)[0]
    if not os.path.exists(index):
        raise RefError(f'{directory}: has neither model.safetensors nor model.safetensors.index.json')
    weight_map = _read_json(index).get('weight_map')
    if not isinstance(weight_map, dict) or not weight_map:
        raise RefError(f'{index}: "weight_map" must be a non-empty object of tensor name -> shard file')
    tensors = {}
    for shard in sorted(set(weight_map.values())):
        if not isinstance(shard, str) or os.path.basename(shard) != shard:
            raise RefError(f'{index}: shard name {shard!r} must be a plain file name in {directory}')
        names = [n for n, s in weight_map.items() if s == shard]
        loaded, _ = read(os.path.join(directory, shard), names)
        missing = [n for n in names if n not in loaded]
        if missing:
            raise RefError(f'{index}: shard {shard} lacks tensors the index assigns to it, e.g. "{missing[0]}"')
        tensors.update(loaded)
    return tensors


def read_json(path):
    return _read_json(path)
