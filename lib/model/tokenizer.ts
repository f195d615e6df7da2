/**
 * Tokenizers through @huggingface/tokenizers (tokenizer.json + tokenizer_config.json, as transformers reads
 * them), and the word-level tokenizer `hscr init` builds from a corpus for the toy presets.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { HscrError } from '../errors';

export interface EncodeOptions {
  /** Prepend the BOS id (default: tokenizer_config.json's add_bos_token, else true, as LLaMA/Mistral do). */
  addBos?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (<s>, </s>, <pad>, ...) from the text (default false). */
  skipSpecial?: boolean;
}

/** A tokenizer.json document (the Hugging Face `tokenizers` serialisation). */
export interface TokenizerJson {
  model: Record<string, unknown>;
  added_tokens: AddedTokenJson[];
  normalizer: Record<string, unknown> | null;
  pre_tokenizer: Record<string, unknown> | null;
  post_processor: Record<string, unknown> | null;
  decoder: Record<string, unknown> | null;
  [key: string]: unknown;
}

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

type Json = Record<string, unknown>;

/** tokenizer_config.json names special tokens as strings or as AddedToken objects. */
function tokenName(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as Json).content === 'string') return (value as Json).content as string;
  return undefined;
}

export class HscrTokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  /** The tokenizer's pad token, else its unk token (what LLaVA's training sets pad to for LLaMA/Mistral). */
  readonly padId: number;
  /** The id of "<image>" when the vocabulary has one (transformers' LLaVA tokenizers, hscr's corpus tokenizer). */
  readonly imageTokenId: number | null;
  /** Whether encode() prepends BOS by default (tokenizer_config.json's add_bos_token). */
  readonly addsBos: boolean;
  private readonly tokenizer: Tokenizer;
  private readonly specialIds: Set<number>;
  private readonly cleanUpSpaces: boolean;

  /** `source` names the files in error messages. */
  constructor(json: TokenizerJson, config: Json = {}, source = 'tokenizer.json') {
    const names = {
      bos: tokenName(config.bos_token) ?? '<s>',
      eos: tokenName(config.eos_token) ?? '</s>',
      unk: tokenName(config.unk_token) ?? '<unk>',
      pad: tokenName(config.pad_token),
    };
    // tokenizers.js reads the special tokens of word-level models from the config, as plain strings.
    const plainConfig: Json = { ...config, bos_token: names.bos, eos_token: names.eos, unk_token: names.unk, pad_token: names.pad ?? null };
    try {
      this.tokenizer = new Tokenizer(json, plainConfig);
    } catch (e) {
      throw new HscrError(`${source}: not a tokenizer @huggingface/tokenizers can load (${(e as Error).message})`, 'E_CONFIG', source);
    }
    const id = (name: string, field: string) => {
      const found = this.tokenizer.token_to_id(name);
      if (found === undefined) throw new HscrError(`${source}: ${field} "${name}" is not in the vocabulary`, 'E_CONFIG', name);
      return found;
    };
    this.bosId = id(names.bos, 'bos_token');
    this.eosId = id(names.eos, 'eos_token');
    this.unkId = id(names.unk, 'unk_token');
    this.padId = names.pad === undefined ? this.unkId : id(names.pad, 'pad_token');
    this.imageTokenId = this.tokenizer.token_to_id('<image>') ?? null;
    this.vocabSize = Math.max(...this.tokenizer.get_vocab(true).values()) + 1;
    this.specialIds = new Set(this.tokenizer.get_added_tokens_decoder().keys());
    for (const [tokenId, token] of this.tokenizer.get_added_tokens_decoder()) if (!token.special) this.specialIds.delete(tokenId);
    this.cleanUpSpaces = config.clean_up_tokenization_spaces === true;
    this.addsBos = config.add_bos_token !== false;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new HscrError('text to encode must be a string', 'E_ARG', text);
    const ids = this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    const bad = ids.findIndex((x) => !Number.isInteger(x));
    if (bad >= 0) throw new HscrError(`the tokenizer has no id for a piece of "${text}" (no unk token?)`, 'E_CONFIG', text);
    return (options.addBos ?? this.addsBos) ? [this.bosId, ...ids] : ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    this.checkIds(ids);
    if (ids.length === 0) return '';
    const kept = options.skipSpecial ? ids.filter((x) => !this.specialIds.has(x)) : [...ids];
    if (kept.length === 0) return '';
    return this.tokenizer.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: this.cleanUpSpaces });
  }

  /** The vocabulary entry of one id (e.g. "▁lung"). */
  tokenText(id: number): string {
    this.checkIds([id]);
    const text = this.tokenizer.id_to_token(id);
    if (text === undefined) throw new HscrError(`token id ${id} has no vocabulary entry`, 'E_ARG', id);
    return text;
  }

  /** The id of a vocabulary entry, if there is one. */
  tokenId(text: string): number | undefined {
    return this.tokenizer.token_to_id(text);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  private checkIds(ids: readonly number[]): void {
    if (!Array.isArray(ids)) throw new HscrError('token ids must be an array', 'E_ARG', ids);
    for (const x of ids) {
      if (!Number.isInteger(x) || x < 0 || x >= this.vocabSize) {
        throw new HscrError(`token id must be an integer in [0, ${this.vocabSize})`, 'E_ARG', x);
      }
    }
  }
}

async function readJson(file: string, required: boolean): Promise<Json | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new HscrError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'E_IO', file);
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
    return value as Json;
  } catch (e) {
    throw new HscrError(`${file}: not a valid JSON object (${(e as Error).message})`, 'E_CONFIG', file);
  }
}

/** Loads <dir>/tokenizer.json with tokenizer_config.json and special_tokens_map.json when present. */
export async function loadTokenizer(dir: string): Promise<HscrTokenizer> {
  const file = path.join(dir, 'tokenizer.json');
  const json = (await readJson(file, true)) as TokenizerJson;
  const config = (await readJson(path.join(dir, 'tokenizer_config.json'), false)) ?? {};
  const map = (await readJson(path.join(dir, 'special_tokens_map.json'), false)) ?? {};
  // tokenizer_config.json wins; special_tokens_map.json fills what it leaves out (as transformers merges them).
  const merged: Json = { ...map, ...Object.fromEntries(Object.entries(config).filter(([, v]) => v !== null && v !== undefined)) };
  return new HscrTokenizer(json, merged, file);
}

// ---- the corpus tokenizer -----------------------------------------------------------------------

/**
 * Special tokens of the corpus tokenizer, ids 0.. in this order. <unk>, <s>, </s> sit where LLaMA/Mistral
 * have them; [INST] and [/INST] are whole tokens so the mistral_instruct template costs one id each.
 */
export const CORPUS_SPECIAL_TOKENS = ['<unk>', '<s>', '</s>', '<pad>', '<image>', '[INST]', '[/INST]'] as const;

const METASPACE = '\u2581';
/**
 * After Metaspace turns spaces into ▁: a letter/digit run with the ▁ before it, a lone ▁, or any other single
 * character. The pattern covers every character, so Split never leaves a gap to treat differently.
 */
const PIECE_PATTERN = `${METASPACE}?[\\p{L}\\p{N}]+|${METASPACE}|[^\\p{L}\\p{N}${METASPACE}]`;
const PIECE_REGEX = new RegExp(PIECE_PATTERN, 'gu');
const WORD_RUN = /^[\p{L}\p{N}]+$/u;
/** Always in the vocabulary: the lone ▁, whitespace other than space, and printable ASCII punctuation. */
const BASE_PIECES = [METASPACE, '\n', '\t', ...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).filter((c) => /[^\sA-Za-z0-9]/.test(c))];

export interface CorpusTokenizerOptions {
  /** Cap on the vocabulary size (special and base pieces included); the most frequent pieces are kept. */
  maxVocab?: number;
}

/** The corpus' words: its whitespace-separated runs, with repeats (frequency decides what a capped vocabulary keeps). */
export function corpusWords(text: string): string[] {
  return text.split(/\s+/u).filter((w) => w !== '');
}

/** The pieces a word becomes after a space, plus the bare form of its letter runs (after a newline or "-"). */
function piecesOf(word: string): string[] {
  const out: string[] = [];
  for (const piece of (METASPACE + word).match(PIECE_REGEX) ?? []) {
    const bare = piece.startsWith(METASPACE) ? piece.slice(1) : piece;
    if (WORD_RUN.test(bare)) out.push(METASPACE + bare, bare);
    else out.push(piece);
  }
  return out;
}

function rankPieces(words: readonly string[]): string[] {
  const counts = new Map<string, number>();
  for (const word of words) {
    if (typeof word !== 'string') throw new HscrError('corpus words must be strings', 'E_ARG', word);
    for (const piece of piecesOf(word)) counts.set(piece, (counts.get(piece) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([piece]) => piece);
}

/**
 * A word-level tokenizer.json for a corpus: WordLevel model over ▁-marked pieces (Metaspace pre-tokenizer,
 * then a Split isolating punctuation), TemplateProcessing adding <s>, Metaspace decoder.
 *
 * Round trip: decode(encode(x)) === x for text whose pieces are all in the vocabulary, with one whitespace
 * rule: a single leading space is dropped (as with LLaMA's sentencepiece, "▁" doubles as the start marker).
 * Runs of spaces, newlines and tabs survive; a letter/digit run missing from the vocabulary becomes <unk>.
 */
export function buildCorpusTokenizer(words: readonly string[], options: CorpusTokenizerOptions = {}): TokenizerJson {
  if (!Array.isArray(words)) throw new HscrError('corpus words must be an array of strings', 'E_ARG', words);
  const fixed = [...CORPUS_SPECIAL_TOKENS, ...BASE_PIECES];
  const maxVocab = options.maxVocab ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isInteger(maxVocab) || maxVocab < fixed.length) {
    throw new HscrError(`maxVocab must be an integer ≥ ${fixed.length} (special and base pieces)`, 'E_ARG', options.maxVocab);
  }
  const vocab: Record<string, number> = {};
  let size = 0;
  for (const piece of [...fixed, ...rankPieces(words)]) {
    if (size >= maxVocab) break;
    if (!Object.hasOwn(vocab, piece)) vocab[piece] = size++;
  }
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: CORPUS_SPECIAL_TOKENS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Metaspace', replacement: METASPACE, prepend_scheme: 'first', split: false },
        { type: 'Split', pattern: { Regex: PIECE_PATTERN }, behavior: 'Isolated', invert: false },
      ],
    },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'Metaspace', replacement: METASPACE, prepend_scheme: 'first', split: false },
    model: { type: 'WordLevel', vocab, unk_token: '<unk>' },
  };
}

/** tokenizer_config.json for a corpus tokenizer (LLaMA-style: BOS added, no EOS, <pad> for padding). */
export function corpusTokenizerConfig(): Json {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: '<pad>',
    additional_special_tokens: ['<image>', '[INST]', '[/INST]'],
    clean_up_tokenization_spaces: false,
    model_max_length: 4096,
  };
}

/** special_tokens_map.json for a corpus tokenizer. */
export function corpusSpecialTokensMap(): Json {
  const token = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false });
  return {
    bos_token: token('<s>'),
    eos_token: token('</s>'),
    unk_token: token('<unk>'),
    pad_token: token('<pad>'),
    additional_special_tokens: [token('<image>'), token('[INST]'), token('[/INST]')],
  };
}
