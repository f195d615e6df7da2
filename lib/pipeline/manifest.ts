/**
 * Stage manifests: what a finished stage was given (settings and the hashes of its input files) and what it
 * left (the hashes of its outputs). A stage whose manifest matches both is skipped; anything else — a
 * setting changed, an input changed, an output edited or removed, or no manifest because the run was
 * killed inside the stage — runs it again from scratch. The manifest is written last, atomically, so a
 * stage is finished exactly when its manifest is there.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HscrError } from '../errors';
import { writeFileAtomic } from '../model/config';

/** Hash of a file's bytes, or of a folder's files (relative names and contents, in name order). */
export function hashPath(p: string): string {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(p);
  } catch {
    return 'missing';
  }
  if (stat.isFile()) return hashFile(p);
  const h = createHash('sha256');
  for (const rel of listFiles(p)) h.update(`${rel}\0${hashFile(path.join(p, rel))}\n`);
  return h.digest('hex');
}

function hashFile(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(dir, prefix), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(dir, rel));
    else if (e.isFile()) out.push(rel);
  }
  return out;
}

export function hashJson(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

export interface StageManifest {
  version: 1;
  stage: string;
  /** Hash of settings + input hashes: what the stage was asked to do. */
  key: string;
  settings: unknown;
  inputs: Record<string, { path: string; sha256: string }>;
  /** Output paths are relative to the run folder, so a moved run folder still matches. */
  outputs: Record<string, { path: string; sha256: string }>;
  seconds: number;
  finishedAt: string;
}

export function manifestFile(outDir: string, stage: string): string {
  return path.join(outDir, 'pipeline', `${stage}.manifest.json`);
}

export function readManifest(outDir: string, stage: string): StageManifest | undefined {
  const file = manifestFile(outDir, stage);
  if (!fs.existsSync(file)) return undefined;
  try {
    const m = JSON.parse(fs.readFileSync(file, 'utf8')) as StageManifest;
    return m.version === 1 && typeof m.key === 'string' && typeof m.outputs === 'object' ? m : undefined;
  } catch {
    return undefined; // a torn manifest means an unfinished stage
  }
}

export function writeManifest(outDir: string, m: StageManifest): void {
  const file = manifestFile(outDir, m.stage);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
  } catch (e) {
    throw new HscrError(`${path.dirname(file)}: cannot create (${(e as Error).message})`, 'E_IO', file);
  }
  writeFileAtomic(file, `${JSON.stringify(m, null, 2)}\n`);
}

/** Why a stage must run, or undefined when its manifest matches the key and every output is as it left it. */
export function staleReason(m: StageManifest | undefined, key: string, inputs: Record<string, string>, outDir: string): string | undefined {
  if (!m) return 'not finished before';
  if (m.key !== key) {
    const changed = Object.keys(inputs).filter((k) => m.inputs[k]?.sha256 !== inputs[k]);
    return changed.length ? `inputs changed: ${changed.join(', ')}` : 'settings changed';
  }
  const edited = Object.entries(m.outputs).filter(([, o]) => hashPath(path.resolve(outDir, o.path)) !== o.sha256).map(([k]) => k);
  return edited.length ? `outputs changed: ${edited.join(', ')}` : undefined;
}

/** Hashes of a stage's input paths (`hash`: hashPath, or a memoised one); E_IO naming the input when one is missing. */
export function hashInputs(label: string, inputs: Record<string, string>, hash: (p: string) => string = hashPath): Record<string, string> {
  const hashes = Object.fromEntries(Object.entries(inputs).map(([k, p]) => [k, hash(p)]));
  const missing = Object.entries(hashes).find(([, h]) => h === 'missing');
  if (missing) throw new HscrError(`${label}: input ${missing[0]} (${inputs[missing[0]]}) does not exist`, 'E_IO', inputs[missing[0]]);
  return hashes;
}

/** What a stage was asked to do: the key its manifest must match. */
export function stageKey(settings: unknown, inputHashes: Record<string, string>): string {
  return hashJson({ settings, inputs: inputHashes });
}

/** The manifest of a stage that just finished: inputs with their hashes, outputs hashed now, relative to outDir. */
export function finishedManifest(
  outDir: string,
  stage: { name: string; settings: unknown; inputs: Record<string, string>; outputs: Record<string, string> },
  inputHashes: Record<string, string>,
  seconds: number,
): StageManifest {
  return {
    version: 1,
    stage: stage.name,
    key: stageKey(stage.settings, inputHashes),
    settings: stage.settings,
    inputs: Object.fromEntries(Object.entries(stage.inputs).map(([k, p]) => [k, { path: p, sha256: inputHashes[k] }])),
    outputs: Object.fromEntries(Object.entries(stage.outputs).map(([k, p]) => [k, { path: path.relative(outDir, p), sha256: hashPath(p) }])),
    seconds,
    finishedAt: new Date().toISOString(),
  };
}
