/** Tensor handles: thin typed wrappers over the native class. */
import { native, type AnyTypedArray, type DType, type Tensor } from './native';

export type { Tensor, DType, AnyTypedArray } from './native';

/** Copies a typed array into a new native tensor. dtype is needed only for Uint16Array (bf16/fp16) or bool. */
export function tensor(data: AnyTypedArray, shape: number[], dtype?: DType): Tensor {
  return native().Tensor.fromArray(data, shape, dtype);
}

/** a @ b computed off the JS thread. */
export function matmul(a: Tensor, b: Tensor): Promise<Tensor> {
  return native().matmulAsync(a, b);
}

/** Standard-normal samples from a seeded generator (CPU). */
export function randn(shape: number[], options: { seed?: number; dtype?: DType } = {}): Tensor {
  return native().randn(shape, options);
}

/** Round-to-nearest-even float32 → bfloat16 bits, as torch does it. */
export function toBfloat16Bits(values: Float32Array): Uint16Array {
  const u32 = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < u32.length; i++) {
    const x = u32[i];
    if ((x & 0x7fffffff) > 0x7f800000) {
      out[i] = (x >>> 16) | 0x40; // keep NaN a quiet NaN
    } else {
      out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
  }
  return out;
}

/** bfloat16 bits → float32 (exact). */
export function fromBfloat16Bits(bits: Uint16Array): Float32Array {
  const u32 = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) u32[i] = bits[i] << 16;
  return new Float32Array(u32.buffer);
}
