import t from 'tap';
import os from 'os';
import { HscrError } from '../lib/errors';
import { native, resolveThreads, type DType } from '../lib/native';
import { tensor, randn, fromBfloat16Bits, toBfloat16Bits } from '../lib/tensor';

const addon = native();

t.test('every dtype round-trips through a native tensor', async (t) => {
  const cases: [DType, ArrayLike<number | bigint> & { length: number }][] = [
    ['float32', new Float32Array([1.5, -2.25, 3e-8, Infinity, -0, 65504])],
    ['float64', new Float64Array([Math.PI, -1e300, 5e-324, 0, 1, 2])],
    ['int64', new BigInt64Array([0n, -1n, 9007199254740993n, -(2n ** 63n), 2n ** 63n - 1n, 42n])],
    ['int32', new Int32Array([0, -1, 2147483647, -2147483648, 7, 8])],
    ['uint8', new Uint8Array([0, 1, 127, 128, 254, 255])],
    ['int16', new Int16Array([0, -1, 32767, -32768, 7, 8])],
    ['int8', new Int8Array([0, -1, 127, -128, 7, 8])],
    ['bool', new Uint8Array([1, 0, 0, 1, 1, 0])],
    ['bfloat16', toBfloat16Bits(new Float32Array([1, -2, 0.5, 3.140625, 1e38, -0]))],
    ['float16', new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000])],
  ];
  for (const [dtype, data] of cases) {
    const x = tensor(data as never, [2, 3], dtype);
    t.same(x.shape, [2, 3], `${dtype} shape`);
    t.equal(x.dtype, dtype, `${dtype} dtype`);
    t.equal(x.device, 'cpu');
    t.equal(x.numel, 6);
    t.same(Array.from(x.toArray() as ArrayLike<number>), Array.from(data as ArrayLike<number>), `${dtype} values`);
    x.dispose();
  }
});

t.test('casts go through libtorch (bf16 rounding, fp16 bits, bool)', async (t) => {
  const x = tensor(new Float32Array([1.00390625, 1 / 3, -2.5, 1e-3]), [4]);
  const bf = x.to('bfloat16');
  t.equal(bf.dtype, 'bfloat16');
  // libtorch rounds to nearest even exactly like toBfloat16Bits
  t.same(Array.from(bf.toArray()), Array.from(toBfloat16Bits(new Float32Array([1.00390625, 1 / 3, -2.5, 1e-3]))));
  t.same(Array.from(fromBfloat16Bits(bf.toArray() as Uint16Array)), [1, 0.333984375, -2.5, 0.00099945068359375]);
  const half = tensor(new Float32Array([1, -2, 0.5]), [3]).to('float16');
  t.same(Array.from(half.toArray()), [0x3c00, 0xc000, 0x3800]);
  const asBool = tensor(new Float32Array([0, 2, -1]), [3]).to('bool');
  t.same(Array.from(asBool.toArray()), [0, 1, 1]);
  const asyncCast = await x.toAsync('float64');
  t.same(Array.from(asyncCast.toArray()), Array.from(new Float32Array([1.00390625, 1 / 3, -2.5, 1e-3])));
});

t.test('shape and dtype mismatches give HscrError codes', async (t) => {
  const code = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      t.ok(e instanceof HscrError, 'is an HscrError');
      return (e as HscrError).code;
    }
    return 'no error';
  };
  t.equal(code(() => tensor(new Float32Array(5), [2, 3])), 'E_SHAPE');
  t.equal(code(() => tensor(new Float32Array(6), [2, -3])), 'E_SHAPE');
  t.equal(code(() => tensor(new Float32Array(6), [6], 'int64')), 'E_DTYPE');
  t.equal(code(() => tensor(new Uint16Array(6), [6])), 'E_DTYPE');
  t.equal(code(() => tensor(new Uint16Array(6), [6], 'float32')), 'E_DTYPE');
  t.equal(code(() => tensor(new Float32Array(1), [1], 'complex' as DType)), 'E_DTYPE');
  t.equal(code(() => tensor(new Uint8Array([0, 3]), [2], 'bool')), 'E_ARG');
  t.equal(code(() => tensor(new Float32Array(1), [1]).to('cuda:7')), 'E_DEVICE');
  t.equal(code(() => tensor(new Float32Array(1), [1]).to('tpu')), 'E_DTYPE');
  const err = (() => {
    try {
      tensor(new Float32Array(5), [2, 3]);
    } catch (e) {
      return e as HscrError;
    }
  })();
  t.match(err?.message, /holds 6 elements but the array has 5/);
  t.equal(err?.value, '[2, 3]');

  const a = tensor(new Float32Array(6), [2, 3]);
  const b = tensor(new Float32Array(6), [2, 3]);
  await t.rejects(addon.matmulAsync(a, b), { code: 'E_SHAPE' });
  await t.rejects(addon.matmulAsync(a, tensor(new Float64Array(6), [3, 2])), { code: 'E_DTYPE' });
});

t.test('wrong JS types never crash: every entry point throws E_ARG', async (t) => {
  const weird: unknown[] = [undefined, null, 0, -1, 1.5, NaN, 'x', {}, [], [1, 'a'], () => 1, Symbol('s'), 10n, new Float32Array(2)];
  const entries: [string, (v: unknown) => unknown][] = [
    ['fromArray data', (v) => addon.Tensor.fromArray(v as never, [2])],
    ['fromArray shape', (v) => addon.Tensor.fromArray(new Float32Array(2), v as never)],
    ['setNumThreads', (v) => addon.setNumThreads(v as never)],
    ['randn shape', (v) => addon.randn(v as never)],
    ['gemmBenchmark n', (v) => addon.gemmBenchmark(v as never, 0.01)],
    ['matmulAsync', (v) => addon.matmulAsync(v as never, v as never)],
    ['setErrorClass', (v) => addon.setErrorClass(v as never)],
  ];
  let threw = 0;
  for (const [name, fn] of entries) {
    for (const v of weird) {
      try {
        const r = fn(v);
        if (r instanceof Promise) await r.then((x) => (x as { dispose?: () => void })?.dispose?.());
        else (r as { dispose?: () => void } | undefined)?.dispose?.();
        addon.setErrorClass(HscrError);
      } catch (e) {
        threw++;
        t.ok(e instanceof HscrError && ['E_ARG', 'E_SHAPE', 'E_DTYPE'].includes(e.code), `${name}(${String(typeof v)}) → ${(e as HscrError).code}`);
      }
    }
  }
  t.ok(threw > 70, `most weird arguments were rejected (${threw})`);
  addon.setErrorClass(HscrError); // restore after the loop tried to replace it
  addon.setNumThreads(resolveThreads());
  t.throws(() => new (addon.Tensor as unknown as new () => unknown)(), { code: 'E_ARG' });
  await t.rejects(addon.matmulAsync({ shape: [2, 2] } as never, randn([2, 2])), { code: 'E_ARG' }, 'a look-alike object is no Tensor');
});

t.test('dispose is idempotent and use-after-dispose is an error', async (t) => {
  const x = randn([3, 3], { seed: 1 });
  t.equal(x.disposed, false);
  x.dispose();
  x.dispose();
  t.equal(x.disposed, true);
  t.throws(() => x.shape, { code: 'E_DISPOSED' });
  t.throws(() => x.toArray(), { code: 'E_DISPOSED' });
  await t.rejects(async () => addon.matmulAsync(x, x), { code: 'E_DISPOSED' });
});

t.test('an async op leaves the event loop free', async (t) => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const before = ticks;
  const r = await addon.gemmBenchmark(256, 0.4);
  clearInterval(timer);
  t.ok(r.iterations > 1, 'the GEMM loop ran');
  // 0.4 s of native work at a 5 ms interval: a blocked loop would see 0 or 1 ticks.
  t.ok(ticks - before >= 20, `timer ticked ${ticks - before} times while the GEMM ran`);
});

t.test('async results are correct: matmul against a hand product', async (t) => {
  const a = tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
  const b = tensor(new Float32Array([7, 8, 9, 10, 11, 12]), [3, 2]);
  const c = await addon.matmulAsync(a, b);
  t.same(c.shape, [2, 2]);
  t.same(Array.from(c.toArray()), [58, 64, 139, 154]);
});

t.test('threads: libtorch runs on every core unless told otherwise', async (t) => {
  t.equal(addon.runtimeInfo().threads, os.availableParallelism());
  t.equal(resolveThreads(undefined, { HSCR_NUM_THREADS: '3' }), 3);
  t.equal(resolveThreads(5, { HSCR_NUM_THREADS: '3' }), 5);
  t.equal(resolveThreads(undefined, {}), os.availableParallelism());
  t.throws(() => resolveThreads(undefined, { HSCR_NUM_THREADS: 'many' }), { code: 'E_ARG' });
  addon.setNumThreads(1);
  t.equal(addon.runtimeInfo().threads, 1);
  const r = await addon.gemmBenchmark(64, 0.05);
  t.equal(r.threads, 1, 'worker threads pick up the setting');
  addon.setNumThreads(os.availableParallelism());
});
