/** Shared by the reliability tests: the CLI in this process with its output captured, and a tiny model whose context is set. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../lib/cli/index';
import { readModelConfig, writeModelConfig } from '../../lib/model/config';
import { makeTinyModelDir } from '../helpers/train-fixture';

export interface CliRun {
  stdout: string;
  stderr: string;
}

/** Runs `hscr ...args` in this process; rejects with the command's HscrError. */
export async function hscr(...args: string[]): Promise<CliRun> {
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  const run: CliRun = { stdout: '', stderr: '' };
  process.stdout.write = ((chunk: string | Uint8Array) => ((run.stdout += chunk.toString()), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((run.stderr += chunk.toString()), true)) as typeof process.stderr.write;
  try {
    await main(['node', 'hscr', ...args]);
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
  return run;
}

/** The tiny training model (16 visual tokens) with max_position_embeddings set to `context`. */
export async function tinyModel(dir: string, context: number, seed = 1): Promise<string> {
  await makeTinyModelDir(dir, seed);
  const cfg = readModelConfig(dir);
  writeModelConfig(dir, { ...cfg, text: { ...cfg.text, maxPositionEmbeddings: context } }, 'llava-hf');
  return dir;
}

export function jsonLines<T = Record<string, unknown>>(file: string): T[] {
  return fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as T);
}

export function writeJsonl(file: string, records: unknown[]): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  return file;
}

/** Every file under dir with its bytes' sha256, for "nothing changed" checks. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = require('node:crypto').createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}
