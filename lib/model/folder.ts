/**
 * Model folders from the package root: initModel writes a randomly initialised one (config, safetensors,
 * tokenizer, preprocessor config) and answerLogprobs runs a forward pass over records with it.
 */
import fs from 'fs';
import { HscrError } from '../errors';
import { loadDataset } from '../data';
import { phantomCorpus } from '../data/phantom';
import { batchOf, disposeBundle, loadModelBundle } from './bundle';
import { writeInitFiles } from './init-files';
import { PRESET_NAMES, parameterCount, type PresetName } from './presets';
import { corpusWords } from './tokenizer';
import { VisionLanguageModel, type PerturbKind } from './vlm';
import { createProgress } from '../util/progress';
import { recordLine } from '../data/loaders';
import { fitToContext } from './context';
import { checkInputFile, checkInputFolder, checkOutputFolder, ioError } from '../util/output';

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw ioError(file, 'read', err);
  }
}

/** initModel's options. */
export interface InitOptions {
  /** tiny (word-level tokenizer from a corpus) or small (needs a tokenizer folder, e.g. Mistral-7B's). */
  preset: PresetName;
  /** Output folder. */
  out: string;
  /** Initialisation seed (default 0). */
  seed?: number;
  corpus?: string;
  tokenizer?: string;
  layout?: 'llava-hf' | 'llava-med';
  overwrite?: boolean;
}

/** A randomly initialised model folder (config, weights, tokenizer, preprocessor config). */
export async function initModel(o: InitOptions): Promise<{ parameters: number; dir: string }> {
  if (!PRESET_NAMES.includes(o.preset)) throw new HscrError(`--preset must be ${PRESET_NAMES.join(' or ')}`, 'E_ARG', o.preset);
  // The tiny preset's word-level tokenizer is built from the corpus: by default the phantom benchmark's own words.
  checkOutputFolder(o.out);
  if (o.corpus) checkInputFile(o.corpus, '--corpus');
  if (o.tokenizer) checkInputFolder(o.tokenizer, '--tokenizer');
  const words = o.corpus ? corpusWords(readText(o.corpus)) : o.tokenizer ? undefined : phantomCorpus().words;
  const cfg = await writeInitFiles(o.out, {
    preset: o.preset,
    corpusWords: o.preset === 'tiny' ? words : undefined,
    tokenizerDir: o.tokenizer,
    layout: o.layout,
    overwrite: o.overwrite,
  });
  const model = await VisionLanguageModel.create(cfg, { seed: o.seed ?? 0 });
  try {
    await model.save(o.out, o.layout ?? 'llava-hf');
  } finally {
    model.dispose();
  }
  return { parameters: parameterCount(cfg), dir: o.out };
}

export interface LogprobsOptions {
  model: string;
  data: string;
  perturb?: PerturbKind;
  ratio?: number;
  seed?: number;
  batch?: number;
  quiet?: boolean;
  /** Shorten questions that do not fit the model's context instead of refusing them (E_DATA). */
  truncate?: boolean;
  /** Load a model whose tensors hold NaN/Inf (default: E_CHECKPOINT naming the tensor). */
  allowNonFinite?: boolean;
}

/** One JSON line per record: {id, tokens, logprobs} of the answer tokens. */
export async function* answerLogprobs(o: LogprobsOptions): AsyncGenerator<{ id: string; tokens: string[]; logprobs: number[] }> {
  checkInputFile(o.data, '--data');
  checkInputFolder(o.model, '--model');
  const data = await loadDataset(o.data);
  const bundle = await loadModelBundle(o.model, { allowNonFinite: o.allowNonFinite === true });
  let records = data.records;
  const progress = createProgress({ label: 'logprobs', total: records.length, quiet: o.quiet });
  try {
    const fitted = fitToContext(bundle, records, { source: o.data, lineOf: (i) => recordLine(data.records[i]), truncate: o.truncate });
    if (fitted.truncated.length && !o.quiet) process.stderr.write(`logprobs: shortened ${fitted.truncated.length} questions to fit the model's context (--truncate)\n`);
    records = fitted.records;
    const size = o.batch ?? 8;
    for (let i = 0; i < records.length; i += size) {
      const chunk = records.slice(i, i + size);
      const batch = await batchOf(bundle, chunk);
      const r = await bundle.model.logprobs(batch, { perturb: o.perturb ?? 'none', ratio: o.ratio, seed: o.seed });
      batch.pixels.dispose();
      let off = 0;
      for (let k = 0; k < chunk.length; k++) {
        const ids = batch.rows[k].answer as number[];
        yield {
          id: chunk[k].id,
          tokens: ids.map((id) => bundle.tokenizer.tokenText(id)),
          logprobs: Array.from(r.logprobs.subarray(off, off + ids.length)),
        };
        off += ids.length;
      }
      progress.tick(chunk.length);
    }
  } finally {
    progress.stop();
    disposeBundle(bundle);
  }
}

