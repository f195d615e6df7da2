#!/usr/bin/env node
'use strict';
/**
 * `npm run soak` (not part of CI): kill -9 at random moments of every long command (sft, train, generate,
 * eval, rerank), then run it again (--resume for the trainers) and compare with an uninterrupted run:
 * byte-identical files where the run is deterministic (rerank's ranked.jsonl, the trainers' adapters; their
 * metrics.jsonl line for line but for the samples/s and tokens/s timings), else complete and duplicate-free with the same content per id (generate, eval: batching after a
 * resume may move scores in their last bits). Also starts two writers on one output at once: exactly one
 * may run. Uses the compiled CLI (dist/, built by the npm script) and the tiny preset on phantom data.
 *
 *   npm run soak -- [--trials 3] [--seed 1] [--keep]
 */
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const argv = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i === -1 ? fallback : argv[i + 1];
};
const TRIALS = Number(arg('trials', 3));
let seed = Number(arg('seed', Date.now() % 100000));
const KEEP = argv.includes('--keep');
const CLI = path.join(__dirname, '..', 'bin', 'hscr.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-soak-'));

function rand() {
  // mulberry32: reproducible kill moments for a given --seed
  seed = (seed + 0x6d2b79f5) | 0;
  let x = seed;
  x = Math.imul(x ^ (x >>> 15), x | 1);
  x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
}

function hscrSync(args) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`hscr ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r;
}

/** Runs hscr and kills it with SIGKILL after `killAfterMs` (if it is still running); resolves with how it ended. */
function hscrKilled(args, killAfterMs) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

const sha = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const lines = (file) => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

const model = path.join(root, 'model');
const data = path.join(root, 'phantom');
const ref = path.join(root, 'reference');

/** Each long command: its arguments for an output folder, and how its result is compared with the reference. */
const COMMANDS = {
  sft: {
    args: (out) => ['sft', '--model', model, '--data', path.join(data, 'train.jsonl'), '--out', path.join(out, 'sft'), '--max-steps', '8', '--save-steps', '1', '--batch', '4', '--quiet'],
    resume: ['--resume'],
    compare: (out) => sameBytes(out, ['sft/adapter/adapter_model.safetensors', 'sft/metrics.jsonl']),
  },
  generate: {
    args: (out) => ['generate', '--model', model, '--data', path.join(data, 'train.jsonl'), '--out', path.join(out, 'prefs.jsonl'), '--batch', '4', '--k', '3', '--quiet'],
    resume: [],
    compare: (out) => sameById(out, 'prefs.jsonl', (p) => JSON.stringify([p.chosen, p.candidates.map((c) => c.text)])),
  },
  rerank: {
    args: (out) => ['rerank', '--in', path.join(ref, 'prefs.jsonl'), '--out', path.join(out, 'ranked.jsonl'), '--quiet'],
    resume: [],
    compare: (out) => sameBytes(out, ['ranked.jsonl']),
  },
  train: {
    args: (out) => ['train', '--model', model, '--prefs', path.join(ref, 'ranked.jsonl'), '--out', path.join(out, 'train'), '--max-steps', '6', '--save-steps', '1', '--batch', '2', '--ref-cache', path.join(out, 'train-cache'), '--quiet'],
    resume: ['--resume'],
    compare: (out) => sameBytes(out, ['train/adapter/adapter_model.safetensors', 'train/metrics.jsonl']),
  },
  eval: {
    args: (out) => ['eval', '--model', model, '--data', path.join(data, 'test.jsonl'), '--out', path.join(out, 'results.json'), '--batch-size', '4', '--quiet'],
    resume: [],
    compare: (out) => sameById(out, 'results.predictions.jsonl', (p) => p.prediction),
  },
};

/** metrics.jsonl without the timing fields (samples/s, tokens/s), which no two runs share. */
function metricsWithoutTimes(file) {
  return lines(file).map((m) => JSON.stringify(Object.fromEntries(Object.entries(m).filter(([k]) => !k.endsWith('_per_second')))));
}

function same(out, f) {
  const a = path.join(out, f);
  const b = path.join(ref, f);
  if (!fs.existsSync(a)) return false;
  if (f.endsWith('metrics.jsonl')) return JSON.stringify(metricsWithoutTimes(a)) === JSON.stringify(metricsWithoutTimes(b));
  return sha(a) === sha(b);
}

function sameBytes(out, files) {
  const differ = files.filter((f) => !same(out, f));
  return differ.length === 0 ? { ok: true, identical: true } : { ok: false, why: `differ from the uninterrupted run: ${differ.join(', ')}` };
}

function sameById(out, file, key) {
  const got = lines(path.join(out, file));
  const want = new Map(lines(path.join(ref, file)).map((p) => [p.id, key(p)]));
  const ids = got.map((p) => p.id);
  if (new Set(ids).size !== ids.length) return { ok: false, why: `${file}: duplicate ids` };
  if (ids.length !== want.size) return { ok: false, why: `${file}: ${ids.length} records, ${want.size} expected` };
  const other = got.filter((p) => want.get(p.id) !== key(p));
  const identical = sha(path.join(out, file)) === sha(path.join(ref, file));
  return other.length === 0 ? { ok: true, identical } : { ok: false, why: `${file}: ${other.length} records differ (${other[0].id})` };
}

async function main() {
  const started = Date.now();
  console.log(`soak: ${TRIALS} kill -9 trials per command, seed ${seed}, in ${root}`);
  hscrSync(['init', '--preset', 'tiny', '--out', model, '--seed', '1']);
  hscrSync(['phantom', '--out', data, '--train', '24', '--test', '16', '--seed', '1', '--quiet']);
  const durations = {};
  fs.mkdirSync(ref);
  for (const [name, c] of Object.entries(COMMANDS)) {
    const t0 = Date.now();
    hscrSync(c.args(ref));
    durations[name] = Date.now() - t0;
    console.log(`reference ${name}: ${(durations[name] / 1000).toFixed(1)} s`);
  }
  const tally = {};
  let failures = 0;
  for (const [name, c] of Object.entries(COMMANDS)) {
    const s = (tally[name] = { trials: 0, killed: 0, finishedBeforeKill: 0, resumedOk: 0, identical: 0, failed: 0 });
    for (let i = 0; i < TRIALS; i++) {
      const out = path.join(root, `${name}-${i}`);
      fs.mkdirSync(out);
      // Kill anywhere from node's start-up to well before the end of an uninterrupted run (load varies).
      const killAt = Math.floor(100 + rand() * durations[name] * 0.7);
      const first = await hscrKilled(c.args(out), killAt);
      s.trials++;
      if (first.signal === 'SIGKILL') s.killed++;
      else if (first.code === 0) s.finishedBeforeKill++;
      else {
        s.failed++;
        failures++;
        console.log(`${name} #${i}: exited ${first.code} before the kill: ${first.stderr.trim()}`);
        continue;
      }
      const again = spawnSync(process.execPath, [CLI, ...c.args(out), ...c.resume], { encoding: 'utf8' });
      if (again.status !== 0) {
        s.failed++;
        failures++;
        console.log(`${name} #${i} (killed at ${killAt} ms): the rerun failed: ${again.stderr.trim()}`);
        continue;
      }
      const verdict = c.compare(out);
      const leftovers = fs.readdirSync(out, { recursive: true }).filter((f) => /\.lock$|\.tmp-/.test(String(f)));
      if (!verdict.ok || leftovers.length) {
        s.failed++;
        failures++;
        console.log(`${name} #${i} (killed at ${killAt} ms): ${verdict.why ?? ''} ${leftovers.length ? `left behind: ${leftovers.join(', ')}` : ''}`);
        continue;
      }
      s.resumedOk++;
      if (verdict.identical) s.identical++;
    }
    console.log(`${name}: ${JSON.stringify(s)}`);
  }
  // Two writers on one output at once: exactly one runs.
  const twin = path.join(root, 'twin');
  fs.mkdirSync(twin);
  const both = await Promise.all([0, 1].map(() => hscrKilled(COMMANDS.generate.args(twin), 600000)));
  const locked = both.filter((r) => r.code === 1 && /E_LOCKED/.test(r.stderr)).length;
  const ran = both.filter((r) => r.code === 0).length;
  const twinOk = locked === 1 && ran === 1 && sameById(twin, 'prefs.jsonl', (p) => JSON.stringify([p.chosen, p.candidates.map((c) => c.text)])).ok;
  if (!twinOk) failures++;
  console.log(`two generate at once: ${ran} ran, ${locked} refused with E_LOCKED${twinOk ? ', output complete' : ' — FAILED'}`);
  console.log(`soak: ${failures} failures in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (!KEEP) fs.rmSync(root, { recursive: true, force: true });
  process.exitCode = failures ? 1 : 0;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
