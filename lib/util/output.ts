/**
 * Output ownership, shared by every command that writes something (eval, generate, rerank, sft, train,
 * phantom):
 * - an exclusive lock per output, so a second writer is refused at once instead of interleaving lines;
 * - a fingerprint of what made an output (model, adapter, data, settings) kept beside it, so a resume with
 *   other inputs or settings is refused instead of mixing two runs in one file;
 * - final files written to a temporary name in the same folder and renamed, so a full disk or a kill never
 *   leaves a 0-byte or cut final file;
 * - OS errors as HscrError (E_IO) naming the path, and output paths checked before any slow work.
 *
 * Why hand-written: the lock must notice at once that its holder was killed (kill -9, then resume right away
 * is the common case): the holder's pid and start time are in the lock file, and a lock whose process is gone
 * is stale. proper-lockfile judges staleness by mtime only (≥ 2 s, 10 s by default), so a resume right after
 * a kill would be refused as "locked". write-file-atomic's current major needs Node 22 (hscr supports 20.17),
 * and its errors would still need mapping to E_IO with the path; the helper below is 30 lines.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HscrError } from '../errors';

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'no such file or folder',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'is a folder, not a file',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EEXIST: 'already exists',
  EMFILE: 'too many open files',
};

/** An OS error as E_IO naming the path, what was being done and the errno code. HscrErrors pass through. */
export function ioError(file: string, what: string, err: unknown): HscrError {
  if (err instanceof HscrError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  const text = code ? `${code}${ERRNO_TEXT[code] ? `: ${ERRNO_TEXT[code]}` : ''}` : (err as Error)?.message ?? String(err);
  return new HscrError(`${file}: cannot ${what} (${text})`, 'E_IO', file);
}

// ---- atomic files -------------------------------------------------------------------------------

function tempName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/**
 * Writes `data` to `file` through a temporary file in the same folder (fsync'd, then renamed over `file`):
 * readers see the old file or the whole new one, never a part. On failure (ENOSPC, …) the temporary file is
 * removed, `file` is as it was, and the error is E_IO naming `file`.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = tempName(file);
  let handle: fs.promises.FileHandle | undefined;
  try {
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
    handle = await fs.promises.open(tmp, 'wx');
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    throw ioError(file, 'write', err);
  }
}

/** The same, synchronous. */
export function writeFileAtomicSync(file: string, data: string | Uint8Array): void {
  const tmp = tempName(file);
  let fd: number | undefined;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fd = fs.openSync(tmp, 'wx');
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw ioError(file, 'write', err);
  }
}

// ---- checking paths before the work -------------------------------------------------------------

function statOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ENOTDIR') throw ioError(p, 'use this path', err);
    throw ioError(p, 'look at this path', err);
  }
}

/** The nearest existing folder at or above `dir`: it must be a folder we may write in. */
function checkWritableAncestor(target: string, dir: string, flag: string): void {
  let p = path.resolve(dir);
  for (;;) {
    const st = statOrUndefined(p);
    if (st) {
      if (!st.isDirectory()) throw new HscrError(`${flag} ${target}: ${p} is a file, not a folder (ENOTDIR)`, 'E_IO', target);
      try {
        fs.accessSync(p, fs.constants.W_OK | fs.constants.X_OK);
      } catch (err) {
        throw ioError(p, `create ${flag} ${target} in it`, err);
      }
      return;
    }
    const parent = path.dirname(p);
    if (parent === p) return;
    p = parent;
  }
}

/** An output file: not a folder, and its folder exists or can be made. Checked before any slow work. */
export function checkOutputFile(file: string, flag = '--out'): void {
  const resolved = path.resolve(file);
  const st = statOrUndefined(resolved);
  if (st?.isDirectory()) throw new HscrError(`${flag} ${file} is a folder; give a file name (EISDIR)`, 'E_IO', file);
  checkWritableAncestor(file, path.dirname(resolved), flag);
}

/** An output folder: not a file, and it exists or can be made. */
export function checkOutputFolder(dir: string, flag = '--out'): void {
  const resolved = path.resolve(dir);
  const st = statOrUndefined(resolved);
  if (st && !st.isDirectory()) throw new HscrError(`${flag} ${dir} is a file, not a folder (ENOTDIR)`, 'E_IO', dir);
  checkWritableAncestor(dir, resolved, flag);
}

/** An input file that must exist and be a file (E_IO naming the flag and path otherwise). */
export function checkInputFile(file: string, flag: string): void {
  const st = statOrUndefined(path.resolve(file));
  if (!st) throw new HscrError(`${flag} ${file}: no such file (ENOENT)`, 'E_IO', file);
  if (st.isDirectory()) throw new HscrError(`${flag} ${file} is a folder, not a file (EISDIR)`, 'E_IO', file);
}

/** An input folder that must exist. */
export function checkInputFolder(dir: string, flag: string): void {
  const st = statOrUndefined(path.resolve(dir));
  if (!st) throw new HscrError(`${flag} ${dir}: no such folder (ENOENT)`, 'E_IO', dir);
  if (!st.isDirectory()) throw new HscrError(`${flag} ${dir} is a file, not a folder (ENOTDIR)`, 'E_IO', dir);
}

// ---- one writer per output ----------------------------------------------------------------------

export interface LockOwner {
  pid: number;
  host: string;
  /** /proc/<pid>/stat start time (Linux), so a recycled pid is not taken for the holder. */
  start: string | null;
  command: string;
  since: string;
}

export interface OutputLock {
  readonly file: string;
  /** Removes the lock (only if it is still ours). Safe to call twice. */
  release(): void;
}

/** Fields 3… of /proc/<pid>/stat (Linux): the command name (field 2) may hold spaces, so split after its ')'. */
function procStat(pid: number): string[] | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Field 22, starttime. */
function processStart(pid: number): string | null {
  return procStat(pid)?.[19] ?? null;
}

function isAlive(owner: LockOwner): boolean {
  if (owner.host !== os.hostname()) return true; // another machine's process: cannot tell, assume it runs
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const stat = procStat(owner.pid);
  // A killed process its parent has not reaped yet (a zombie) holds nothing.
  if (stat && (stat[0] === 'Z' || stat[0] === 'X')) return false;
  const start = stat?.[19] ?? null;
  return !(owner.start !== null && start !== null && start !== owner.start);
}

function readOwner(file: string): LockOwner | null | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(file, 'read the lock', err);
  }
  try {
    const owner = JSON.parse(text) as LockOwner;
    return Number.isInteger(owner?.pid) && typeof owner.host === 'string' ? owner : null;
  } catch {
    return null; // a lock cut by a crash between create and write
  }
}

const held = new Set<string>();
let exitHook = false;

/**
 * Takes the exclusive lock of an output (file or folder): `<output>.lock`, created with O_EXCL. Another live
 * process holding it is E_LOCKED at once, naming the holder; a lock left by a process that is gone (kill -9,
 * power loss) is taken over. Released by release(), and on process exit.
 */
export function lockOutput(output: string, label = 'hscr'): OutputLock {
  const target = path.resolve(output);
  const file = `${target}.lock`;
  const me: LockOwner = { pid: process.pid, host: os.hostname(), start: processStart(process.pid), command: label, since: new Date().toISOString() };
  const text = `${JSON.stringify(me)}\n`;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
  } catch (err) {
    throw ioError(path.dirname(file), 'create the folder', err);
  }
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(file, `create the lock of ${output}`, err);
      fd = -1;
    }
    if (fd >= 0) {
      try {
        fs.writeFileSync(fd, text);
        fs.closeSync(fd);
      } catch (err) {
        // A lock without its owner would look cut; on a full disk there is no lock and no run.
        fs.closeSync(fd);
        fs.rmSync(file, { force: true });
        throw ioError(output, `take the lock ${file}`, err);
      }
      break;
    }
    const owner = readOwner(file);
    if (owner === undefined) continue; // released meanwhile
    if (owner && isAlive(owner)) {
      throw new HscrError(
        `${output} is being written by another process (${owner.command}, pid ${owner.pid} on ${owner.host}, since ${owner.since}); wait for it to finish or use another output (lock: ${file})`,
        'E_LOCKED',
        file,
      );
    }
    // A dead holder (or a lock cut before its content was written, if it is older than a few seconds).
    if (owner === null && attempt < 3 && Date.now() - fs.statSync(file).mtimeMs < 5000) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
      continue;
    }
    if (attempt >= 5) throw new HscrError(`${file}: cannot take the lock (it keeps changing)`, 'E_LOCKED', file);
    // Remove it only if it is still the stale one we looked at (another process may have taken it over).
    if (JSON.stringify(readOwner(file)) === JSON.stringify(owner)) fs.rmSync(file, { force: true });
  }
  held.add(file);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const f of held) releaseFile(f, `${JSON.stringify(me)}`);
    });
  }
  let released = false;
  return {
    file,
    release() {
      if (released) return;
      released = true;
      held.delete(file);
      releaseFile(file, text.trim());
    },
  };
}

function releaseFile(file: string, mine: string): void {
  try {
    if (fs.readFileSync(file, 'utf8').trim() === mine) fs.rmSync(file, { force: true });
  } catch {
    // already gone
  }
}

/** Runs `work` holding the output's lock. */
export async function withOutputLock<T>(output: string, label: string, work: () => Promise<T>): Promise<T> {
  const lock = lockOutput(output, label);
  try {
    return await work();
  } finally {
    lock.release();
  }
}

// ---- fingerprints -------------------------------------------------------------------------------

/** Files at most this big are hashed whole; larger ones (weight shards) by size and sampled windows. */
const WHOLE_HASH_LIMIT = 8 << 20;
const SAMPLE_WINDOWS = 64;
const WINDOW = 64 << 10;

/**
 * A content fingerprint of a file: sha256 of the bytes for files up to 8 MiB; for larger ones (weight
 * shards) of the size, the first 1 MiB (the safetensors header) and 64 windows of 64 KiB spread evenly, so a
 * retrained model (every weight moves) always differs, while copying or touching the files does not matter.
 */
export function fileFingerprint(file: string): string {
  const hash = createHash('sha256');
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw ioError(file, 'read', err);
  }
  try {
    const size = fs.fstatSync(fd).size;
    hash.update(`${size}\n`);
    if (size <= WHOLE_HASH_LIMIT) {
      hash.update(fs.readFileSync(fd));
    } else {
      const buf = Buffer.alloc(1 << 20);
      hash.update(buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0)));
      for (let i = 0; i < SAMPLE_WINDOWS; i++) {
        const at = Math.floor(((size - WINDOW) * i) / (SAMPLE_WINDOWS - 1));
        hash.update(buf.subarray(0, fs.readSync(fd, buf, 0, WINDOW, at)));
      }
    }
  } catch (err) {
    throw ioError(file, 'read', err);
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

const MODEL_FILE = /\.(json|safetensors|bin|model)$/;

/** A folder's fingerprint (model or adapter): its config, tokenizer and weight files, by name and content. */
export function folderFingerprint(dir: string): string {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => MODEL_FILE.test(n) && !n.startsWith('.')).sort();
  } catch (err) {
    throw ioError(dir, 'read the folder', err);
  }
  const hash = createHash('sha256');
  for (const name of names) {
    const p = path.join(dir, name);
    if (fs.statSync(p).isFile()) hash.update(`${name}:${fileFingerprint(p)}\n`);
  }
  return hash.digest('hex');
}

/** What made an output: kept in <output>.run.json, compared key by key on resume. */
export interface OutputFingerprint {
  command: string;
  /** Keys whose values must be equal for a resume (model, adapter, data hashes and the settings). */
  inputs: Record<string, unknown>;
}

interface RunFile extends OutputFingerprint {
  version: 1;
  written: string;
}

export function runFileOf(output: string): string {
  return `${path.resolve(output)}.run.json`;
}

/** The first difference between two fingerprints as "key: before → now", or null. */
export function fingerprintDifference(saved: OutputFingerprint, now: OutputFingerprint): string | null {
  if (saved.command !== now.command) return `command: ${saved.command} made it, this is ${now.command}`;
  for (const key of new Set([...Object.keys(saved.inputs ?? {}), ...Object.keys(now.inputs)])) {
    const a = JSON.stringify(saved.inputs?.[key]);
    const b = JSON.stringify(now.inputs[key]);
    if (a !== b) return `${key}: ${a ?? 'unset'} when it was written, ${b ?? 'unset'} now`;
  }
  return null;
}

/**
 * Claims an output for a run with this fingerprint, before anything is appended to it: an output that
 * holds records (`hasRecords`) must have been made with the same fingerprint, else E_DATA names the first
 * difference (a run with other inputs or settings would mix two runs in one file). An empty or new output
 * gets this fingerprint.
 */
export function claimOutput(output: string, fingerprint: OutputFingerprint, hasRecords: boolean): void {
  const file = runFileOf(output);
  if (hasRecords) {
    let saved: RunFile;
    try {
      saved = JSON.parse(fs.readFileSync(file, 'utf8')) as RunFile;
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? `has no ${path.basename(file)}` : `has an unreadable ${path.basename(file)}`;
      throw new HscrError(
        `${output} already holds records but ${why}, so what made them is unknown; refusing to add to it (pass --overwrite to start over, or use another output)`,
        'E_DATA',
        output,
      );
    }
    const difference = fingerprintDifference(saved, fingerprint);
    if (difference) {
      throw new HscrError(`${output} was made by another run (${difference}); refusing to mix runs in one output (pass --overwrite to start over, or use another output)`, 'E_DATA', difference);
    }
    return;
  }
  const run: RunFile = { version: 1, ...fingerprint, written: new Date().toISOString() };
  writeFileAtomicSync(file, `${JSON.stringify(run, null, 2)}\n`);
}

/** Removes an output and its fingerprint (for --overwrite, under the lock). */
export function removeOutput(output: string): void {
  for (const p of [path.resolve(output), runFileOf(output)]) {
    try {
      fs.rmSync(p, { force: true });
    } catch (err) {
      throw ioError(p, 'remove', err);
    }
  }
}

/** sha256 of a file's bytes (data files), synchronous. */
export function sha256FileSync(file: string): string {
  try {
    return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  } catch (err) {
    throw ioError(file, 'read', err);
  }
}
