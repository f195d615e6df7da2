import path from 'path';
import type { Command } from 'commander';
import { PRESET_NAMES } from '../model/presets';
import { answerLogprobs, initModel, type InitOptions, type LogprobsOptions } from '../model/folder';
import { integer, number, SEED_MAX } from './options';

// Kept importable from here for older callers; the package root exports them.
export { answerLogprobs, initModel, type InitOptions, type LogprobsOptions };


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
    .option('--ratio <x>', 'share of visual units dropped', number('--ratio', 0, 1), 0.7)
    .option('--seed <n>', 'perturbation seed', integer('--seed', 0, SEED_MAX), 0)
    .option('--batch <n>', 'records per forward pass', integer('--batch', 1), 8)
    .option('--json', 'JSON lines (the only output format; kept for scripts that pass it)')
    .option('--allow-non-finite', 'load a model/adapter/checkpoint whose tensors hold NaN/Inf (default: refused, naming the tensor)')
    .option('--truncate', "shorten questions that do not fit the model's context (default: refuse them)")
    .option('--quiet', 'no progress bar')
    .action(async (o: LogprobsOptions) => {
      for await (const line of answerLogprobs(o)) process.stdout.write(JSON.stringify(line) + '\n');
    });
}
