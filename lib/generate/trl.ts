/**
 * TRL's preference format (DPOTrainer): one JSON line per pair, {prompt, chosen, rejected, images}, each text
 * either a plain string ("standard") or a list of chat messages ("conversational", the form TRL's vision
 * examples use: the user turn holds {"type": "image"} and {"type": "text"} parts).
 *
 * Read: anywhere hscr reads ranked preferences (`hscr train --prefs`), a TRL line is one sample whose
 * `rejected` is its one dispreferred answer (a list of answers, most similar first, is accepted too); the
 * question is the prompt's text with any "<image>" placeholder removed, the image is images[0].
 * Written: `hscr export-trl` / writeTrlFile turn each ranked list into one conversational TRL line per
 * dispreferred answer (TRL pairs have one rejected each), id "<id>/<rank>".
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readJsonl } from '../data/jsonl';
import { HscrError, dataError } from '../errors';
import type { RankedRecord, RecordSource } from './types';

export interface TrlTextPart {
  type: 'text';
  text: string;
}
export interface TrlImagePart {
  type: 'image';
}
export interface TrlMessage {
  role: 'user' | 'assistant' | 'system';
  content: string | (TrlTextPart | TrlImagePart)[];
}

/** One TRL preference line. */
export interface TrlPreference {
  id?: string;
  images: string[];
  prompt: string | TrlMessage[];
  chosen: string | TrlMessage[];
  rejected: string | TrlMessage[];
  /** hscr's extras: the rank of `rejected` in its ranked list (0 = most similar to chosen) and its similarity. */
  rank?: number;
  similarity?: number;
}

type Fields = Record<string, unknown>;

/** A TRL line: prompt/chosen/rejected and no hscr `question`. */
export function isTrlRecord(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && 'prompt' in value && 'chosen' in value && 'rejected' in value && !('question' in value);
}

function textOf(value: unknown, field: string, src: RecordSource): string {
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) throw dataError(src.file, src.line, field, 'expected a string or a list of chat messages', value);
  const texts: string[] = [];
  value.forEach((m, i) => {
    const content = (m as { content?: unknown } | null)?.content;
    if (typeof content === 'string') texts.push(content);
    else if (Array.isArray(content)) {
      for (const part of content as { type?: unknown; text?: unknown }[]) if (part?.type === 'text' && typeof part.text === 'string') texts.push(part.text);
    } else throw dataError(src.file, src.line, `${field}[${i}].content`, 'expected a string or a list of parts', content);
  });
  return texts.join('\n');
}

/** A TRL line as the ranked record hscr's trainer reads (no replacements or similarities are known). */
export function fromTrl(value: Fields, src: RecordSource): RankedRecord {
  const images = value.images ?? (typeof value.image === 'string' ? [value.image] : undefined);
  if (!Array.isArray(images) || typeof images[0] !== 'string') throw dataError(src.file, src.line, 'images', 'expected a list holding the image path', images);
  if (images.length > 1) throw dataError(src.file, src.line, 'images', 'hscr models take one image per sample', images);
  const question = textOf(value.prompt, 'prompt', src).replace(/<image>\s*/g, '').trim();
  if (question === '') throw dataError(src.file, src.line, 'prompt', 'holds no question text', value.prompt);
  const rejectedList = Array.isArray(value.rejected) && value.rejected.every((r) => typeof r === 'string' || Array.isArray(r)) ? value.rejected : [value.rejected];
  const id = value.id === undefined ? `trl-${src.index}` : typeof value.id === 'number' ? String(value.id) : value.id;
  if (typeof id !== 'string' || id === '') throw dataError(src.file, src.line, 'id', 'expected a non-empty string', value.id);
  return {
    id,
    image: images[0] as string,
    question,
    chosen: textOf(value.chosen, 'chosen', src).trim(),
    rejected: rejectedList.map((r, i) => ({ text: textOf(r, `rejected[${i}]`, src).trim(), replacements: [], similarity: Number.NaN })),
  };
}

/** One conversational TRL line per dispreferred answer of a ranked record. */
export function toTrl(record: RankedRecord): TrlPreference[] {
  const prompt: TrlMessage[] = [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: record.question }] }];
  const answer = (text: string): TrlMessage[] => [{ role: 'assistant', content: [{ type: 'text', text }] }];
  return record.rejected.map((r, rank) => ({
    id: `${record.id}/${rank}`,
    images: [record.image],
    prompt,
    chosen: answer(record.chosen),
    rejected: answer(r.text),
    rank,
    ...(Number.isFinite(r.similarity) ? { similarity: r.similarity } : {}),
  }));
}

export interface TrlExportRequest {
  /** ranked.jsonl (hscr rerank's output). */
  input: string;
  /** TRL JSONL to write (replaced). */
  out: string;
}

/** Writes a ranked.jsonl as TRL preference JSONL; image paths become absolute (TRL resolves from its cwd). */
export async function writeTrlFile(request: TrlExportRequest): Promise<{ samples: number; pairs: number }> {
  if (request === null || typeof request !== 'object' || typeof request.input !== 'string' || typeof request.out !== 'string') {
    throw new HscrError('writeTrlFile: expected { input, out }', 'E_ARG', request);
  }
  // Imported here: types.ts imports this module for the reading side.
  const { parseRankedRecord } = await import('./types');
  const dir = path.dirname(path.resolve(request.input));
  const lines: string[] = [];
  let samples = 0;
  let index = 0;
  for await (const { line, value } of readJsonl(request.input)) {
    const record = parseRankedRecord(value, { file: request.input, line, index: index++ });
    samples++;
    for (const pair of toTrl({ ...record, image: path.resolve(dir, record.image) })) lines.push(JSON.stringify(pair));
  }
  const temp = `${request.out}.tmp-${process.pid}`;
  fs.writeFileSync(temp, lines.length ? `${lines.join('\n')}\n` : '');
  fs.renameSync(temp, request.out);
  return { samples, pairs: lines.length };
}
