/**
 * The non-weight files of `hscr init`: config.json, the tokenizer files and preprocessor_config.json of a
 * preset model. (model.safetensors comes from the native initialiser.)
 */
import { promises as fsp } from 'node:fs';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HscrError } from '../errors';
import { LLAVA_IMAGE_TOKEN_INDEX, writeFileAtomic, writeModelConfig, type Architecture, type ModelConfig } from './config';
import { clipPreprocessing, writePreprocessing } from './image';
import { PRESET_INFO, PRESET_NAMES, defaultMistralTokenizerDir, presetConfig, type PresetName } from './presets';
import {
  HscrTokenizer,
  buildCorpusTokenizer,
  corpusSpecialTokensMap,
  corpusTokenizerConfig,
  type TokenizerJson,
} from './tokenizer';

export interface InitFilesOptions {
  preset: PresetName;
  /** Build a word-level tokenizer from these words (see corpusWords()). */
  corpusWords?: readonly string[];
  /** Or take the tokenizer files from this folder (the `small` preset's default: the Mistral-7B tokenizer). */
  tokenizerDir?: string;
  /** config.json layout (default transformers'). */
  layout?: Architecture;
  /** Override the preset's sliding window (tests shrink it below their sequence lengths). */
  slidingWindow?: number | null;
  /** Replace the files of a model already in `dir` (default: refuse, so nothing is lost by mistake). */
  overwrite?: boolean;
}

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'] as const;

/** File name → contents: everything is prepared before the first byte is written. */
type Files = Map<string, string>;

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

async function tokenizerFiles(options: InitFilesOptions): Promise<{ files: Files; tokenizer: HscrTokenizer; hasPad: boolean }> {
  const files: Files = new Map();
  if (options.corpusWords !== undefined) {
    const tokenizerJson = buildCorpusTokenizer(options.corpusWords, { maxVocab: PRESET_INFO[options.preset].maxVocab });
    files.set('tokenizer.json', json(tokenizerJson));
    files.set('tokenizer_config.json', json(corpusTokenizerConfig()));
    files.set('special_tokens_map.json', json(corpusSpecialTokensMap()));
    return { files, tokenizer: new HscrTokenizer(tokenizerJson, corpusTokenizerConfig()), hasPad: true };
  }
  const dir = options.tokenizerDir ?? defaultMistralTokenizerDir();
  for (const name of TOKENIZER_FILES) {
    try {
      files.set(name, await fsp.readFile(path.join(dir, name), 'utf8'));
    } catch (e) {
      if (name === 'tokenizer.json' || (e as NodeJS.ErrnoException).code !== 'ENOENT') {
        const hint = options.tokenizerDir ? '' : `; the ${options.preset} preset needs Mistral-7B's tokenizer: pass its folder (tokenizerDir / --tokenizer <dir>)`;
        throw new HscrError(`${path.join(dir, name)}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})${hint}`, 'E_IO', dir);
      }
    }
  }
  const parse = (name: string) => {
    const text = files.get(name);
    if (text === undefined) return {};
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new HscrError(`${path.join(dir, name)}: not valid JSON (${(e as Error).message})`, 'E_CONFIG', name);
    }
  };
  const config = { ...parse('special_tokens_map.json'), ...parse('tokenizer_config.json') };
  const tokenizer = new HscrTokenizer(parse('tokenizer.json') as TokenizerJson, config, path.join(dir, 'tokenizer.json'));
  return { files, tokenizer, hasPad: config.pad_token !== undefined && config.pad_token !== null };
}

function checkOptions(options: InitFilesOptions): void {
  if (!PRESET_NAMES.includes(options.preset)) throw new HscrError(`preset must be one of ${PRESET_NAMES.join(', ')}`, 'E_ARG', options.preset);
  if (options.corpusWords !== undefined && options.tokenizerDir !== undefined) {
    throw new HscrError('give corpusWords or tokenizerDir, not both', 'E_ARG', options.tokenizerDir);
  }
  if (options.corpusWords === undefined && options.tokenizerDir === undefined && PRESET_INFO[options.preset].tokenizer === 'corpus') {
    throw new HscrError(`the ${options.preset} preset builds its tokenizer from a corpus: give corpusWords (or a tokenizerDir)`, 'E_ARG', options.preset);
  }
  const layout = options.layout ?? 'llava-hf';
  if (layout !== 'llava-hf' && layout !== 'llava-med') throw new HscrError('layout must be "llava-hf" or "llava-med"', 'E_ARG', layout);
}

/**
 * Writes config.json (the preset, sized to the tokenizer's vocabulary), tokenizer.json with
 * tokenizer_config.json and special_tokens_map.json, and preprocessor_config.json into `dir`; returns the
 * ModelConfig. Bad options fail before anything is written.
 */
export async function writeInitFiles(dir: string, options: InitFilesOptions): Promise<ModelConfig> {
  checkOptions(options);
  const layout = options.layout ?? 'llava-hf';
  if (!options.overwrite && fs.existsSync(path.join(dir, 'config.json'))) {
    throw new HscrError(`${dir} already holds a model (config.json); pass overwrite to replace it`, 'E_ARG', dir);
  }
  const { files, tokenizer, hasPad } = await tokenizerFiles(options);
  const cfg: ModelConfig = {
    ...presetConfig(options.preset, {
      vocabSize: tokenizer.vocabSize,
      imageTokenIndex: tokenizer.imageTokenId ?? LLAVA_IMAGE_TOKEN_INDEX,
      padTokenId: hasPad ? tokenizer.padId : null,
      bosTokenId: tokenizer.bosId,
      eosTokenId: tokenizer.eosId,
      slidingWindow: options.slidingWindow,
    }),
    architecture: layout,
  };
  fs.mkdirSync(dir, { recursive: true });
  writeModelConfig(dir, cfg, layout);
  for (const [name, text] of files) writeFileAtomic(path.join(dir, name), text);
  writePreprocessing(dir, clipPreprocessing(cfg.vision.imageSize, 'pad'));
  return cfg;
}
