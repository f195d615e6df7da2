import t from 'tap';
import fs from 'fs';
import os from 'os';
import path from 'path';
import v8 from 'v8';
import vm from 'vm';
import { execFileSync } from 'child_process';
import { HscrError } from '../lib/errors';
import { tensor, toBfloat16Bits } from '../lib/tensor';
import type { AnyTypedArray, DType, Tensor } from '../lib/native';
import { checkpointShards, readSafetensors, safetensorsKeys, writeSafetensors } from '../lib/model/safetensors';

const FIXTURES = path.resolve(__dirname, 'fixtures/safetensors');
const REFERENCE_DIR = path.resolve(__dirname, 'reference');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-safetensors-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

// ---- an independent reader and writer of the format: Buffer + JSON only ----------------------------------

interface Raw {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

const bytesOf = (a: AnyTypedArray | Int16Array | Int8Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const valuesOf = (x: Tensor): (number | bigint)[] => Array.from(x.toArray() as ArrayLike<number | bigint>);

/** File bytes for a header (object or raw JSON text) and a data section; pads with spaces unless told not to. */
function fileBytes(header: unknown, data: Uint8Array = new Uint8Array(0), pad = true): Buffer {
  let json = typeof header === 'string' ? Buffer.from(header, 'latin1') : Buffer.from(JSON.stringify(header), 'utf8');
  if (pad) json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, data]);
}

/** Header and data section for tensors laid out back to back in the given order. */
function layout(tensors: Raw[], metadata?: Record<string, string>): { header: Record<string, unknown>; data: Buffer } {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const x of tensors) {
    header[x.name] = { dtype: x.dtype, shape: x.shape, data_offsets: [offset, offset + x.bytes.length] };
    offset += x.bytes.length;
  }
  return { header, data: Buffer.concat(tensors.map((x) => Buffer.from(x.bytes))) };
}

interface Parsed {
  headerLength: number;
  headerText: string;
  header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  metadata?: Record<string, string>;
  order: string[];
  data: Buffer;
}

function parseFile(file: string): Parsed {
  const buf = fs.readFileSync(file);
  const headerLength = Number(buf.readBigUInt64LE(0));
  const headerText = buf.subarray(8, 8 + headerLength).toString('utf8');
  const { __metadata__: metadata, ...header } = JSON.parse(headerText) as Parsed['header'] & { __metadata__?: Record<string, string> };
  return { headerLength, headerText, header, metadata, order: Object.keys(header), data: buf.subarray(8 + headerLength) };
}

function tensorBytes(p: Parsed, name: string): Uint8Array {
  const [begin, end] = p.header[name].data_offsets;
  return p.data.subarray(begin, end);
}

async function failure(p: Promise<unknown>): Promise<HscrError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof HscrError) return e;
    throw e;
  }
  throw new Error('expected the call to reject');
}

function tempFile(name: string, bytes?: Uint8Array): string {
  const file = path.join(tmp, name);
  if (bytes) fs.writeFileSync(file, bytes);
  return file;
}

// ---- round trips ------------------------------------------------------------------------------------------

const f32Bits = new Uint32Array([0x7fc00001, 0xff800000, 0x80000000, 0x00000001, 0x3f800000, 0xc0490fdb]);
const f64Bits = new BigUint64Array([0x7ff8000000000001n, 0xfff0000000000000n, 0x8000000000000000n, 1n, 0x400921fb54442d18n, 0xc6c0000000000000n]);
const jsCases: { name: string; dtype: DType; shape: number[]; data: AnyTypedArray }[] = [
  { name: 'f32', dtype: 'float32', shape: [2, 3], data: new Float32Array(f32Bits.buffer) },
  // a 3-byte tensor next: every tensor after it sits off its natural alignment in the file
  { name: 'u8', dtype: 'uint8', shape: [3], data: new Uint8Array([0, 128, 255]) },
  { name: 'f64', dtype: 'float64', shape: [3, 2, 1], data: new Float64Array(f64Bits.buffer) },
  { name: 'bf16', dtype: 'bfloat16', shape: [6], data: new Uint16Array([0x7fc1, 0xff80, 0x8000, 0x0001, 0x3f80, 0x4049]) },
  { name: 'f16', dtype: 'float16', shape: [1, 6], data: new Uint16Array([0x7e01, 0xfc00, 0x8000, 0x0001, 0x3c00, 0x7bff]) },
  { name: 'i64', dtype: 'int64', shape: [2, 3], data: new BigInt64Array([0n, -1n, 9007199254740993n, -(2n ** 63n), 2n ** 63n - 1n, 42n]) },
  { name: 'i32', dtype: 'int32', shape: [3, 2], data: new Int32Array([0, -1, 2147483647, -2147483648, 7, 8]) },
  { name: 'flags', dtype: 'bool', shape: [2, 3], data: new Uint8Array([1, 0, 0, 1, 1, 0]) },
  { name: 'scalar', dtype: 'float32', shape: [], data: new Float32Array([-2.5]) },
  { name: 'empty', dtype: 'float32', shape: [0, 4], data: new Float32Array(0) },
];

t.test('every JS dtype round-trips bit for bit, in the given order, with a padded header', async (t) => {
  const file = tempFile('all-dtypes.safetensors');
  const input: Record<string, Tensor> = {};
  for (const c of jsCases) input[c.name] = tensor(c.data, c.shape, c.dtype);
  await writeSafetensors(file, input, { format: 'pt', note: 'ünïcode ✓' });

  const back = await readSafetensors(file);
  t.same(Object.keys(back.tensors), jsCases.map((c) => c.name), 'header order');
  t.same(back.metadata, { format: 'pt', note: 'ünïcode ✓' });
  for (const c of jsCases) {
    const x = back.tensors[c.name];
    t.equal(x.dtype, c.dtype, `${c.name} dtype`);
    t.same(x.shape, c.shape, `${c.name} shape`);
    t.equal(hex(bytesOf(x.toArray())), hex(bytesOf(c.data)), `${c.name} bits`);
  }

  // the same file through a parser that shares nothing with the C++ code
  const p = parseFile(file);
  t.equal(p.headerLength % 8, 0, 'header length is a multiple of 8');
  t.match(p.headerText, /^\{.*\} {0,7}$/s, 'padded with at most 7 spaces');
  t.same(p.order, jsCases.map((c) => c.name));
  t.same(p.metadata, { format: 'pt', note: 'ünïcode ✓' });
  let offset = 0;
  for (const c of jsCases) {
    t.same(p.header[c.name].shape, c.shape);
    t.same(p.header[c.name].data_offsets, [offset, offset + c.data.byteLength], `${c.name} offsets follow the given order`);
    t.equal(hex(tensorBytes(p, c.name)), hex(bytesOf(c.data)), `${c.name} bytes on disk`);
    offset += c.data.byteLength;
  }
  t.equal(p.data.length, offset, 'nothing after the last tensor');

  const keys = await safetensorsKeys(file);
  t.same(
    keys,
    jsCases.map((c) => ({ name: c.name, dtype: c.dtype, shape: c.shape })),
  );
});

t.test('int16 and int8 (no JS typed array) survive read + write byte for byte', async (t) => {
  const i16 = new Int16Array([-32768, -1, 0, 1, 32767, 258]);
  const i8 = new Int8Array([-128, -1, 0, 1, 127]);
  const { header, data } = layout([
    { name: 'i8', dtype: 'I8', shape: [5], bytes: bytesOf(i8) },
    { name: 'i16', dtype: 'I16', shape: [2, 3], bytes: bytesOf(i16) },
  ]);
  const source = tempFile('small-ints.safetensors', fileBytes(header, data));
  t.same(await safetensorsKeys(source), [
    { name: 'i8', dtype: 'int8', shape: [5] },
    { name: 'i16', dtype: 'int16', shape: [2, 3] },
  ]);
  const loaded = await readSafetensors(source);
  t.same(loaded.tensors.i16.shape, [2, 3]);
  const copy = tempFile('small-ints-copy.safetensors');
  await writeSafetensors(copy, loaded.tensors);
  const p = parseFile(copy);
  t.equal(p.header.i16.dtype, 'I16');
  t.equal(p.header.i8.dtype, 'I8');
  t.equal(hex(tensorBytes(p, 'i16')), hex(bytesOf(i16)));
  t.equal(hex(tensorBytes(p, 'i8')), hex(bytesOf(i8)));
});

t.test('matches the reference Rust serializer byte for byte', async (t) => {
  const aligned = path.join(FIXTURES, 'rust-serialize-aligned.safetensors');
  const loaded = await readSafetensors(aligned);
  t.same(Object.keys(loaded.tensors), ['attn0']);
  t.same(loaded.tensors.attn0.shape, [1, 1, 2, 3]);
  t.same(valuesOf(loaded.tensors.attn0), [0, 1, 2, 3, 4, 5]);
  const out = tempFile('rust-aligned.safetensors');
  await writeSafetensors(out, { attn0: tensor(new Float32Array([0, 1, 2, 3, 4, 5]), [1, 1, 2, 3]) });
  t.equal(fs.readFileSync(out).toString('hex'), fs.readFileSync(aligned).toString('hex'));

  const metadataOnly = path.join(FIXTURES, 'rust-serialize-metadata.safetensors');
  const meta = await readSafetensors(metadataOnly);
  t.same(Object.keys(meta.tensors), []);
  t.same(meta.metadata, { framework: 'pt' });
  const out2 = tempFile('rust-metadata.safetensors');
  await writeSafetensors(out2, {}, { framework: 'pt' });
  t.equal(fs.readFileSync(out2).toString('hex'), fs.readFileSync(metadataOnly).toString('hex'));
});

t.test('the Python reference reader (test/reference/st.py) reads hscr files, and hscr reads its files', async (t) => {
  const ours = tempFile('for-python.safetensors');
  await writeSafetensors(
    ours,
    Object.fromEntries(jsCases.map((c) => [c.name, tensor(c.data, c.shape, c.dtype)])),
    { step: '12' },
  );
  const theirs = tempFile('from-python.safetensors');
  const script = `
import json, sys
sys.path.insert(0, ${JSON.stringify(REFERENCE_DIR)})
import st, torch
entries, _, _ = st.read_header(sys.argv[1])
tensors, meta = st.read(sys.argv[1])
out = {'order': list(entries), 'meta': meta,
       'tensors': {n: [st.NAMES[x.dtype], list(x.shape), st._tensor_bytes(x).hex()] for n, x in tensors.items()}}
st.write(sys.argv[2], {
    'i16': torch.tensor([[-32768, -1, 0], [1, 32767, 258]], dtype=torch.int16),
    'i8': torch.tensor([-128, -1, 0, 1, 127], dtype=torch.int8),
    'bf16': torch.tensor([1.0, -2.5, 3.140625], dtype=torch.bfloat16),
    'f64': torch.tensor([3.141592653589793, -1e300], dtype=torch.float64),
    'flags': torch.tensor([True, False, True]),
}, {'writer': 'st.py'})
print(json.dumps(out))
`;
  const report = JSON.parse(execFileSync('/usr/bin/python3', ['-c', script, ours, theirs], { encoding: 'utf8' })) as {
    order: string[];
    meta: Record<string, string>;
    tensors: Record<string, [string, number[], string]>;
  };
  const tags: Record<DType, string> = { float32: 'F32', float64: 'F64', bfloat16: 'BF16', float16: 'F16', int64: 'I64', int32: 'I32', uint8: 'U8', bool: 'BOOL' };
  t.same(report.order, jsCases.map((c) => c.name));
  t.same(report.meta, { step: '12' });
  for (const c of jsCases) t.same(report.tensors[c.name], [tags[c.dtype], c.shape, hex(bytesOf(c.data))], `python sees ${c.name}`);

  const back = await readSafetensors(theirs);
  t.same(back.metadata, { writer: 'st.py' });
  t.same(Object.keys(back.tensors), ['i16', 'i8', 'bf16', 'f64', 'flags']);
  t.same(valuesOf(back.tensors.bf16), Array.from(toBfloat16Bits(new Float32Array([1, -2.5, 3.140625]))));
  t.same(valuesOf(back.tensors.f64), [3.141592653589793, -1e300]);
  t.same(valuesOf(back.tensors.flags), [1, 0, 1]);
  const copy = tempFile('from-python-copy.safetensors');
  await writeSafetensors(copy, { i16: back.tensors.i16, i8: back.tensors.i8 });
  const p = parseFile(copy);
  t.equal(hex(tensorBytes(p, 'i16')), hex(bytesOf(new Int16Array([-32768, -1, 0, 1, 32767, 258]))));
  t.equal(hex(tensorBytes(p, 'i8')), hex(bytesOf(new Int8Array([-128, -1, 0, 1, 127]))));
});

t.test('files from an independent writer: any header order, unpadded header, misaligned data, odd names', async (t) => {
  const w = new Float32Array([1.5, -2, 1e-8]);
  const scalar = new BigInt64Array([-7n]);
  // written out by hand: in an object literal, __proto__ would set the prototype instead of adding a key
  const text =
    '{"w":{"dtype":"F32","shape":[3],"data_offsets":[3,15]},"empty":{"dtype":"F32","shape":[0],"data_offsets":[15,15]},' +
    '"__metadata__":{"format":"pt"},"bytes":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},' +
    '"__proto__":{"dtype":"I64","shape":[],"data_offsets":[15,23]}}';
  const data = Buffer.concat([Buffer.from([9, 8, 7]), Buffer.from(bytesOf(w)), Buffer.from(bytesOf(scalar))]);
  const unpadded = Buffer.from(text, 'utf8');
  t.not(unpadded.length % 8, 0, 'the header really is unpadded');
  const file = tempFile('independent.safetensors', fileBytes(text, data, false));

  const loaded = await readSafetensors(file);
  t.same(Object.keys(loaded.tensors), ['w', 'empty', 'bytes', '__proto__'], 'header order, not offset order');
  t.equal(Object.getPrototypeOf(loaded.tensors), Object.prototype, 'a tensor named __proto__ is an own property');
  t.same(valuesOf(loaded.tensors.w), Array.from(w), 'misaligned float32 read correctly');
  t.same(loaded.tensors.empty.shape, [0]);
  t.same(valuesOf(loaded.tensors.bytes), [9, 8, 7]);
  const protoTensor = Object.getOwnPropertyDescriptor(loaded.tensors, '__proto__')?.value as Tensor;
  t.same(protoTensor.shape, []);
  t.same(valuesOf(protoTensor), [-7n]);
  t.same(loaded.metadata, { format: 'pt' });
  t.same(
    (await safetensorsKeys(file)).map((e) => e.name),
    ['w', 'empty', 'bytes', '__proto__'],
  );
});

// ---- malformed files ----------------------------------------------------------------------------------------

const f32 = (shape: number[], offsets: unknown) => ({ dtype: 'F32', shape, data_offsets: offsets });
const malformed: [string, Buffer, RegExp, string?][] = [
  ['a file shorter than 8 bytes', Buffer.from([1, 0, 0]), /3 bytes is too short/, '3'],
  ['a header length beyond the file', Buffer.concat([Buffer.from([0xe8, 3, 0, 0, 0, 0, 0, 0]), Buffer.from('{}      ')]), /header length 1000 does not fit a file of 16 bytes/, '1000'],
  ['a header length over 100 MB', Buffer.concat([Buffer.from([0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0]), Buffer.from('{}')]), /header length 100000001 exceeds the 100 MB limit/],
  ['a header that is not JSON', fileBytes('{"a":'), /header is not valid UTF-8 JSON/],
  ['a header that is not UTF-8', fileBytes('{"\xff":{}}'), /header is not valid UTF-8 JSON/],
  ['a header that is no object', fileBytes([1, 2]), /header must be a JSON object/, '[1,2]'],
  ['a header nested 100,000 arrays deep', fileBytes('['.repeat(100_000) + ']'.repeat(100_000)), /header must be a JSON object/, '[[[[...]]]]'],
  ['an entry that is no object', fileBytes({ a: 5 }), /tensor "a": entry must be an object/, '5'],
  ['an entry without dtype', fileBytes({ a: { shape: [1], data_offsets: [0, 4] } }, Buffer.alloc(4)), /tensor "a": entry has no "dtype"/],
  ['an entry without shape', fileBytes({ a: { dtype: 'F32', data_offsets: [0, 4] } }, Buffer.alloc(4)), /tensor "a": entry has no "shape"/],
  ['an entry without data_offsets', fileBytes({ a: { dtype: 'F32', shape: [1] } }, Buffer.alloc(4)), /tensor "a": entry has no "data_offsets"/],
  ['an unknown dtype', fileBytes({ a: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } }, Buffer.alloc(4)), /tensor "a": unknown dtype/, '"F8_E4M3"'],
  ['data_offsets of one number', fileBytes({ a: f32([1], [0]) }, Buffer.alloc(4)), /tensor "a": data_offsets must be \[begin, end\]/, '[0]'],
  ['data_offsets with end < begin', fileBytes({ a: f32([1], [4, 0]) }, Buffer.alloc(4)), /data_offsets must be \[begin, end\] with 0 <= begin <= end/, '[4,0]'],
  ['data_offsets that are strings', fileBytes({ a: f32([1], ['0', 4]) }, Buffer.alloc(4)), /data_offsets must be/],
  ['a negative dimension', fileBytes({ a: f32([-1], [0, 4]) }, Buffer.alloc(4)), /tensor "a": shape must be an array of non-negative integers/, '[-1]'],
  ['a fractional dimension', fileBytes({ a: f32([1.5], [0, 4]) }, Buffer.alloc(4)), /shape must be an array of non-negative integers/],
  ['a shape whose size overflows', fileBytes({ a: f32([2 ** 40, 2 ** 40], [0, 4]) }, Buffer.alloc(4)), /tensor "a": shape overflows 64 bits/],
  ['an end beyond the data section', fileBytes({ a: f32([2], [0, 8]) }, Buffer.alloc(4)), /tensor "a": data_offsets end 8 lies beyond the data section of 4 bytes/],
  ['a byte length that does not match the shape', fileBytes({ a: f32([3], [0, 8]) }, Buffer.alloc(8)), /tensor "a": F32\[3\] needs 12 bytes but data_offsets span 8/],
  ['overlapping tensors', fileBytes({ a: f32([2], [0, 8]), b: f32([2], [4, 12]) }, Buffer.alloc(12)), /tensor "b" starts at byte 4, overlapping data that ends at byte 8/, '[4,12]'],
  ['a hole between tensors', fileBytes({ a: f32([1], [0, 4]), b: f32([1], [8, 12]) }, Buffer.alloc(12)), /tensor "b" starts at byte 8 of the data section, leaving a gap after byte 4/],
  ['a hole before the first tensor', fileBytes({ a: f32([1], [4, 8]) }, Buffer.alloc(8)), /tensor "a" starts at byte 4 of the data section, leaving a gap after byte 0/],
  ['bytes after the last tensor', fileBytes({ a: f32([1], [0, 4]) }, Buffer.alloc(8)), /tensors cover 4 bytes but the data section has 8/, '8'],
  ['a duplicate key', fileBytes('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', Buffer.alloc(4)), /header has a duplicate key "a"/, '"a"'],
  ['a __metadata__ value that is no string', fileBytes({ __metadata__: { step: 3 } }), /__metadata__ "step" must be a string/, '3'],
  ['a __metadata__ that is no object', fileBytes({ __metadata__: 'pt' }), /__metadata__ must be an object of strings/],
];

t.test('each malformed header is an E_CHECKPOINT naming the file and the offending value', async (t) => {
  for (const [i, [what, bytes, message, value]] of malformed.entries()) {
    const file = tempFile(`malformed-${i}.safetensors`, bytes);
    for (const [fn, reader] of [
      ['read', readSafetensors],
      ['keys', safetensorsKeys],
    ] as const) {
      const err = await failure(reader(file));
      t.equal(err.code, 'E_CHECKPOINT', `${what} (${fn}): code`);
      t.ok(err.message.startsWith(`${file}: `), `${what} (${fn}): names the file`);
      t.match(err.message, message, `${what} (${fn}): says what is wrong`);
      if (value !== undefined) t.equal(err.value, value, `${what} (${fn}): offending value`);
    }
  }
});

t.test('file system failures are E_IO with the path and the reason', async (t) => {
  const missing = path.join(tmp, 'no-such.safetensors');
  const err = await failure(readSafetensors(missing));
  t.equal(err.code, 'E_IO');
  t.equal(err.message, `${missing}: cannot open: No such file or directory (got "${missing}")`);
  t.match((await failure(safetensorsKeys(tmp))).message, /cannot read: Is a directory/);
  t.equal((await failure(readSafetensors(''))).code, 'E_ARG');
  t.equal((await failure(readSafetensors(42 as unknown as string))).code, 'E_ARG');
});

// ---- checkpoints in shards ------------------------------------------------------------------------------------

t.test('a sharded checkpoint resolves to its shards in first-seen order', async (t) => {
  const dir = fs.mkdtempSync(path.join(tmp, 'sharded-'));
  const shard1 = 'model-00001-of-00002.safetensors';
  const shard2 = 'model-00002-of-00002.safetensors';
  await writeSafetensors(path.join(dir, shard1), { b: tensor(new Float32Array([2]), [1]) });
  await writeSafetensors(path.join(dir, shard2), { a: tensor(new Float32Array([1]), [1]), c: tensor(new Float32Array([3]), [1]) });
  const index = path.join(dir, 'model.safetensors.index.json');
  fs.writeFileSync(index, JSON.stringify({ metadata: { total_size: 12 }, weight_map: { a: shard2, b: shard1, c: shard2 } }));
  t.same(await checkpointShards(dir), [path.join(dir, shard2), path.join(dir, shard1)]);

  fs.writeFileSync(index, JSON.stringify({ weight_map: { a: shard2, z: 'model-00003-of-00003.safetensors' } }));
  const missing = await failure(checkpointShards(dir));
  t.equal(missing.code, 'E_CHECKPOINT');
  t.match(missing.message, /lists shard "model-00003-of-00003\.safetensors", which is missing/);
  t.ok(missing.message.startsWith(index), 'names the index');

  fs.writeFileSync(index, JSON.stringify({ weight_map: { a: '../elsewhere.safetensors' } }));
  t.match((await failure(checkpointShards(dir))).message, /must be a plain file name/);
  fs.writeFileSync(index, JSON.stringify({ weight_map: {} }));
  t.match((await failure(checkpointShards(dir))).message, /"weight_map" must be a non-empty object/);
  fs.writeFileSync(index, '{"weight_map": ');
  t.equal((await failure(checkpointShards(dir))).code, 'E_CHECKPOINT');

  // a single-file checkpoint wins over an index
  await writeSafetensors(path.join(dir, 'model.safetensors'), { a: tensor(new Float32Array([1]), [1]) });
  t.same(await checkpointShards(dir), [path.join(dir, 'model.safetensors')]);

  const emptyDir = fs.mkdtempSync(path.join(tmp, 'no-checkpoint-'));
  const none = await failure(checkpointShards(emptyDir));
  t.equal(none.code, 'E_CHECKPOINT');
  t.equal(none.message, `${emptyDir}: has neither model.safetensors nor model.safetensors.index.json (got "${emptyDir}")`);
});

// ---- lifetime of the mapping ------------------------------------------------------------------------------------

const mapsOf = (file: string) => fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(file));

async function settleGarbage(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    collectGarbage();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Reads the file and keeps only one tensor: the File object and the others become garbage. */
async function keepOne(file: string, name: string): Promise<Tensor> {
  const loaded = await readSafetensors(file);
  return loaded.tensors[name];
}

t.test('tensors stay valid after the File object is collected; the mapping goes with the last tensor', async (t) => {
  const file = tempFile('lifetime.safetensors');
  const values = Float32Array.from({ length: 4096 }, (_, i) => i * 0.5 - 7);
  await writeSafetensors(file, { big: tensor(values, [64, 64]), other: tensor(new Float32Array([1, 2]), [2]) });

  const kept = await keepOne(file, 'big');
  await settleGarbage();
  t.equal(mapsOf(file).length, 1, 'the file is still mapped while a tensor uses it');
  t.same(valuesOf(kept), Array.from(values), 'values intact after GC');

  // replacing the file (atomic rename) leaves the mapped old contents alone
  await writeSafetensors(file, { big: tensor(new Float32Array(4096).fill(3), [64, 64]) });
  t.same(valuesOf(kept), Array.from(values), 'old tensor unaffected by a rewrite');
  t.equal((await readSafetensors(file)).tensors.big.toArray()[0], 3, 'a new read sees the new file');
  fs.unlinkSync(file);
  await settleGarbage();
  t.same(valuesOf(kept).slice(0, 3), [-7, -6.5, -6], 'still valid after the file is deleted');

  kept.dispose();
  await settleGarbage();
  t.same(mapsOf(file), [], 'unmapped once the last tensor is gone');
});

// ---- the writer never damages what is there --------------------------------------------------------------------

t.test('bad input to the writer leaves an existing file untouched and no temp files behind', async (t) => {
  const dir = fs.mkdtempSync(path.join(tmp, 'writes-'));
  const file = path.join(dir, 'model.safetensors');
  await writeSafetensors(file, { a: tensor(new Float32Array([1, 2]), [2]) }, { step: '1' });
  const before = fs.readFileSync(file).toString('hex');
  const good = tensor(new Float32Array([5]), [1]);
  const disposed = tensor(new Float32Array([5]), [1]);
  disposed.dispose();

  const cases: [string, () => Promise<void>, string, RegExp][] = [
    ['a non-tensor value', () => writeSafetensors(file, { a: good, b: [1, 2] as unknown as Tensor }), 'E_ARG', /tensors\["b"\] must be a Tensor/],
    ['a non-string metadata value', () => writeSafetensors(file, { a: good }, { step: 2 as unknown as string }), 'E_ARG', /metadata\["step"\] must be a string/],
    ['a tensor named __metadata__', () => writeSafetensors(file, { __metadata__: good }), 'E_ARG', /no tensor may be named __metadata__/],
    ['a disposed tensor', () => writeSafetensors(file, { a: disposed }), 'E_DISPOSED', /was disposed/],
    ['tensors as an array', () => writeSafetensors(file, [good] as unknown as Record<string, Tensor>), 'E_ARG', /tensors must be an object/],
  ];
  for (const [what, call, code, message] of cases) {
    const err = await failure(call());
    t.equal(err.code, code, `${what}: code`);
    t.match(err.message, message, `${what}: message`);
    t.equal(fs.readFileSync(file).toString('hex'), before, `${what}: file untouched`);
  }

  const target = path.join(dir, 'no-such-dir', 'x.safetensors');
  const noDir = await failure(writeSafetensors(target, { a: good }));
  t.equal(noDir.code, 'E_IO');
  t.match(noDir.message, new RegExp(`^${target.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot create .*No such file or directory`));

  // the rename fails on a directory: the temp file must be removed again
  const asDir = path.join(dir, 'a-directory');
  fs.mkdirSync(asDir);
  const renameFails = await failure(writeSafetensors(asDir, { a: good }));
  t.equal(renameFails.code, 'E_IO');
  t.match(renameFails.message, /cannot rename/);
  t.same(fs.readdirSync(dir).sort(), ['a-directory', 'model.safetensors'], 'no temp files left');
});
