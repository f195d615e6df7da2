/**
 * Supervised fine-tuning (LLaVA's instruction tuning): next-token loss on the answer tokens only, the mean
 * over every answer token of the optimizer step (all micro-batches, all ranks), as transformers computes it
 * for one batch. This is the step that makes the SFT model HSCR starts from (the demo's starting model).
 */
import * as path from 'node:path';
import { HscrError, dataError } from '../errors';
import { loadDataset, recordLine, type DataFormat } from '../data/loaders';
import { fitToContext } from '../model/context';
import { folderFingerprint } from '../util/output';
import { encodeRecord, type ModelBundle } from '../model/bundle';
import type { BatchRow } from '../model/vlm';
import { resolveSftConfig, type TrainConfig, type TrainConfigInput } from './config';
import { PixelCache, sha256File } from './data';
import type { DistContext } from './launcher';
import { finalModelDir, runTraining, type RunOptions, type TrainingTask, type TrainResult } from './loop';
import type { StepMetrics } from './metrics';
import { trainAddon } from './native';
import { saveModelFolder } from './adapter';
import { openRun } from './open-run';

export interface SftExample {
  id: string;
  /** Absolute image path. */
  image: string;
  promptIds: number[];
  answerIds: number[];
}

/** Tokenises every record up front: a record that cannot be encoded stops the run before any step. */
export function encodeSftExamples(bundle: ModelBundle, records: readonly { id: string; image: string; question: string; answer: string }[], source: string): SftExample[] {
  return records.map((r) => {
    try {
      const { promptIds, answerIds } = encodeRecord(bundle, r);
      return { id: r.id, image: r.image, promptIds, answerIds };
    } catch (e) {
      throw dataError(source, undefined, 'answer', `record "${r.id}": ${(e as Error).message}`, r.answer);
    }
  });
}

export function checkImageGeometry(bundle: ModelBundle): void {
  const { cropHeight, cropWidth, doCenterCrop } = bundle.preprocessing;
  const size = bundle.model.config.vision.imageSize;
  if (!doCenterCrop || cropHeight !== size || cropWidth !== size) {
    throw new HscrError(`${bundle.dir}: the image preprocessing gives ${cropWidth}×${cropHeight} crops but the vision tower takes ${size}×${size}`, 'E_CONFIG', { cropWidth, cropHeight, size });
  }
}

const SFT_SUMS = ['lossSum', 'tokens', 'samples'] as const;

/** The SFT task for the engine. */
export function createSftTask(bundle: ModelBundle, examples: SftExample[], dataFingerprint: string): TrainingTask {
  checkImageGeometry(bundle);
  const pixels = new PixelCache(bundle.preprocessing, bundle.model.config.vision.imageSize);
  const addon = trainAddon();
  return {
    label: 'sft',
    size: examples.length,
    identity: { task: 'sft', data: dataFingerprint, samples: examples.length },
    sumKeys: SFT_SUMS,
    normaliser: (indices) => indices.reduce((n, i) => n + examples[i].answerIds.length, 0),
    async microStep(model, indices, scale) {
      const chosen = indices.map((i) => examples[i]);
      const { pixels: px, index } = await pixels.batch(chosen.map((e) => e.image));
      const rows: BatchRow[] = chosen.map((e, k) => ({ image: index[k], prompt: e.promptIds, answer: e.answerIds }));
      try {
        const sums = await addon.forwardBackward(model.handle, { pixels: px, rows }, { loss: 'sft', scale });
        return { lossSum: sums.lossSum, tokens: sums.tokens, samples: sums.samples };
      } finally {
        px.dispose();
      }
    },
    metrics(sums): StepMetrics {
      return { loss: sums.lossSum / Math.max(1, sums.tokens), num_tokens: sums.tokens };
    },
  };
}

export interface SftRunOptions extends Omit<RunOptions, 'dist'> {
  config: TrainConfigInput;
  /** Training records (any format loadDataset reads). */
  data: string;
  format?: DataFormat | 'auto';
  imageRoot?: string;
  /** Shorten questions that do not fit the model's context (default: E_DATA naming file, line and length). */
  truncate?: boolean;
  /** Default: from the torchrun variables of this process (single process without them). */
  dist?: DistContext;
}

/** `hscr sft` as a function: trains, then leaves <out>/model (and <out>/adapter for LoRA runs). */
export async function runSft(o: SftRunOptions): Promise<TrainResult & { config: TrainConfig; modelDir: string }> {
  const config = resolveSftConfig(o.config);
  const { dist, bundle, close } = await openRun(config, o, { flag: '--data', file: o.data }, 'hscr sft');
  try {
    const data = await loadDataset(o.data, { format: o.format ?? 'auto', imageRoot: o.imageRoot });
    const fitted = fitToContext(bundle, data.records, { source: path.resolve(o.data), lineOf: (i) => recordLine(data.records[i]), truncate: o.truncate });
    if (fitted.truncated.length && dist.rank === 0 && !o.quiet) process.stderr.write(`sft: shortened ${fitted.truncated.length} questions to fit the model's context (--truncate)\n`);
    const examples = encodeSftExamples(bundle, fitted.records, path.resolve(o.data));
    const base = createSftTask(bundle, examples, await sha256File(o.data));
    // A resume with another starting model (or truncation) would not continue the same run.
    const task: TrainingTask = { ...base, identity: { ...base.identity, model: folderFingerprint(config.modelDir), truncate: Boolean(o.truncate) } };
    const result = await runTraining(bundle.model, task, config, { ...o, dist });
    // The next stage (generate, train) takes a model folder: a LoRA run also leaves one with the adapter merged in.
    if (config.finetune === 'lora' && dist.rank === 0) await saveModelFolder(bundle.model, config.modelDir, finalModelDir(config.outputDir));
    return { ...result, config, modelDir: finalModelDir(config.outputDir) };
  } finally {
    close();
  }
}
