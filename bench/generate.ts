/**
 * Acceptance 4 of the preference-data issue: samples/s of HSCR's generation stage (the fused two-view
 * forward + native contrastive kernel + building the k dispreferred answers) against its floor, two plain
 * teacher-forced forward passes of the same batch (model.logprobs on the full view, then on the dropped
 * view). Random models of the presets, synthetic ids and pixels (the speed does not depend on the values).
 *
 *   node dist/bench/generate.js [--preset tiny,small] [--batch 8] [--prompt 24] [--answer 16] [--iters 7]
 *                               [--perturb token] [--device cpu] [--dtype float32] [--image-size px]
 */
import { HSCR_DEFAULTS } from '../lib/config';
import { buildDispreferred } from '../lib/generate/dispreferred';
import { modelContrastive, toKernelOutput, type ContrastiveBatch, type ViewLayout } from '../lib/generate/contrastive';
import { PRESET_INFO, PRESET_NAMES, presetConfig, type PresetName } from '../lib/model/presets';
import { VisionLanguageModel, type PerturbKind } from '../lib/model/vlm';
import type { DType } from '../lib/native';
import { mulberry32 } from '../lib/data/prng';
import { randn } from '../lib/tensor';

interface Args {
  presets: PresetName[];
  batch: number;
  prompt: number;
  answer: number;
  iters: number;
  perturb: Exclude<PerturbKind, 'none'>;
  device: string;
  dtype: DType;
  /** Overrides the preset's image size: 24² patches of 16 px (384) give LLaVA-Med's 576 visual tokens. */
  imageSize?: number;
}

function parseArgs(argv: string[]): Args {
  const get = (flag: string, fallback: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
  };
  const presets = get('--preset', PRESET_NAMES.join(',')).split(',') as PresetName[];
  for (const p of presets) if (!PRESET_NAMES.includes(p)) throw new Error(`unknown preset ${p}`);
  return {
    presets,
    batch: Number(get('--batch', '8')),
    prompt: Number(get('--prompt', '24')),
    answer: Number(get('--answer', '16')),
    iters: Number(get('--iters', '7')),
    perturb: get('--perturb', 'token') as Args['perturb'],
    device: get('--device', 'cpu'),
    dtype: get('--dtype', 'float32') as DType,
    imageSize: argv.includes('--image-size') ? Number(get('--image-size', '')) : undefined,
  };
}

function syntheticBatch(model: VisionLanguageModel, a: Args): ContrastiveBatch {
  const { text, vision, imageTokenIndex } = model.config;
  const rand = mulberry32(1);
  const word = () => 3 + Math.floor(rand() * (text.vocabSize - 3));
  const rows = Array.from({ length: a.batch }, (_, b) => ({
    image: b,
    prompt: [text.bosTokenId, ...Array.from({ length: 4 }, word), imageTokenIndex, ...Array.from({ length: a.prompt - 6 }, word)],
    answer: [...Array.from({ length: a.answer - 1 }, word), text.eosTokenId],
    seed: b,
  }));
  return { pixels: randn([a.batch, 3, vision.imageSize, vision.imageSize], { seed: 2 }), rows };
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

async function seconds(f: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function benchPreset(preset: PresetName, a: Args): Promise<void> {
  const base = presetConfig(preset, { vocabSize: PRESET_INFO[preset].maxVocab });
  const cfg = a.imageSize ? { ...base, vision: { ...base.vision, imageSize: a.imageSize } } : base;
  const model = await VisionLanguageModel.create(cfg, { seed: 0, device: a.device, dtype: a.dtype });
  const batch = syntheticBatch(model, a);
  const view = { perturb: a.perturb, ratio: HSCR_DEFAULTS.dropRatio, seed: 0 };
  const decode = (ids: number[]) => ids.join(' ');
  const tokenText = (id: number) => String(id);
  const generation = (views?: ViewLayout) => async () => {
    const rows = await modelContrastive(model, batch, views ? { ...view, views } : view);
    rows.forEach((row, b) => buildDispreferred(toKernelOutput(Array.from(batch.rows[b].answer), row), decode, tokenText, { k: HSCR_DEFAULTS.k }));
  };
  const floor = async () => {
    await model.logprobs(batch);
    await model.logprobs(batch, view);
  };
  const runs: Record<string, () => Promise<void>> = { default: generation(), joint: generation('joint'), split: generation('split'), floor };
  const times: Record<string, number[]> = { default: [], joint: [], split: [], floor: [] };
  try {
    for (const run of Object.values(runs)) await run();
    for (let i = 0; i < a.iters; i++) {
      // Interleaved so that all see the same machine load.
      for (const [name, run] of Object.entries(runs)) times[name].push(await seconds(run));
    }
    const rate = (name: string) => a.batch / median(times[name]);
    const shape = `vocab ${cfg.text.vocabSize}, ${a.device} ${a.dtype}, batch ${a.batch}, prompt ${a.prompt} + ${(cfg.vision.imageSize / cfg.vision.patchSize) ** 2} visual, answer ${a.answer}, ${a.perturb} ${HSCR_DEFAULTS.dropRatio}`;
    console.log(`${preset} (${shape}), samples/s, median of ${a.iters}:`);
    console.log(`  floor (2 plain forwards)   ${rate('floor').toFixed(2)}`);
    for (const views of ['default', 'joint', 'split']) {
      console.log(`  generation, views ${views.padEnd(7)} ${rate(views).toFixed(2)}  ratio ${(rate(views) / rate('floor')).toFixed(3)}`);
    }
  } finally {
    batch.pixels.dispose();
    model.dispose();
  }
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  for (const preset of a.presets) await benchPreset(preset, a);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
