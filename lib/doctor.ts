/** What `hscr doctor` reports: where libtorch and the addon came from, threads, BLAS, CUDA, and GEMM speed. */
import fs from 'fs';
import os from 'os';
import { addonLocation, native, type AddonLocation, type RuntimeInfo } from './native';

export interface DoctorReport {
  node: string;
  platform: string;
  cores: number;
  addon: AddonLocation;
  torch: { version: string; libraries: string[]; builtWithCuda: boolean };
  threads: number;
  blas: string[];
  cuda: { available: boolean; devices: number; cudnn: boolean };
  parallelInfo: string;
  gemm: { n: number; gflops: number; seconds: number; device: string };
}

/** Shared libraries this process has mapped whose file name matches `pattern` (resolved, unique). */
export function mappedLibraries(pattern: RegExp): string[] {
  let maps = '';
  try {
    maps = fs.readFileSync('/proc/self/maps', 'utf8');
  } catch {
    return [];
  }
  const found = new Set<string>();
  for (const line of maps.split('\n')) {
    const file = line.slice(line.indexOf('/'));
    if (line.includes('/') && pattern.test(file.split('/').pop() ?? '')) {
      try {
        found.add(fs.realpathSync(file));
      } catch {
        found.add(file);
      }
    }
  }
  return [...found].sort();
}

export async function doctor(options: { gemmSize?: number; gemmSeconds?: number; device?: string } = {}): Promise<DoctorReport> {
  const addon = native();
  const info: RuntimeInfo = addon.runtimeInfo();
  const device = options.device ?? (info.cudaAvailable ? 'cuda' : 'cpu');
  const n = options.gemmSize ?? 1024;
  const gemm = await addon.gemmBenchmark(n, options.gemmSeconds ?? 1, device);
  return {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cores: os.availableParallelism(),
    addon: addonLocation(),
    torch: { version: info.torchVersion, libraries: mappedLibraries(/^lib(torch|c10)[^/]*\.so/), builtWithCuda: info.builtWithCuda },
    threads: info.threads,
    blas: mappedLibraries(/(blas|lapack|mkl)/i),
    cuda: { available: info.cudaAvailable, devices: info.cudaDeviceCount, cudnn: info.cudnnAvailable },
    parallelInfo: info.parallelInfo,
    gemm: { n, gflops: gemm.gflops, seconds: gemm.seconds, device },
  };
}

export function formatDoctor(r: DoctorReport): string {
  const lines = [
    `node        ${r.node} (${r.platform}, ${r.cores} cores)`,
    `addon       ${r.addon.path} (${r.addon.kind}${r.addon.variant ? `, variant ${r.addon.variant}` : ''})`,
    `  because   ${r.addon.reason}`,
    ...(r.addon.preloaded.length
      ? [`  preloaded ${r.addon.preloaded.join(', ')}${r.addon.preloader ? ` (RTLD_LOCAL, by ${r.addon.preloader})` : ''}`]
      : []),
    `libtorch    ${r.torch.version}${r.torch.builtWithCuda ? ' (CUDA build)' : ''}`,
    ...r.torch.libraries.map((l) => `            ${l}`),
    `threads     ${r.threads}`,
    `blas        ${r.blas.join(', ') || 'none mapped'}`,
    `cuda        ${r.cuda.available ? `${r.cuda.devices} device(s)${r.cuda.cudnn ? ', cuDNN' : ''}` : 'not available'}`,
    `gemm        ${r.gemm.gflops.toFixed(1)} GFLOP/s (${r.gemm.n}x${r.gemm.n} fp32 on ${r.gemm.device}, ${r.gemm.seconds.toFixed(2)} s)`,
  ];
  if (r.blas.some((l) => /libblas\.so/.test(l) && !/openblas|mkl/i.test(l))) {
    lines.push('warning     libtorch is using the reference BLAS (~30x slower): run `bash scripts/setup.sh`');
  }
  return lines.join('\n');
}
