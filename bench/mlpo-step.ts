/**
 * One MLPO training step (forward + backward + gradient clipping + AdamW) of hscr's native core against two
 * PyTorch peers (bench/mlpo_peers.py, Debian's python3-torch), in the same run, interleaved in rounds:
 *   a: naive, as TRL-style trainers do (every row re-encodes image + prompt; reference re-run each step)
 *   b: shared prefix (cached reference; image + prompt through the decoder once per sample; the answers
 *      attend to its keys/values in one batched call, gradients through the prefix)
 * All sides load the same safetensors model and the same LoRA adapter file (r, α, dropout, targets alike,
 * B non-zero so that the policy differs from the reference), see the same token ids and pixels and run on the
 * same number of threads. The first step of every side runs with LoRA dropout inactive (eval mode) so that
 * its loss and gradient norm can be compared across sides (the RNGs differ); the timed steps then run in
 * train mode with the configured dropout. Each round times one step of every side, in a rotating order;
 * reported: the per-round ratios peer/hscr, their median, each side's best step, and each process's peak RSS
 * (VmHWM).
 *
 *   node dist/bench/mlpo-step.js [--image-size 224] [--batch 2] [--rejected 3] [--prompt 32] [--answer 16]
 *        [--rounds 5] [--dropout 0.05] [--threads 2] [--peers a,b] [--native-full] [--out /tmp/hscr-bench-mlpo]
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { mulberry32 } from '../lib/data/prng';
import { presetConfig } from '../lib/model/presets';
import { readSafetensors, writeSafetensors } from '../lib/model/safetensors';
import { VisionLanguageModel, type Batch, type BatchRow } from '../lib/model/vlm';
import { native, type Tensor } from '../lib/native';
import { tensor } from '../lib/tensor';
import { addLoraAdapters, ADAPTER_WEIGHTS, loadAdapter, saveAdapter } from '../lib/train/adapter';
import { DEFAULT_LORA_TARGETS } from '../lib/train/config';
import { trainAddon } from '../lib/train/native';

const PYTHON = '/usr/bin/python3';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export function vmHwmKib(): number {
  const m = /VmHWM:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : NaN;
}

interface Sample {
  prompt: number[];
  chosen: number[];
  rejected: number[][];
}

/** Synthetic ids: prompt with the image placeholder after 4 words, rejected = chosen with 4 tokens replaced. */
function makeSamples(n: number, j: number, promptLen: number, answerLen: number, vocab: number, imageToken: number): Sample[] {
  const rand = mulberry32(7);
  const word = () => 3 + Math.floor(rand() * (vocab - 3));
  return Array.from({ length: n }, () => {
    const chosen = Array.from({ length: answerLen }, word);
    return {
      prompt: [1, word(), word(), word(), word(), imageToken, ...Array.from({ length: promptLen - 6 }, word)],
      chosen,
      rejected: Array.from({ length: j }, () => {
        const r = [...chosen];
        for (let k = 0; k < 4; k++) r[Math.floor(rand() * answerLen)] = word();
        return r;
      }),
    };
  });
}

/** A line-oriented JSON conversation with one peer process. */
class Peer {
  private lines: AsyncIterableIterator<string>;
  private rl: Interface;
  constructor(
    readonly name: string,
    private child: ChildProcessWithoutNullStreams,
  ) {
    this.rl = createInterface({ input: child.stdout });
    this.lines = this.rl[Symbol.asyncIterator]();
    child.stderr.on('data', (d) => process.stderr.write(`[peer ${name}] ${d}`));
  }
  async read(): Promise<Record<string, number>> {
    const { value, done } = await this.lines.next();
    if (done) throw new Error(`peer ${this.name} exited`);
    const r = JSON.parse(value) as Record<string, number>;
    if ('error' in r) throw new Error(`peer ${this.name}: ${r.error}`);
    return r;
  }
  async ask(cmd: string): Promise<Record<string, number>> {
    this.child.stdin.write(`${cmd}\n`);
    return this.read();
  }
  close(): void {
    this.child.stdin.end('quit\n');
    this.rl.close();
  }
}

async function main(): Promise<void> {
  const imageSize = Number(arg('image-size', '224'));
  const B = Number(arg('batch', '2')), J = Number(arg('rejected', '3'));
  const promptLen = Number(arg('prompt', '32')), answerLen = Number(arg('answer', '16'));
  const rounds = Number(arg('rounds', '5'));
  const dropout = Number(arg('dropout', '0.05'));
  const threads = Number(arg('threads', '2'));
  const peers = arg('peers', 'a,b').split(',').filter(Boolean);
  const nativeFull = process.argv.includes('--native-full');
  const lr = 1e-4;
  const out = path.resolve(arg('out', '/tmp/hscr-bench-mlpo'));
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  native().setNumThreads(threads);

  // The model and adapter every side loads.
  const base = presetConfig('small', { vocabSize: 32000 });
  const cfg = { ...base, vision: { ...base.vision, imageSize } };
  const modelDir = path.join(out, 'model');
  const adapterDir = path.join(out, 'adapter');
  const model = await VisionLanguageModel.create(cfg, { seed: 0 });
  await model.save(modelDir);
  const lora = { r: 16, alpha: 32, dropout, targets: [...DEFAULT_LORA_TARGETS], scope: 'language_model' as const };
  addLoraAdapters(model, lora, 0);
  await saveAdapter(model, adapterDir, lora);
  const adapterFile = path.join(adapterDir, ADAPTER_WEIGHTS);
  const file = await readSafetensors(adapterFile);
  const rand = mulberry32(11);
  const tensors: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(file.tensors)) {
    // B = 0 would make the policy equal the reference at step 1 (every margin 0, loss 6·ln 2 whatever the model).
    tensors[k] = k.includes('lora_B') ? tensor(Float32Array.from({ length: t.numel }, () => (rand() - 0.5) * 0.02), t.shape) : t;
  }
  await writeSafetensors(adapterFile, tensors, file.metadata);
  await loadAdapter(model, adapterDir);
  const train = trainAddon();
  const trainable = train.setTrainable(model.handle, 'lora');
  const params = model.parameters().filter((p) => !p.name.includes('lora_')).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);

  // Data: ids and pixels, written for the peers.
  const samples = makeSamples(B, J, promptLen, answerLen, cfg.text.vocabSize, cfg.imageTokenIndex);
  const pixelData = Float32Array.from({ length: B * 3 * imageSize * imageSize }, () => rand() * 2 - 1);
  fs.writeFileSync(path.join(out, 'pixels.f32'), Buffer.from(pixelData.buffer));
  fs.writeFileSync(path.join(out, 'data.json'), JSON.stringify({ imageSize, samples }));
  const pixels = tensor(pixelData, [B, 3, imageSize, imageSize]);
  const rows: BatchRow[] = samples.flatMap((s, i) => [s.chosen, ...s.rejected].map((answer) => ({ image: i, prompt: s.prompt, answer })));
  const batch: Batch = { pixels, rows };
  const groups = samples.map((s) => s.rejected.length);

  // hscr: reference log-probs once (adapters off, eval), as the trainer caches them.
  train.setLoraEnabled(model.handle, false);
  train.setTraining(model.handle, false);
  const reference = Float64Array.from((await model.logprobs(batch)).sums);
  train.setLoraEnabled(model.handle, true);
  const optimizer = train.Optimizer.create(model.handle, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
  const spec = (sharedPrefix: boolean) => ({
    loss: 'mlpo' as const,
    scale: 1 / B,
    groups,
    referenceLogps: reference,
    gamma: 0.1,
    lambdaExplicit: 1,
    lambdaImplicit: 1,
    pairWeighting: 'sum' as const,
    sharedPrefix,
  });
  const hscrStep = async (sharedPrefix = !nativeFull) => {
    const t0 = process.hrtime.bigint();
    const sums = await train.forwardBackward(model.handle, batch, spec(sharedPrefix));
    const { gradNorm } = await optimizer.step({ lr, maxGradNorm: 1 });
    return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, loss: sums.lossSum / sums.samples, gradNorm, seq: sums.sequenceLogps };
  };

  // Peers: one process each, started before any timing.
  const started: Peer[] = [];
  for (const name of peers) {
    const child = spawn(PYTHON, [
      path.resolve(__dirname, '..', '..', 'bench', 'mlpo_peers.py'),
      '--peer', name, '--model', modelDir, '--adapter', adapterFile, '--alpha', String(lora.alpha),
      '--data', path.join(out, 'data.json'), '--pixels', path.join(out, 'pixels.f32'),
      '--threads', String(threads), '--dropout', String(dropout), '--lr', String(lr),
    ]);
    const p = new Peer(name, child);
    await p.read();
    started.push(p);
  }
  try {
    const seqTokens = promptLen - 1 + (imageSize / cfg.vision.patchSize) ** 2;
    console.log(`MLPO step: small preset with ${imageSize}-px images (${(params / 1e6).toFixed(1)}M parameters, ${(seqTokens)} prefix tokens), batch ${B} × (chosen + ${J} rejected), prompt ${promptLen} + answers ${answerLen} tokens`);
    console.log(`LoRA r=${lora.r} α=${lora.alpha} dropout ${dropout} on ${lora.targets.join('/')} (${trainable} trainable), AdamW lr ${lr}, clip 1.0, ${threads} threads, torch ${native().runtimeInfo().torchVersion}`);
    console.log(`hscr path: ${nativeFull ? 'full sequences (sharedPrefix: false)' : 'shared prefix'}`);

    // First step, dropout inactive: losses and gradient norms must agree.
    train.setTraining(model.handle, false);
    const first = await hscrStep();
    train.setTraining(model.handle, true);
    const checks: Record<string, { loss: number; gradNorm: number }> = { hscr: first };
    for (const p of started) checks[p.name] = (await p.ask('check')) as { loss: number; gradNorm: number };
    console.log(`first step (LoRA dropout inactive): ${Object.entries(checks).map(([k, v]) => `${k} loss ${v.loss.toFixed(7)} |g| ${v.gradNorm.toExponential(5)}`).join('; ')}`);
    let agree = true;
    for (const p of started) {
      const d = Math.abs(checks[p.name].loss - first.loss);
      console.log(`  |loss(hscr) − loss(${p.name})| = ${d.toExponential(2)} ${d <= 1e-5 ? '≤' : '>'} 1e-5`);
      agree &&= d <= 1e-5;
    }

    const times: Record<string, number[]> = { hscr: [] };
    for (const p of started) times[p.name] = [];
    const sides = ['hscr', ...started.map((p) => p.name)];
    for (let r = 0; r < rounds; r++) {
      const order = sides.map((_, i) => sides[(i + r) % sides.length]);
      for (const side of order) {
        if (side === 'hscr') times.hscr.push((await hscrStep()).seconds);
        else times[side].push((await started.find((p) => p.name === side)!.ask('step')).seconds);
      }
    }
    console.log(`\nround   hscr s   ${started.map((p) => `peer ${p.name} s   ${p.name}/hscr`).join('   ')}`);
    for (let r = 0; r < rounds; r++) {
      console.log(`${String(r + 1).padStart(5)} ${times.hscr[r].toFixed(3).padStart(8)}   ${started.map((p) => `${times[p.name][r].toFixed(3).padStart(8)}   ${(times[p.name][r] / times.hscr[r]).toFixed(2).padStart(6)}`).join('   ')}`);
    }
    const rss: Record<string, number> = { hscr: vmHwmKib() };
    for (const p of started) rss[p.name] = (await p.ask('rss')).vmhwm_kib;
    console.log('\nside    median ratio peer/hscr   best step s   peak RSS (VmHWM) MiB');
    console.log(`hscr    ${'-'.padStart(20)}   ${Math.min(...times.hscr).toFixed(3).padStart(11)}   ${(rss.hscr / 1024).toFixed(0).padStart(8)}`);
    for (const p of started) {
      const ratios = times[p.name].map((t, r) => t / times.hscr[r]);
      console.log(`peer ${p.name}  ${median(ratios).toFixed(2).padStart(20)}×  ${Math.min(...times[p.name]).toFixed(3).padStart(11)}   ${(rss[p.name] / 1024).toFixed(0).padStart(8)}`);
    }
    if (!agree) {
      console.log('LOSSES DISAGREE');
      process.exitCode = 2;
    }
  } finally {
    for (const p of started) p.close();
    pixels.dispose();
    model.dispose();
  }
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
