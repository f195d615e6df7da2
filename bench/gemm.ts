/**
 * GEMM GFLOP/s through the addon beside the same product in Debian's python3-torch, at the same sizes and
 * thread count, alternating the two so that machine noise hits both alike. Prints the ratio addon/torch.
 *   npx tsx bench/gemm.ts   (or: node dist/bench/gemm.js [--seconds 1] [--rounds 3])
 */
import { execFileSync } from 'child_process';
import path from 'path';
import { native } from '../lib/native';

const PYTHON = '/usr/bin/python3';

function pythonGflops(n: number, seconds: number, threads: number): number {
  const script = path.resolve(__dirname, '..', '..', 'bench', 'gemm_torch.py');
  const local = path.resolve(__dirname, 'gemm_torch.py');
  const file = require('fs').existsSync(local) ? local : script;
  const out = execFileSync(PYTHON, [file, String(n), String(seconds), String(threads)], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop() as string).gflops as number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const seconds = Number(args[args.indexOf('--seconds') + 1]) || 1;
  const rounds = Number(args[args.indexOf('--rounds') + 1]) || 3;
  const addon = native();
  const threads = addon.runtimeInfo().threads;
  console.log(`GEMM fp32, ${threads} threads, ${rounds} rounds of ${seconds}s each, medians`);
  console.log('   n   addon GFLOP/s   python3-torch GFLOP/s   ratio');
  for (const n of [512, 1024, 2048]) {
    const ours: number[] = [];
    const theirs: number[] = [];
    for (let r = 0; r < rounds; r++) {
      ours.push((await addon.gemmBenchmark(n, seconds)).gflops);
      theirs.push(pythonGflops(n, seconds, threads));
    }
    const a = median(ours);
    const b = median(theirs);
    console.log(`${String(n).padStart(4)}   ${a.toFixed(1).padStart(13)}   ${b.toFixed(1).padStart(21)}   ${(a / b).toFixed(3)}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
