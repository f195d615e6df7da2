/**
 * Reading JSON Lines and JSON arrays with the line each record starts on, so that every complaint about
 * a record can name file and line. (The resumable *writer* is lib/util/jsonl-writer.ts.)
 */
import { createReadStream, promises as fsp } from 'node:fs';
import * as readline from 'node:readline';
import { HscrError, dataError } from '../errors';

export interface LineRecord {
  /** 1-based line the record starts on. */
  line: number;
  value: unknown;
}

function ioError(file: string, err: unknown): HscrError {
  if (err instanceof HscrError) return err;
  return new HscrError(`${file}: cannot read: ${(err as Error).message}`, 'E_IO', file);
}

function parseOrFail(text: string, file: string, line: number): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw dataError(file, line, undefined, `not valid JSON (${(err as Error).message})`, text.slice(0, 80));
  }
}

/**
 * Why the first record line does not parse when the file is one JSON document spread over several lines (a
 * pretty-printed object): "line 1: not valid JSON" would send the user looking for a typo that is not there.
 */
async function documentNotLines(file: string, line: number): Promise<HscrError | undefined> {
  let text: string;
  try {
    const stat = await fsp.stat(file);
    if (stat.size > 64 << 20) return undefined;
    text = (await fsp.readFile(file, 'utf8')).replace(/^\uFEFF/, '');
  } catch {
    return undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const lines = text.trimEnd().split('\n').length;
  if (lines < 2) return undefined;
  const what = Array.isArray(value) ? 'array' : typeof value === 'object' && value !== null ? 'object' : typeof value;
  return dataError(file, line, undefined, `the file is one JSON ${what} spread over ${lines} lines (pretty-printed), not JSON Lines: write one record per line (e.g. jq -c .)`);
}

/** Yields each non-blank line of a JSONL file, parsed. Bad JSON is E_DATA naming file and line. */
export async function* readJsonl(file: string): AsyncGenerator<LineRecord> {
  const lines = readline.createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let line = 0;
  let first = true;
  try {
    for await (const text of lines) {
      line++;
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = parseOrFail(line === 1 ? text.replace(/^\uFEFF/, '') : text, file, line);
      } catch (err) {
        if (first) throw (await documentNotLines(file, line)) ?? err;
        throw err;
      }
      first = false;
      yield { line, value };
    }
  } catch (err) {
    throw ioError(file, err);
  } finally {
    lines.close();
  }
}

/** All records of a JSONL file. */
export async function readJsonlAll(file: string): Promise<LineRecord[]> {
  const out: LineRecord[] = [];
  for await (const rec of readJsonl(file)) out.push(rec);
  return out;
}

/**
 * Where a top-level element of a JSON array starts and ends. JSON.parse gives no positions, so the text is
 * scanned once (strings and nesting only); each slice is then parsed by JSON.parse itself.
 */
interface Slice {
  start: number;
  end: number;
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  return i;
}

/** End (exclusive) of the element starting at i: the next ',' or ']' at depth 0 outside strings. */
function elementEnd(text: string, i: number): number {
  let depth = 0;
  for (; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      if (depth === 0) return i;
      depth--;
    } else if (c === ',' && depth === 0) return i;
  }
  return i;
}

function arraySlices(text: string, file: string, lineAt: (offset: number) => number): Slice[] {
  let i = skipSpace(text, text.charCodeAt(0) === 0xfeff ? 1 : 0);
  if (text[i] !== '[') throw dataError(file, lineAt(i), undefined, 'expected a JSON array ("[" …)', text.slice(i, i + 40));
  const slices: Slice[] = [];
  i = skipSpace(text, i + 1);
  if (text[i] === ']') return slices;
  for (;;) {
    const end = elementEnd(text, i);
    slices.push({ start: i, end });
    if (end >= text.length) throw dataError(file, lineAt(i), undefined, 'array not closed (truncated file?)');
    if (text[end] === ']') return slices;
    i = skipSpace(text, end + 1);
  }
}

function lineIndex(text: string): (offset: number) => number {
  const starts = [0];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return (offset) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
}

/**
 * Offset of the first syntax error in JSON text. Only run after JSON.parse has failed, because V8's
 * messages carry a position for some errors and not for others (e.g. "Unexpected token ']'" after a
 * trailing comma). A plain recursive-descent check of the JSON grammar.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw i;
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const literal = (word: string) => {
    for (const c of word) if (text[i++] !== c) (i--, fail());
  };
  const string = () => {
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text.charCodeAt(i) < 0x20) fail();
      if (text[i] === '\\') {
        i++;
        if (text[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail();
          i += 4;
        } else if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) fail();
      }
      i++;
    }
    if (i >= text.length) fail();
    i++;
  };
  const number = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m || m[0] === '' || m[0] === '-') fail();
    i += m![0].length;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') return members('}', () => {
      ws();
      if (text[i] !== '"') fail();
      string();
      ws();
      if (text[i++] !== ':') (i--, fail());
      value();
    });
    if (c === '[') return members(']', value);
    if (c === '"') return string();
    if (c === 't') return literal('true');
    if (c === 'f') return literal('false');
    if (c === 'n') return literal('null');
    number();
  };
  const members = (close: string, item: () => void) => {
    i++;
    ws();
    if (text[i] === close) return void i++;
    for (;;) {
      item();
      ws();
      if (text[i] === ',') i++;
      else if (text[i] === close) return void i++;
      else fail();
    }
  };
  try {
    value();
    ws();
    if (i < text.length) fail();
  } catch (at) {
    if (typeof at === 'number') return Math.min(at, text.length);
    throw at;
  }
  return text.length;
}

function failureLine(body: string, startLine: number): number {
  const upTo = body.slice(0, jsonErrorOffset(body));
  return startLine + (upTo.match(/\n/g)?.length ?? 0);
}

/**
 * Reads a JSON file holding an array and returns its elements with the line each starts on. A syntax
 * error is E_DATA naming the line it is on.
 */
export async function readJsonArray(file: string): Promise<LineRecord[]> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    throw ioError(file, err);
  }
  const lineAt = lineIndex(text);
  const records: LineRecord[] = [];
  for (const { start, end } of arraySlices(text, file, lineAt)) {
    const body = text.slice(start, end);
    const line = lineAt(start);
    try {
      records.push({ line, value: JSON.parse(body) });
    } catch (err) {
      const message = (err as Error).message.replace(/\s+/g, ' ');
      throw dataError(file, failureLine(body, line), undefined, `not valid JSON (${message})`, body.slice(0, 80));
    }
  }
  return records;
}
