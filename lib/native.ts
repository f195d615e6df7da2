/**
 * Loads the native addon once (the binary scripts/addon-select.js picks with node-gyp-build: a local build, or
 * the prebuild in the variant folder that matches the libtorch found on this machine, its libraries preloaded
 * first), hands it the HscrError
 * class so native failures arrive typed, and applies the thread setting. Everything native goes through here.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { HscrError } from './errors';

export type DType = 'float32' | 'float64' | 'bfloat16' | 'float16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';
export type TypedArrayOf<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'float64'
    ? Float64Array
    : D extends 'bfloat16' | 'float16'
      ? Uint16Array
      : D extends 'int64'
        ? BigInt64Array
        : D extends 'int32'
          ? Int32Array
          : D extends 'int16'
            ? Int16Array
            : D extends 'int8'
              ? Int8Array
              : Uint8Array;
export type AnyTypedArray = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/** A handle on a native torch::Tensor. Data stays native until toArray() copies it out. */
export interface Tensor {
  readonly shape: number[];
  readonly dtype: DType;
  readonly device: string;
  readonly numel: number;
  readonly disposed: boolean;
  toArray(): AnyTypedArray;
  /** A copy on another device ("cpu", "cuda", "cuda:1") or in another dtype. */
  to(deviceOrDtype: string): Tensor;
  toAsync(deviceOrDtype: string): Promise<Tensor>;
  /** Frees the native memory now; safe to call twice. The GC frees it otherwise. */
  dispose(): void;
}

export interface TensorClass {
  fromArray(data: AnyTypedArray, shape: number[], dtype?: DType): Tensor;
}

export interface RuntimeInfo {
  torchVersion: string;
  threads: number;
  interopThreads: number;
  parallelInfo: string;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  cudnnAvailable: boolean;
  napiVersion: number;
  builtWithCuda: boolean;
}

export interface GemmResult {
  n: number;
  iterations: number;
  seconds: number;
  gflops: number;
  threads: number;
}

/** The caching CPU allocator's counters (native/cpu_allocator.cpp), bytes. */
export interface CpuCacheStats {
  /** false: torch's own allocator is in use (HSCR_CPU_ALLOCATOR=system). */
  installed: boolean;
  limitBytes: number;
  cachedBytes: number;
  liveBytes: number;
  peakLiveBytes: number;
  hits: number;
  misses: number;
}

/** The raw addon surface. Later stages extend it (model, kernels, training). */
export interface NativeAddon {
  Tensor: TensorClass;
  setErrorClass(cls: typeof HscrError): void;
  setNumThreads(n: number): void;
  runtimeInfo(): RuntimeInfo;
  gemmBenchmark(n: number, seconds?: number, device?: string, dtype?: DType): Promise<GemmResult>;
  matmulAsync(a: Tensor, b: Tensor): Promise<Tensor>;
  randn(shape: number[], options?: { seed?: number; dtype?: DType }): Tensor;
  cpuCacheStats(): CpuCacheStats;
  /** Gives every cached free CPU buffer back to the OS. */
  releaseCpuCache(): void;
  setCpuCacheLimit(bytes: number): void;
  [name: string]: unknown;
}

/** Which binary was loaded, from where, and why (what `hscr doctor` prints). */
export interface AddonLocation {
  path: string;
  fromPrebuild: boolean;
  /** 'prebuild', 'local build' or 'HSCR_ADDON_PATH'. */
  kind: string;
  /** The prebuilt variant folder, e.g. "torch-1.13-cpu" (prebuilds only). */
  variant?: string;
  /** Why this binary: the libtorch it matched and where that libtorch was found. */
  reason: string;
  /** The libtorch libraries preloaded (RTLD_LOCAL) before the addon, so it finds them wherever they are. */
  preloaded: string[];
  /** The torch-free binary that preloaded them (prebuilds only). */
  preloader?: string;
}

interface Selection {
  file: string;
  preloader?: string;
  preload: string[];
  variant?: string;
  kind: string;
  reason: string;
}

/** The package root: where package.json is, from lib/ (ts) or dist/lib/ (js). */
export const PACKAGE_ROOT = (() => {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) return path.resolve(__dirname, '..');
    dir = up;
  }
  return dir;
})();

let loaded: { addon: NativeAddon; location: AddonLocation } | undefined;

/** Thread count: explicit option > HSCR_NUM_THREADS > the machine's cores (libtorch would pick 1 here). */
export function resolveThreads(requested?: number, env: NodeJS.ProcessEnv = process.env): number {
  const fromEnv = env.HSCR_NUM_THREADS;
  const value = requested ?? (fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : os.availableParallelism());
  if (!Number.isInteger(value) || value < 1) {
    throw new HscrError(`thread count must be a positive integer`, 'E_ARG', requested ?? fromEnv);
  }
  return value;
}

function load(): { addon: NativeAddon; location: AddonLocation } {
  // Plain JS shared with the install and prebuild scripts (it must run before dist/ exists).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const select = require(path.join(PACKAGE_ROOT, 'scripts', 'addon-select.js')) as {
    selectAddon(root: string, env: NodeJS.ProcessEnv): Selection;
  };
  let chosen: Selection;
  try {
    chosen = select.selectAddon(PACKAGE_ROOT, process.env);
  } catch (e) {
    const err = e as Error & { details?: unknown };
    throw new HscrError(`the hscr native addon cannot load: ${err.message}`, 'E_NATIVE', err.details);
  }
  let addon: NativeAddon;
  try {
    if (chosen.preloader && chosen.preload.length) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      (require(chosen.preloader) as { preload(files: string[]): void }).preload(chosen.preload);
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    addon = require(chosen.file) as NativeAddon;
  } catch (e) {
    throw new HscrError(
      `the hscr native addon at ${chosen.file} does not load (${chosen.reason}): ${(e as Error).message}. ` +
        `Rebuild it against your libtorch: \`cd ${PACKAGE_ROOT} && HSCR_BUILD_FROM_SOURCE=1 npm run install\`.`,
      'E_NATIVE',
      chosen.file,
    );
  }
  addon.setErrorClass(HscrError);
  addon.setNumThreads(resolveThreads());
  const location: AddonLocation = {
    path: chosen.file,
    fromPrebuild: chosen.kind === 'prebuild',
    kind: chosen.kind,
    variant: chosen.variant,
    reason: chosen.reason,
    preloaded: chosen.preload,
    preloader: chosen.preloader,
  };
  return { addon, location };
}

/** The addon, loaded on first use. */
export function native(): NativeAddon {
  loaded ??= load();
  return loaded.addon;
}

/** Which binary was loaded and from where (a local build shadows prebuilds: doctor reports it). */
export function addonLocation(): AddonLocation {
  loaded ??= load();
  return loaded.location;
}

/** Sets libtorch's intra-op threads for this process. */
export function setThreads(n?: number): number {
  const threads = resolveThreads(n);
  native().setNumThreads(threads);
  return threads;
}
