/**
 * `hscr run`: the whole HSCR pipeline from one config — data (phantom) → init → SFT → generate (§3.1) →
 * rerank (§3.2) → train (MLPO, §3.3) → eval — in one process. Each stage is skipped when its manifest says
 * it already ran with these settings on inputs with these hashes and its outputs are untouched
 * (manifest.ts), so a killed run, rerun with the same config, continues with the stage it was killed in,
 * and a changed setting reruns that stage and, only when its outputs change, the stages after it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initModel } from '../cli/model';
import { generatePhantom } from '../data/phantom';
import { loadDataset } from '../data/loaders';
import { HscrError } from '../errors';
import { evaluate, evaluateImageReliance } from '../eval/run';
import type { GroupSummary } from '../eval/metrics';
import { generateFile } from '../generate/pipeline';
import { loadPredictor } from '../model/predictor';
import { writeRunReport } from '../report';
import { rerankFile } from '../rerank/rerank';
import { applyAdapter } from '../train/adapter';
import type { MlpoLossKind } from '../train/config';
import { finalAdapterDir, finalModelDir } from '../train/loop';
import { runMlpo } from '../train/mlpo';
import { runSft } from '../train/sft';
import type { PipelineConfig } from './config';
import { finishedManifest, hashInputs, readManifest, stageKey, staleReason, writeManifest } from './manifest';

export const STAGE_NAMES = ['data', 'init', 'sft', 'generate', 'rerank', 'train', 'eval'] as const;
export type StageName = (typeof STAGE_NAMES)[number];

interface Stage {
  name: StageName;
  settings: unknown;
  /** Files or folders the stage reads: name → path. */
  inputs: Record<string, string>;
  /** What it leaves: name → path (inside the run folder). */
  outputs: Record<string, string>;
  /** Removed before the stage runs, so nothing a killed attempt left is mistaken for output. */
  clear: string[];
  run(): Promise<void>;
}

export interface StageOutcome {
  stage: StageName;
  action: 'ran' | 'skipped';
  reason: string;
  seconds: number;
}

export interface PipelineResult {
  outDir: string;
  stages: StageOutcome[];
  /** Overall scores per evaluated model ('sft', 'hscr'). */
  scores: Record<string, GroupSummary>;
  report?: string;
}

export interface PipelineOptions {
  quiet?: boolean;
  log?: (line: string) => void;
}

/** Where every stage puts its files, inside the run folder. */
export function pipelineLayout(c: PipelineConfig) {
  const out = c.out;
  const dataDir = path.join(out, 'data');
  const trainFile = c.data.source === 'phantom' ? path.join(dataDir, 'train.jsonl') : c.data.train;
  const testFile = c.data.source === 'phantom' ? path.join(dataDir, 'test.jsonl') : c.data.test;
  const initDir = c.model.dir ?? path.join(out, 'init');
  const sftDir = path.join(out, 'sft');
  const sftModel = c.sft.enabled ? finalModelDir(sftDir) : initDir;
  const prefsDir = path.join(out, 'prefs');
  const rankedFile = path.join(prefsDir, c.train.loss === 'dpo' ? 'binary.jsonl' : 'ranked.jsonl');
  const trainDir = path.join(out, 'train');
  return { out, dataDir, trainFile, testFile, initDir, sftDir, sftModel, prefsDir, prefsFile: path.join(prefsDir, 'prefs.jsonl'), rankedFile, trainDir, adapterDir: finalAdapterDir(trainDir), evalDir: path.join(out, 'eval'), logFile: path.join(out, 'pipeline', 'log.jsonl') };
}

function stages(c: PipelineConfig, quiet: boolean): Stage[] {
  const L = pipelineLayout(c);
  const format = c.data.source === 'files' ? c.data.format : ('hscr' as const);
  const imageRoot = c.data.source === 'files' ? c.data.imageRoot : undefined;
  const list: Stage[] = [];
  if (c.data.source === 'phantom') {
    const { source: _source, ...phantom } = c.data;
    list.push({ name: 'data', settings: phantom, inputs: {}, outputs: { data: L.dataDir }, clear: [L.dataDir], run: async () => void (await generatePhantom({ outDir: L.dataDir, ...phantom })) });
  }
  if (!c.model.dir) {
    // The tiny preset's word-level tokenizer is built from the words of the data it will see.
    const corpus = c.data.source === 'files' && c.model.preset === 'tiny' ? L.trainFile : undefined;
    list.push({
      name: 'init',
      settings: { preset: c.model.preset, seed: c.model.seed },
      inputs: corpus ? { corpus } : {},
      outputs: { model: L.initDir },
      clear: [L.initDir],
      run: async () => void (await initModel({ preset: c.model.preset as 'tiny' | 'small', out: L.initDir, seed: c.model.seed, corpus, overwrite: true })),
    });
  }
  if (c.sft.enabled) {
    const s = c.sft;
    list.push({
      name: 'sft',
      settings: { ...s, device: c.device, format, imageRoot },
      inputs: { model: L.initDir, train: L.trainFile },
      outputs: { model: L.sftModel },
      clear: [L.sftDir],
      run: async () =>
        void (await runSft({
          config: { modelDir: L.initDir, outputDir: L.sftDir, finetune: s.finetune, learningRate: s.lr, epochs: s.epochs, maxSteps: s.maxSteps, batchPerDevice: s.batch, seed: s.seed, saveSteps: 0, device: c.device },
          data: L.trainFile,
          format,
          imageRoot,
          overwrite: true,
          quiet,
        })),
    });
  }
  const g = c.generate;
  list.push({
    name: 'generate',
    settings: { ...g, device: c.device, format, imageRoot },
    inputs: { model: L.sftModel, train: L.trainFile },
    outputs: { prefs: L.prefsFile },
    clear: [L.prefsFile],
    run: async () =>
      void (await generateFile({ model: L.sftModel, data: L.trainFile, out: L.prefsFile, k: g.k, n: g.n, beta: g.beta, ratio: g.ratio, perturb: g.perturb, seed: g.seed, batchSize: g.batch, limit: g.limit, format, imageRoot, device: c.device, quiet: true })),
  });
  const mode = c.train.loss === 'dpo' ? ('binary' as const) : ('ranked' as const);
  list.push({
    name: 'rerank',
    settings: { ...c.rerank, mode },
    inputs: { prefs: L.prefsFile },
    outputs: { ranked: L.rankedFile },
    clear: [L.rankedFile],
    run: async () => void (await rerankFile({ input: L.prefsFile, out: L.rankedFile, j: c.rerank.j, minGap: c.rerank.minGap, mode, quiet: true })),
  });
  const t = c.train;
  list.push({
    name: 'train',
    settings: { ...t, j: c.rerank.j, device: c.device },
    inputs: { model: L.sftModel, prefs: L.rankedFile },
    // The adapter's weights: adapter_config.json names the base model's absolute path, which is no result.
    outputs: { adapter: path.join(L.adapterDir, 'adapter_model.safetensors') },
    clear: [L.trainDir],
    run: async () =>
      void (await runMlpo({
        config: {
          modelDir: L.sftModel,
          outputDir: L.trainDir,
          loss: t.loss as MlpoLossKind,
          learningRate: t.lr,
          epochs: t.epochs,
          maxSteps: t.maxSteps,
          batchPerDevice: t.batch,
          gamma: t.gamma,
          lora: { r: t.loraR, alpha: t.loraAlpha, dropout: t.loraDropout },
          maxRejected: c.rerank.j,
          seed: t.seed,
          saveSteps: 0,
          device: c.device,
        },
        prefs: L.rankedFile,
        overwrite: true,
        quiet,
      })),
  });
  list.push({
    name: 'eval',
    settings: { ...c.eval, device: c.device, format, imageRoot },
    inputs: { model: L.sftModel, adapter: path.join(L.adapterDir, 'adapter_model.safetensors'), test: L.testFile },
    outputs: { eval: L.evalDir },
    clear: [L.evalDir],
    run: () => runEval(c, L),
  });
  return list;
}

/** The evaluated models: the SFT baseline (optional) and the trained adapter on it. */
async function runEval(c: PipelineConfig, L: ReturnType<typeof pipelineLayout>): Promise<void> {
  const format = c.data.source === 'files' ? c.data.format : 'hscr';
  const imageRoot = c.data.source === 'files' ? c.data.imageRoot : undefined;
  const records = (await loadDataset(L.testFile, { format, imageRoot })).records.slice(0, c.eval.limit);
  const models = [...(c.eval.baseline ? [{ key: 'sft', name: 'SFT', adapter: undefined }] : []), { key: 'hscr', name: `SFT + ${c.train.loss.toUpperCase()}`, adapter: L.adapterDir }];
  for (const m of models) {
    const predictor = await loadPredictor(L.sftModel, m.adapter, { loadAdapter: applyAdapter, maxNewTokens: c.eval.maxNewTokens, device: c.device });
    try {
      const opts = { batchSize: c.eval.batch, variant: c.eval.variant, outDir: path.join(L.evalDir, m.key), name: m.name };
      if (c.eval.imageReliance) await evaluateImageReliance(records, predictor, opts);
      else await evaluate(records, predictor, opts);
    } finally {
      predictor.dispose();
    }
  }
}

function appendLog(file: string, entry: Record<string, unknown>): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.appendFileSync(file, `${JSON.stringify({ time: new Date().toISOString(), pid: process.pid, ...entry })}\n`);
}

/** Runs (or continues) the pipeline; returns what each stage did and the final scores. */
export async function runPipeline(c: PipelineConfig, o: PipelineOptions = {}): Promise<PipelineResult> {
  const log = o.log ?? ((line: string) => (o.quiet ? undefined : process.stderr.write(`run: ${line}\n`)));
  const L = pipelineLayout(c);
  fs.mkdirSync(L.out, { recursive: true });
  fs.writeFileSync(path.join(L.out, 'run_config.json'), `${JSON.stringify(c, null, 2)}\n`);
  appendLog(L.logFile, { event: 'start' });
  const outcomes: StageOutcome[] = [];
  for (const stage of stages(c, o.quiet ?? false)) {
    const inputs = hashInputs(stage.name, stage.inputs);
    const key = stageKey(stage.settings, inputs);
    const reason = staleReason(readManifest(L.out, stage.name), key, inputs, L.out);
    if (reason === undefined) {
      outcomes.push({ stage: stage.name, action: 'skipped', reason: 'inputs, settings and outputs unchanged', seconds: 0 });
      appendLog(L.logFile, { stage: stage.name, event: 'skip' });
      log(`${stage.name}: skipped (inputs, settings and outputs unchanged)`);
      continue;
    }
    log(`${stage.name}: running (${reason})`);
    appendLog(L.logFile, { stage: stage.name, event: 'run', reason });
    for (const p of stage.clear) fs.rmSync(p, { recursive: true, force: true });
    const started = Date.now();
    await stage.run();
    const seconds = (Date.now() - started) / 1000;
    const manifest = finishedManifest(L.out, stage, inputs, seconds);
    writeManifest(L.out, manifest);
    appendLog(L.logFile, { stage: stage.name, event: 'done', seconds });
    outcomes.push({ stage: stage.name, action: 'ran', reason, seconds });
  }
  const scores: Record<string, GroupSummary> = {};
  for (const key of ['sft', 'hscr']) {
    const file = path.join(L.evalDir, key, 'results.json');
    if (fs.existsSync(file)) scores[key] = (JSON.parse(fs.readFileSync(file, 'utf8')) as { overall: GroupSummary }).overall;
  }
  appendLog(L.logFile, { event: 'finish' });
  const report = c.report ? (await writeRunReport(L.out, { title: `hscr run — ${path.basename(L.out)}`, config: c })).file : undefined;
  return { outDir: L.out, stages: outcomes, scores, report };
}
