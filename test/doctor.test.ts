import t from 'tap';
import os from 'os';
import { execFileSync } from 'child_process';
import path from 'path';

const root = path.resolve(__dirname, '..');

t.test('hscr doctor --json reports threads = cores, OpenBLAS and a real GEMM figure', async (t) => {
  const out = execFileSync(process.execPath, [path.join(root, 'bin/hscr.js'), 'doctor', '--json', '--gemm-size', '256'], {
    encoding: 'utf8',
    env: { ...process.env, HSCR_NUM_THREADS: '' },
  });
  const r = JSON.parse(out);
  t.equal(r.threads, os.availableParallelism());
  t.equal(r.cores, os.availableParallelism());
  t.match(r.torch.version, /^\d+\.\d+/);
  t.ok(r.addon.path.endsWith('.node') && typeof r.addon.fromPrebuild === 'boolean');
  t.match(r.addon.kind, /^(prebuild|local build|HSCR_ADDON_PATH)$/);
  t.ok(r.addon.reason.length > 10, `doctor says why: ${r.addon.reason}`);
  t.ok(r.blas.some((l: string) => /openblas/.test(l)), `libtorch's BLAS is OpenBLAS: ${r.blas}`);
  // The figure must be a real measurement: a whole number (≥ 1) of 2·n³-flop products over at least the
  // second asked for. No speed threshold: that belongs in bench/, and this machine is shared.
  const products = (r.gemm.gflops * 1e9 * r.gemm.seconds) / (2 * r.gemm.n ** 3);
  t.ok(r.gemm.seconds >= 1 && products >= 0.999 && Math.abs(products - Math.round(products)) < 1e-3 * products, `gemm ${r.gemm.gflops} GFLOP/s over ${r.gemm.seconds}s = ${products} products of n=${r.gemm.n}`);
  t.equal(r.cuda.available, r.cuda.devices > 0);
});

t.test('HSCR_NUM_THREADS overrides the core count', async (t) => {
  const out = execFileSync(process.execPath, [path.join(root, 'bin/hscr.js'), 'doctor', '--json', '--gemm-size', '64'], {
    encoding: 'utf8',
    env: { ...process.env, HSCR_NUM_THREADS: '1' },
  });
  t.equal(JSON.parse(out).threads, 1);
});
