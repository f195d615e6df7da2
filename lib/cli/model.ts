import fs from 'fs';
import path from 'path';
import type { Command } from 'commander';
import { HscrError } from '../errors';
import { loadDataset } from '../data';
import { phantomCorpus } from '../data/phantom';
import { batchOf, disposeBundle, loadModelBundle } from '../model/bundle';
import { writeInitFiles } from '../model/init-files';
import { PRESET_NAMES, parameterCount, type PresetName } from '../model/presets';
import { corpusWords } from '../model/tokenizer';
import { VisionLanguageModel, type PerturbKind } from '../model/vlm';
import { createProgress } from '../util/progress';
import { integer, number, SEED_MAX } from './options';
import { recordLine } from '../data/loaders';
import { fitToContext } from '../model/context';
import { checkInputFile, checkInputFolder, checkOutputFolder, ioError } from '../util/output';


export interface InitOptions {
  preset: PresetName;
  out: string;
  seed: number;
  corpus?: string;
  tokenizer?: string;
  layout?: 'llava-hf' | 'llava-med';
  overwrite?: boolean;
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw ioError(file, 'read', err);
  }
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
  const model = await VisionLanguageModel.create(cfg, { seed: o.seed });
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
  truncate?: boolean;
}

/** One JSON line per record: {id, tokens, logprobs} of the answer tokens. */
export async function* answerLogprobs(o: LogprobsOptions): AsyncGenerator<{ id: string; tokens: string[]; logprobs: number[] }> {
  checkInputFile(o.data, '--data');
  checkInputFolder(o.model, '--model');
  const data = await loadDataset(o.data);
  const bundle = await loadModelBundle(o.model);
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

export function registerModelCommands(program: Command): void {
  program
    .command('init')
    .description('write a randomly initialised model (config, safetensors weights, tokenizer, preprocessor config)')
    .requiredOption('--preset <name>', `model size: ${PRESET_NAMES.join(' | ')}`)
    .requiredOption('--out <dir>', 'output folder')
    .option('--seed <n>', 'initialisation seed', integer('--seed', 0, SEED_MAX), 0)
    .option('--corpus <file>', 'text whose words make the tiny preset\'s tokenizer (default: the phantom benchmark\'s words)')
    .option('--tokenizer <dir>', 'take tokenizer.json from this folder (small preset default: Mistral-7B\'s)')
    .option('--layout <layout>', 'checkpoint layout: llava-hf | llava-med', 'llava-hf')
    .option('--overwrite', 'replace a model already in --out')
    .action(async (o: InitOptions) => {
      const r = await initModel(o);
      process.stdout.write(`wrote ${path.resolve(r.dir)} (${o.preset}, ${r.parameters.toLocaleString('en')} parameters)\n`);
    });

  program
    .command('logprobs')
    .description('per-token log-probs of each record\'s answer, one JSON line per record')
    .requiredOption('--model <dir>', 'model folder')
    .requiredOption('--data <file>', 'records {id, image, question, answer} (JSONL or any supported benchmark format)')
    .option('--perturb <kind>', 'visual perturbation: none | token | pixel | patch | latent', 'none')
    .option('--ratio <r>', 'share of visual units dropped', number('--ratio', 0, 1), 0.7)
    .option('--seed <n>', 'perturbation seed', integer('--seed', 0, SEED_MAX), 0)
    .option('--batch <n>', 'records per forward pass', integer('--batch', 1), 8)
    .option('--json', 'JSON lines (the only output format; kept for scripts that pass it)')
    .option('--truncate', "shorten questions that do not fit the model's context (default: refuse them)")
    .option('--quiet', 'no progress bar')
    .action(async (o: LogprobsOptions) => {
      for await (const line of answerLogprobs(o)) process.stdout.write(JSON.stringify(line) + '\n');
    });
}
