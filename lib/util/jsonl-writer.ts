/**
 * Resumable JSONL output for the long CLIs (generate, rerank, eval): one record per line, appended and
 * handed to the OS line by line, so a killed run keeps every complete line and the next run skips the ids
 * already written. The file is only ever opened for appending; the one thing ever removed is the
 * partial last line a kill can leave behind.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { HscrError, dataError } from '../errors';
import { claimOutput, ioError, lockOutput, removeOutput, type OutputFingerprint, type OutputLock } from './output';

/** The partial last line of a killed run, cut off when the file was reopened. */
export interface TruncatedTail {
  /** Its line number (1-based). */
  line: number;
  /** Bytes removed. */
  bytes: number;
  /** Its start, for the message. */
  preview: string;
}

export interface ResumableJsonlOptions {
  /** The record field that identifies a record (default 'id'); strings and numbers, compared as strings. */
  idField?: string;
  /**
   * What makes this output (see lib/util/output.ts): kept in <file>.run.json; a file that holds records made
   * with another fingerprint is refused (E_DATA) before anything is appended.
   */
  fingerprint?: OutputFingerprint;
  /** Hold the output's exclusive lock until close() (a second writer is E_LOCKED at once). */
  lock?: boolean | string;
  /** Start over: the file and its fingerprint are removed first (under the lock). */
  overwrite?: boolean;
  /** Ids the input holds: a file holding any other id is refused (E_DATA) rather than kept. */
  knownIds?: ReadonlySet<string>;
}

export interface ResumableJsonl<T> {
  readonly path: string;
  /** Ids already in the file, plus those written since. */
  readonly done: Set<string>;
  /** Set when a partial last line was cut off. */
  readonly truncated?: TruncatedTail;
  /** Appends one record; resolves once the line is with the OS. E_ARG for a record without id or with an id already written. */
  write(record: T): Promise<void>;
  /** Waits for pending writes, syncs to disk, closes. Safe to call twice. */
  close(): Promise<void>;
}

interface Scan {
  done: Set<string>;
  /** Byte length of the complete lines (the file is cut back to this when the tail is partial). */
  completeBytes: number;
  /** The file's last line is complete but has no '\n'; the next write adds it first. */
  missingNewline: boolean;
  truncated?: TruncatedTail;
}

function recordId(record: unknown, idField: string): string | undefined {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return undefined;
  const id = (record as Record<string, unknown>)[idField];
  if (typeof id === 'string' && id !== '') return id;
  if (typeof id === 'number' && Number.isFinite(id)) return String(id);
  return undefined;
}

function parseLine(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Reads the ids of the complete lines; a line that is not a record with an id is E_DATA, nothing is changed. */
async function scanExisting(file: string, idField: string): Promise<Scan> {
  const scan: Scan = { done: new Set(), completeBytes: 0, missingNewline: false };
  let pending: Buffer[] = [];
  let line = 0;
  const take = (bytes: Buffer) => {
    line++;
    const text = bytes.toString('utf8');
    if (text.trim() !== '') addId(text, line, file, idField, scan.done);
    scan.completeBytes += bytes.length + 1;
  };
  try {
    for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
      let start = 0;
      for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
        take(Buffer.concat([...pending, chunk.subarray(start, nl)]));
        pending = [];
        start = nl + 1;
      }
      if (start < chunk.length) pending.push(chunk.subarray(start));
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return scan;
    throw err instanceof HscrError ? err : new HscrError(`${file}: cannot read: ${(err as Error).message}`, 'E_IO', file);
  }
  if (pending.length > 0) handleTail(Buffer.concat(pending), line + 1, file, idField, scan);
  return scan;
}

function addId(text: string, line: number, file: string, idField: string, done: Set<string>): void {
  const record = parseLine(text);
  if (record === undefined) throw dataError(file, line, undefined, 'not valid JSON (refusing to append to this file)', text.slice(0, 80));
  const id = recordId(record, idField);
  if (id === undefined) throw dataError(file, line, idField, 'missing or not a string/number', (record as Record<string, unknown>)?.[idField]);
  if (done.has(id)) throw dataError(file, line, idField, 'id already written on an earlier line', id);
  done.add(id);
}

/**
 * The last line has no '\n'. A complete record (a file edited by hand) is kept; anything else that looks
 * like the start of a record is the partial write of a killed run and is cut off. Text that does not start
 * like a record is E_DATA rather than cut, so pointing --out at the wrong file loses nothing.
 */
function handleTail(tail: Buffer, line: number, file: string, idField: string, scan: Scan): void {
  const text = tail.toString('utf8');
  if (text.trim() === '') {
    scan.truncated = { line, bytes: tail.length, preview: '' };
    return;
  }
  if (recordId(parseLine(text), idField) !== undefined) {
    addId(text, line, file, idField, scan.done);
    scan.completeBytes += tail.length;
    scan.missingNewline = true;
    return;
  }
  if (!text.trimStart().startsWith('{')) throw dataError(file, line, undefined, 'last line is not a JSON record (refusing to append to this file)', text.slice(0, 80));
  scan.truncated = { line, bytes: tail.length, preview: text.slice(0, 80) };
}

async function writeAll(handle: fsp.FileHandle, bytes: Buffer): Promise<void> {
  for (let offset = 0; offset < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, offset);
    offset += bytesWritten;
  }
}

function serialize(record: unknown): string {
  try {
    return JSON.stringify(record);
  } catch (err) {
    throw new HscrError(`record cannot be written as JSON: ${(err as Error).message}`, 'E_ARG');
  }
}

/**
 * Opens (or creates, with its folder) a JSONL output file for appending, after reading the ids it already
 * holds. A partial last line left by a killed run is cut off and returned in `truncated`.
 */
export async function openResumableJsonl<T extends object>(file: string, opts: ResumableJsonlOptions = {}): Promise<ResumableJsonl<T>> {
  const idField = opts.idField ?? 'id';
  const lock: OutputLock | undefined = opts.lock ? lockOutput(file, typeof opts.lock === 'string' ? opts.lock : 'hscr') : undefined;
  try {
    return await openLocked<T>(file, opts, idField, lock);
  } catch (err) {
    lock?.release();
    throw err;
  }
}

async function openLocked<T extends object>(file: string, opts: ResumableJsonlOptions, idField: string, lock: OutputLock | undefined): Promise<ResumableJsonl<T>> {
  if (opts.overwrite) removeOutput(file);
  const scan = await scanExisting(file, idField);
  if (opts.knownIds) {
    const stray = [...scan.done].find((id) => !opts.knownIds!.has(id));
    if (stray !== undefined) throw new HscrError(`${file} holds a record whose id "${stray}" is not in the input; refusing to keep records of other data (pass --overwrite, or use another output)`, 'E_DATA', stray);
  }
  if (opts.fingerprint) claimOutput(file, opts.fingerprint, scan.done.size > 0 || scan.truncated !== undefined);
  try {
    await fsp.mkdir(path.dirname(path.resolve(file)), { recursive: true });
    if (scan.truncated) await fsp.truncate(file, scan.completeBytes);
  } catch (err) {
    throw ioError(file, 'prepare the output', err);
  }
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(file, 'a');
  } catch (err) {
    throw ioError(file, 'open for appending', err);
  }
  let prefix = scan.missingNewline ? '\n' : '';
  let queue: Promise<void> = Promise.resolve();
  let closed = false;
  // After a failed write the file may end in a partial line; appending more would bury it mid-file.
  let failure: HscrError | undefined;
  const done = scan.done;

  const write = (record: T): Promise<void> => {
    if (closed) return Promise.reject(new HscrError(`${file}: write after close`, 'E_ARG'));
    if (failure) return Promise.reject(failure);
    const id = recordId(record, idField);
    if (id === undefined) return Promise.reject(new HscrError(`${file}: record has no usable "${idField}"`, 'E_ARG', (record as Record<string, unknown>)[idField]));
    if (done.has(id)) return Promise.reject(new HscrError(`${file}: id already written`, 'E_ARG', id));
    let bytes: Buffer;
    try {
      bytes = Buffer.from(`${prefix}${serialize(record)}\n`, 'utf8');
    } catch (err) {
      return Promise.reject(err);
    }
    prefix = '';
    done.add(id);
    // Writes run one after another so lines never interleave, whoever calls without awaiting.
    const written = queue.then(() => writeAll(handle, bytes));
    queue = written.catch(() => undefined);
    return written.catch((err: Error) => {
      done.delete(id);
      failure ??= ioError(file, `write the record "${id}"`, err);
      throw failure;
    });
  };

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    try {
      await queue;
      await handle.sync();
    } catch (err) {
      throw ioError(file, 'write', err);
    } finally {
      await handle.close().catch(() => undefined);
      lock?.release();
    }
  };

  return { path: file, done, truncated: scan.truncated, write, close };
}
