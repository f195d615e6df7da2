/**
 * Issue 13 (7): on a full disk every final file is whole or absent — never 0 bytes, never cut — and the error
 * is an HscrError (E_IO) naming the file. The disk is a real small tmpfs (mount -t tmpfs -o size=…) when this
 * process may mount (root, as in this project's CI container); elsewhere the same limit is injected into
 * Node's FileHandle writes (the byte budget of a "disk" folder), and the test says which it used.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { generatePhantom } from '../../lib/data/phantom';
import { evaluate, type Predictor } from '../../lib/eval/run';
import { rerankFile } from '../../lib/rerank/rerank';
import type { VqaRecord } from '../../lib/data/types';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-rel-disk-'));
const mounts: string[] = [];
t.teardown(() => {
  for (const m of mounts) spawnQuiet('umount', [m]);
  fs.rmSync(tmp, { recursive: true, force: true });
});

function spawnQuiet(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const PAGE = 4096;
const pages = (bytes: number) => Math.ceil(bytes / PAGE) * PAGE;
let injected = false;

/** A folder on a "disk" of `bytes` (rounded up to pages): a tmpfs when we may mount, else an injected budget. */
function smallDisk(name: string, bytes: number): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  const size = Math.ceil(bytes / PAGE) * PAGE;
  if (!injected && !process.env.HSCR_TEST_NO_MOUNT && spawnQuiet('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir])) {
    mounts.push(dir);
    return dir;
  }
  injected = true;
  budgets.set(dir, size);
  return dir;
}

/** Grows a small disk (tmpfs remount, or a larger budget). */
function growDisk(dir: string, bytes: number): void {
  if (budgets.has(dir)) budgets.set(dir, bytes);
  else execFileSync('mount', ['-o', `remount,size=${bytes}`, dir]);
}

// ---- the injected fallback: a byte budget per folder, charged by FileHandle writes under it -----
const budgets = new Map<string, number>();
const used = new Map<string, number>();
const diskOf = (file: string) => [...budgets.keys()].find((d) => path.resolve(file).startsWith(d + path.sep));
function enospc(): NodeJS.ErrnoException {
  return Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
}
async function installHook(): Promise<void> {
  const probe = await fs.promises.open(path.join(tmp, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as Record<string, unknown> & { __hooked?: boolean };
  await probe.close();
  if (proto.__hooked) return;
  proto.__hooked = true;
  const paths = new WeakMap<object, string>();
  const open = fs.promises.open;
  (fs.promises as { open: unknown }).open = async (file: fs.PathLike, ...rest: unknown[]) => {
    const h = await (open as (...a: unknown[]) => Promise<fs.promises.FileHandle>)(file, ...rest);
    paths.set(h, String(file));
    return h;
  };
  const charge = (h: object, n: number): number => {
    const disk = diskOf(paths.get(h) ?? '');
    if (!disk) return n;
    const left = budgets.get(disk)! - (used.get(disk) ?? 0);
    const take = Math.max(0, Math.min(n, left));
    used.set(disk, (used.get(disk) ?? 0) + take);
    return take;
  };
  const writeFile = proto.writeFile as (this: fs.promises.FileHandle, data: string | Uint8Array) => Promise<void>;
  proto.writeFile = async function (this: fs.promises.FileHandle, data: string | Uint8Array) {
    const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
    // A whole file takes whole pages, as on tmpfs.
    const take = Math.min(bytes.length, charge(this, pages(bytes.length)));
    await writeFile.call(this, bytes.subarray(0, take));
    if (take < bytes.length) throw enospc();
  };
  const write = proto.write as (this: fs.promises.FileHandle, b: Buffer, o?: number) => Promise<{ bytesWritten: number }>;
  proto.write = async function (this: fs.promises.FileHandle, b: Buffer, offset = 0) {
    const want = b.length - offset;
    const take = charge(this, want);
    if (take === 0 && want > 0) throw enospc();
    return write.call(this, b.subarray(offset, offset + take), 0);
  };
}

t.before(installHook);

function allFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Every file left is whole: PNGs decode, JSON(L) parses; no temporary file is left. */
async function checkWhole(t: Tap.Test, dir: string): Promise<number> {
  let n = 0;
  for (const f of allFiles(dir)) {
    t.notOk(path.basename(f).includes('.tmp-'), `no temp file left: ${f}`);
    // (test.jsonl of a split with no test items is rightly empty.)
    if (path.basename(f) !== 'test.jsonl') t.ok(fs.statSync(f).size > 0, `not empty: ${path.relative(dir, f)}`);
    if (f.endsWith('.png')) await sharp(f).raw().toBuffer();
    else if (f.endsWith('.jsonl')) fs.readFileSync(f, 'utf8').trim().split('\n').forEach((l) => JSON.parse(l));
    else if (f.endsWith('.json')) JSON.parse(fs.readFileSync(f, 'utf8'));
    n++;
  }
  return n;
}

let faults = 0;

t.test('phantom on a full disk: E_IO naming the file, no cut image, no cut or 0-byte train.jsonl', async (t) => {
  const reference = path.join(tmp, 'reference');
  await generatePhantom({ outDir: reference, train: 120, test: 0, seed: 1, size: 32 });
  const images = fs.readdirSync(path.join(reference, 'images')).reduce((s, f) => s + pages(fs.statSync(path.join(reference, 'images', f)).size), 0);
  const trainBytes = fs.statSync(path.join(reference, 'train.jsonl')).size;

  // Too small for the images.
  const tiny = smallDisk('disk-images', images / 2);
  await t.rejects(generatePhantom({ outDir: tiny, train: 120, test: 0, seed: 1, size: 32 }), { code: 'E_IO', message: /images\/train-\d+\.png: cannot write \(ENOSPC: no space left on the device\)/ });
  faults++;
  const left = await checkWhole(t, tiny);
  t.notOk(fs.existsSync(path.join(tiny, 'train.jsonl')), 'no train.jsonl');
  t.comment(`phantom, disk full during the images: ${left} whole files left, none cut`);

  // Room for the images but not for train.jsonl.
  const room = smallDisk('disk-jsonl', images + pages(trainBytes) - 2 * PAGE);
  const err = await generatePhantom({ outDir: room, train: 120, test: 0, seed: 1, size: 32 }).catch((e: Error) => e);
  t.match(err, { code: 'E_IO', message: /(train\.jsonl|images\/train-\d+\.png): cannot write \(ENOSPC/ });
  t.comment(`phantom, disk full near the end: ${(err as Error).message}`);
  faults++;
  await checkWhole(t, room);
  t.notOk(fs.existsSync(path.join(room, 'meta.json')), 'no meta.json: the folder is not taken for a complete dataset');
  t.notOk(fs.existsSync(path.join(room, 'train.jsonl')) && fs.statSync(path.join(room, 'train.jsonl')).size !== trainBytes, 'train.jsonl absent or whole');
  growDisk(room, 4 << 20);
  await generatePhantom({ outDir: room, train: 120, test: 0, seed: 1, size: 32 });
  t.equal(fs.readFileSync(path.join(room, 'train.jsonl'), 'utf8'), fs.readFileSync(path.join(reference, 'train.jsonl'), 'utf8'), 'a rerun with room writes the same dataset');
});

const records: VqaRecord[] = Array.from({ length: 12 }, (_, i) => ({ id: `q${i}`, image: '/nonexistent.png', question: `is there ${i}?`, answer: i % 2 ? 'yes' : 'no', answer_type: 'closed', dataset: 'phantom' }));
const oracle: Predictor = async (batch) => batch.map((b) => records.find((r) => r.id === b.id)!.answer);

t.test('eval on a full disk: the old results.json stays whole (before: a 0-byte file), the error names it', async (t) => {
  const disk = smallDisk('disk-eval', 64 << 10);
  const resultsFile = path.join(disk, 'results.json');
  const predictionsFile = path.join(tmp, 'eval-predictions.jsonl');
  // A long method name makes results.json several pages long.
  const name = 'x'.repeat(3 * PAGE);
  await evaluate(records, oracle, { batchSize: 4, outDir: disk, resultsFile, predictionsFile, name });
  const before = fs.readFileSync(resultsFile);
  // Fill the disk, then free one page: room for the lock, none for the new results.json.
  const filler = path.join(disk, 'filler');
  if (budgets.has(disk)) used.set(disk, budgets.get(disk)! - 200);
  else {
    const fd = fs.openSync(filler, 'w');
    const block = Buffer.alloc(PAGE, 1);
    let size = 0;
    try {
      for (;;) size += fs.writeSync(fd, block);
    } catch (e) {
      t.equal((e as NodeJS.ErrnoException).code, 'ENOSPC', 'the disk is full');
    } finally {
      fs.ftruncateSync(fd, size - PAGE);
      fs.closeSync(fd);
    }
  }
  await t.rejects(evaluate(records, oracle, { batchSize: 4, outDir: disk, resultsFile, predictionsFile, name: `${name}y` }), { code: 'E_IO', message: new RegExp(`${resultsFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: cannot write \\(ENOSPC`) });
  faults++;
  t.same(fs.readFileSync(resultsFile), before, 'results.json is the previous one, whole');
  t.same(fs.readdirSync(disk).filter((f) => f.includes('.tmp-')), [], 'no temp file left');
  t.same(fs.readdirSync(disk).filter((f) => f.endsWith('.lock')), [], 'no lock left');
});

t.test('rerank on a full disk: E_IO naming the output; with room again it resumes to the uninterrupted bytes', async (t) => {
  const prefs = path.join(tmp, 'prefs.jsonl');
  const lines = Array.from({ length: 200 }, (_, i) => ({ id: `p${i}`, image: 'x.png', question: 'q?', chosen: `answer ${i} yes`, candidates: [{ text: `answer ${i} no`, replacements: [] }, { text: `other ${i}`, replacements: [] }], answer_type: 'open' }));
  fs.writeFileSync(prefs, lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
  const whole = path.join(tmp, 'ranked-whole.jsonl');
  await rerankFile(prefs, whole, { quiet: true });
  const disk = smallDisk('disk-rerank', pages(fs.statSync(whole).size) / 2 + PAGE);
  const out = path.join(disk, 'ranked.jsonl');
  await t.rejects(rerankFile(prefs, out, { quiet: true }), { code: 'E_IO', message: /ranked\.jsonl: cannot write the record "p\d+" \(ENOSPC/ });
  faults++;
  t.same(fs.readdirSync(disk).filter((f) => f.endsWith('.lock')), [], 'lock released after the failure');
  growDisk(disk, 4 << 20);
  const resumed = await rerankFile(prefs, out, { quiet: true });
  t.ok(resumed.resumed > 0 && resumed.resumed < 200, `resumed after ${resumed.resumed} whole lines`);
  t.equal(fs.readFileSync(out, 'utf8'), fs.readFileSync(whole, 'utf8'), 'byte-identical to the uninterrupted run');
  t.comment(`disk full: ${faults} ENOSPC faults (${injected ? 'injected into FileHandle writes: mount not permitted here' : 'real tmpfs mounts'}), every one an E_IO naming the file, no file cut`);
});
