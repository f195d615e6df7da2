/**
 * Issue 14, acceptance 4: `hscr run --config FILE`. The config is validated (errors name the key); a run
 * killed with SIGKILL inside a stage and run again skips every finished stage (their manifests match),
 * redoes the killed one and finishes with the same results as a run that was never killed; a changed
 * setting reruns only the stage it belongs to. The killed run and its rerun are real `hscr run` processes
 * (the CLI from the sources, see test/helpers/hscr-cli.js); the unbroken reference and the changed-setting
 * run go in this process. One libtorch thread everywhere, so all runs do their float sums the same way.
 */
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../lib/cli/index';
import { loadPipelineConfig, resolvePipelineConfig } from '../lib/pipeline/config';
import { runPipeline } from '../lib/pipeline/run';
import { setThreads } from '../lib/native';
import { hashPath, readManifest } from '../lib/pipeline/manifest';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-pipeline-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const CLI = [process.execPath, path.resolve(__dirname, 'helpers', 'hscr-cli.js')];
process.env.HSCR_NUM_THREADS = '1';
const ENV: NodeJS.ProcessEnv = { ...process.env };
const STAGES = ['data', 'init', 'sft', 'generate', 'rerank', 'train', 'eval'];

function tinyConfig(out: string, evalOverrides: Record<string, unknown> = {}): string {
  const file = path.join(tmp, `${out}.json`);
  const config = {
    out,
    data: { source: 'phantom', train: 32, test: 16, seed: 7, size: 64 },
    sft: { maxSteps: 10, batch: 8 },
    generate: { k: 4, n: 6, batch: 8, limit: 12 },
    // Enough steps that the kill lands inside the stage.
    train: { maxSteps: 24, batch: 2 },
    eval: { batch: 16, maxNewTokens: 6, ...evalOverrides },
    report: false,
  };
  fs.writeFileSync(file, JSON.stringify(config));
  return file;
}

/** Runs `hscr run` to its end; its output is shown only when it fails. */
function hscrRun(t: Test, config: string): number | null {
  const r = spawnSync(CLI[0], [...CLI.slice(1), 'run', '--config', config, '--quiet'], { encoding: 'utf8', env: ENV, timeout: 300_000 });
  if (r.status !== 0) t.comment(`${r.stdout}${r.stderr}`);
  return r.status;
}

interface LogEntry {
  pid: number;
  stage?: string;
  event: string;
  reason?: string;
}

/** What the last invocation did per stage: 'skip' or the reason it ran. */
function lastInvocation(out: string): Record<string, string> {
  const entries = fs.readFileSync(path.join(out, 'pipeline', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LogEntry);
  const starts = entries.map((e, i) => (e.event === 'start' ? i : -1)).filter((i) => i >= 0);
  const last = entries.slice(starts[starts.length - 1]);
  return Object.fromEntries(last.filter((e) => e.event === 'skip' || e.event === 'run').map((e) => [e.stage, e.event === 'skip' ? 'skip' : `run: ${e.reason}`]));
}

t.test('the config is checked with errors that name the key', async (t) => {
  const bad = (raw: unknown) => () => resolvePipelineConfig(raw, 'c.json', tmp);
  t.throws(bad({ out: 'x', train: { lr: '1e-3' } }), { code: 'E_CONFIG', message: /^c\.json: train\.lr: .*expected number/ });
  t.throws(bad({ out: 'x', sft: { learningRate: 1 } }), { code: 'E_CONFIG', message: 'c.json: sft.learningRate: not a setting' });
  t.throws(bad({ out: 'x', data: { source: 'web' } }), { code: 'E_CONFIG', message: /data\.source/ });
  t.throws(bad({ out: 'x', data: { source: 'files', train: 'a.jsonl' } }), { code: 'E_CONFIG', message: /data\.test/ });
  t.throws(bad({ out: 'x', generate: { ratio: 1.5 } }), { code: 'E_CONFIG', message: /generate\.ratio/ });
  t.throws(bad({ out: 'x', sft: { enabled: false } }), { code: 'E_CONFIG', message: /model\.dir/ });
  t.throws(bad({}), { code: 'E_CONFIG', message: /\bout\b/ });
  const c = resolvePipelineConfig({ out: 'x', data: { source: 'files', train: 'a/t.jsonl', test: 'b.jsonl' } }, 'c.json', tmp);
  t.equal(c.out, path.join(tmp, 'x'), 'paths are relative to the config file');
  t.equal(c.data.source === 'files' && c.data.train, path.join(tmp, 'a', 't.jsonl'));
  t.equal(c.generate.k, 6, "unset keys take the defaults (the paper's k)");

  // The CLI's own path, in process (bin/hscr.js prints the message and code on one line).
  fs.writeFileSync(path.join(tmp, 'bad.json'), '{"out": "x", "eval": {"varaint": "strict"}}');
  await t.rejects(main(['node', 'hscr', 'run', '--config', path.join(tmp, 'bad.json')]), { code: 'E_CONFIG', message: /bad\.json: eval\.varaint: not a setting$/ }, 'hscr run names the misspelt key');
});

t.test('a run killed inside a stage continues there and ends with the results of an unbroken run', async (t) => {
  setThreads(1);
  let started = Date.now();
  await runPipeline(loadPipelineConfig(tinyConfig('unbroken')), { quiet: true });
  t.comment(`unbroken run: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const A = path.join(tmp, 'unbroken');
  t.same(lastInvocation(A), Object.fromEntries(STAGES.map((s) => [s, 'run: not finished before'])), 'a fresh run runs every stage');

  const config = tinyConfig('killed');
  const B = path.join(tmp, 'killed');
  const metrics = path.join(B, 'train', 'metrics.jsonl');
  started = Date.now();
  const seenAtKill = await new Promise<number>((resolve, reject) => {
    const child = spawn(CLI[0], [...CLI.slice(1), 'run', '--config', config, '--quiet'], { env: ENV, stdio: 'ignore' });
    let steps = 0;
    const timer = setInterval(() => {
      steps = fs.existsSync(metrics) ? fs.readFileSync(metrics, 'utf8').split('\n').filter(Boolean).length : 0;
      if (steps >= 3) child.kill('SIGKILL');
    }, 25);
    child.on('exit', (code, signal) => {
      clearInterval(timer);
      if (signal !== 'SIGKILL') reject(new Error(`the run ended (code ${code}) before it was killed`));
      else resolve(steps);
    });
  });
  t.ok(seenAtKill >= 3 && seenAtKill < 24, `killed during train, after ${seenAtKill} of 24 steps`);
  t.same(STAGES.map((s) => readManifest(B, s) !== undefined), [true, true, true, true, true, false, false], 'the stages before train had finished; train and eval had not');

  t.comment(`killed with SIGKILL after ${((Date.now() - started) / 1000).toFixed(1)} s, at train step ${seenAtKill}`);
  started = Date.now();
  t.equal(hscrRun(t, config), 0, 'the rerun ends');
  t.comment(`rerun: ${((Date.now() - started) / 1000).toFixed(1)} s (train ${readManifest(B, 'train')?.seconds.toFixed(1)} s, eval ${readManifest(B, 'eval')?.seconds.toFixed(1)} s; the unbroken run's train ${readManifest(A, 'train')?.seconds.toFixed(1)} s)`);
  t.same(
    lastInvocation(B),
    { data: 'skip', init: 'skip', sft: 'skip', generate: 'skip', rerank: 'skip', train: 'run: not finished before', eval: 'run: not finished before' },
    'the rerun skips the five finished stages and redoes only the killed one (and eval, which had not run)',
  );

  const train = (dir: string) => readManifest(dir, 'train')?.outputs.adapter.sha256;
  t.ok(train(B) && train(B) === train(A), 'the adapter weights are bit-identical to the unbroken run');
  for (const model of ['sft', 'hscr']) {
    const file = (dir: string) => path.join(dir, 'eval', model, 'predictions.jsonl');
    // hashPath says 'missing' for a file that is not there: two missing files must not pass as equal.
    t.not(hashPath(file(A)), 'missing', `${model}: the unbroken run wrote its predictions`);
    t.equal(hashPath(file(B)), hashPath(file(A)), `${model}: the same predictions`);
    const scores = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'eval', model, 'results.json'), 'utf8')).overall;
    t.same(scores(B), scores(A), `${model}: the same scores`);
  }

  // A changed eval setting and a hand-edited ranked.jsonl: eval reruns for its setting; rerank reruns for its
  // edited output, writes the same file again, so train (same input hashes) is skipped.
  fs.appendFileSync(path.join(B, 'prefs', 'ranked.jsonl'), '\n');
  const changed = await runPipeline(loadPipelineConfig(tinyConfig('killed', { maxNewTokens: 4 })), { quiet: true });
  t.same(changed.stages.filter((s) => s.action === 'ran').map((s) => s.stage), ['rerank', 'eval'], 'the result lists the stages that ran');
  t.same(
    lastInvocation(B),
    { data: 'skip', init: 'skip', sft: 'skip', generate: 'skip', rerank: 'run: outputs changed: ranked', train: 'skip', eval: 'run: settings changed' },
    'rerank reruns for its edited output, eval for its changed setting, nothing else',
  );
});
