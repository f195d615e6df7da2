/**
 * Forward and forward+backward throughput of the `small` preset (random weights): tokens/s and achieved
 * GFLOP/s, beside the GEMM peak measured in the same run (fp32, same threads). FLOPs are counted from the
 * config (matmuls and attention scores; 2 per multiply-add; backward = 2× forward for full fine-tuning).
 *   node dist/bench/forward.js [--batch 4] [--prompt 32] [--answer 16] [--iters 5]
 */
import { native } from '../lib/native';
import { presetConfig } from '../lib/model/presets';
import type { ModelConfig } from '../lib/model/config';
import { VisionLanguageModel, type Batch } from '../lib/model/vlm';
import { randn } from '../lib/tensor';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

/** Multiply-add FLOPs of one forward pass over `batch` (vision per image, decoder per token, lm_head per answer token). */
export function forwardFlops(cfg: ModelConfig, images: number, seqLens: number[], answerTokens: number): number {
  const v = cfg.vision;
  const vTokens = (v.imageSize / v.patchSize) ** 2 + 1;
  const vLayers = v.numLayers + 1 + cfg.selectLayer; // layers actually run
  const vPerTokenLayer = 2 * (4 * v.hiddenSize * v.hiddenSize + 2 * v.hiddenSize * v.intermediateSize);
  const patchEmbed = 2 * v.numChannels * v.patchSize * v.patchSize * v.hiddenSize;
  const vision = images * (vTokens * (vLayers * vPerTokenLayer + patchEmbed) + vLayers * 4 * vTokens * vTokens * v.hiddenSize);
  const t = cfg.text;
  const nVis = vTokens - (cfg.selectFeature === 'patch' ? 1 : 0);
  const projector = images * nVis * 2 * (v.hiddenSize * t.hiddenSize + (cfg.projector.type === 'mlp2x_gelu' ? t.hiddenSize * t.hiddenSize : 0));
  const q = t.numHeads * t.headDim, kv = t.numKvHeads * t.headDim;
  const perTokenLayer = 2 * (t.hiddenSize * (q + 2 * kv) + q * t.hiddenSize + 3 * t.hiddenSize * t.intermediateSize);
  const T = Math.max(...seqLens);
  const decoder = seqLens.length * T * t.numLayers * (perTokenLayer + 4 * T * q);
  const head = answerTokens * 2 * t.hiddenSize * t.vocabSize;
  return vision + projector + decoder + head;
}

async function main(): Promise<void> {
  const B = arg('batch', 4), promptLen = arg('prompt', 32), answerLen = arg('answer', 16), iters = arg('iters', 5);
  const cfg = presetConfig('small', { vocabSize: 32000 });
  const addon = native() as unknown as { setTrainable(m: unknown, mode: string): number; forwardBackward(m: unknown, b: Batch, s: object): Promise<{ tokens: number }> };
  const model = await VisionLanguageModel.create(cfg, { seed: 0 });
  const img = cfg.imageTokenIndex;
  const rows = Array.from({ length: B }, (_, i) => ({
    image: i,
    prompt: [1, img, ...Array.from({ length: promptLen - 2 }, (_, k) => 100 + ((k * 7 + i) % 3000))],
    answer: Array.from({ length: answerLen }, (_, k) => 200 + ((k * 13 + i) % 3000)),
  }));
  const batch: Batch = { pixels: randn([B, 3, cfg.vision.imageSize, cfg.vision.imageSize], { seed: 1 }), rows };
  const nVis = (cfg.vision.imageSize / cfg.vision.patchSize) ** 2;
  const seqLens = rows.map((r) => r.prompt.length - 1 + nVis + r.answer.length);
  const tokens = seqLens.reduce((a, b) => a + b, 0);
  const flops = forwardFlops(cfg, B, seqLens, B * answerLen);

  const gemmFirst = async () => {
    let best = 0;
    for (const n of [512, 1024, 2048]) best = Math.max(best, (await native().gemmBenchmark(n, 0.5)).gflops);
    return best;
  };
  const time = async (fn: () => Promise<unknown>) => {
    await fn(); // warm-up
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) await fn();
    return Number(process.hrtime.bigint() - t0) / 1e9 / iters;
  };
  const peakBefore = await gemmFirst();
  const fwd = await time(() => model.logprobs(batch));
  addon.setTrainable(model.handle, 'full');
  const fwdBwd = await time(() => addon.forwardBackward(model.handle, batch, { loss: 'sft', scale: 1 / (B * answerLen) }));
  // The best GEMM rate of this run: square fp32 products of three sizes, before and after the passes.
  const peak = Math.max(peakBefore, await gemmFirst());

  const params = model.parameters().reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  console.log(`small preset: ${(params / 1e6).toFixed(1)}M parameters; batch ${B} × ${seqLens[0]} tokens (${nVis} visual), ${native().runtimeInfo().threads} threads`);
  console.log('pass              s/batch   tokens/s   GFLOP/s   of GEMM peak');
  for (const [name, s, f] of [['forward', fwd, flops], ['forward+backward', fwdBwd, 3 * flops]] as const) {
    const g = f / s / 1e9;
    console.log(`${name.padEnd(16)} ${s.toFixed(3).padStart(8)} ${(tokens / s).toFixed(0).padStart(10)} ${g.toFixed(1).padStart(9)}   ${((g / peak) * 100).toFixed(0)}%`);
  }
  console.log(`GEMM peak (best of 512², 1024², 2048² fp32, before and after the passes, same run): ${peak.toFixed(1)} GFLOP/s`);
  const cache = native().cpuCacheStats();
  console.log(cache.installed
    ? `CPU allocator: caching (native/cpu_allocator.cpp), ${cache.hits} hits, ${cache.misses} misses, ${(cache.cachedBytes / 2 ** 20).toFixed(0)} MiB cached`
    : 'CPU allocator: torch\'s own (HSCR_CPU_ALLOCATOR=system)');
  model.dispose();
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
