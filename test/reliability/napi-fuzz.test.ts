/**
 * Issue 13: an N-API fuzz of every exported native function and method (napi-fuzz-child.js), thousands of
 * wrong arguments from a fixed seed, in a child process so that a crash or abort shows up as a failed test.
 * Every call returns or fails with an HscrError; nothing hangs; the child's memory stays bounded.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

interface FuzzSummary {
  seed: number;
  attempts: number;
  returned: number;
  hscrErrors: number;
  hostileRethrown: number;
  receiverRejected: number;
  hangs: number;
  findings: { target: string; error: string }[];
  byTarget: Record<string, number>;
  codes: Record<string, number>;
  uncovered: string[];
  exported: number;
  targets: number;
  maxRssMiB: number;
}

const ATTEMPTS = 2500;

for (const seed of [1, 2]) {
  t.test(`N-API fuzz, seed ${seed}: ${ATTEMPTS} calls with wrong arguments, no crash, every failure an HscrError`, async (t) => {
    const started = Date.now();
    const child = spawnSync(process.execPath, [path.join(__dirname, 'napi-fuzz-child.js')], {
      encoding: 'utf8',
      env: { ...process.env, FUZZ_SEED: String(seed), FUZZ_ATTEMPTS: String(ATTEMPTS), HSCR_NUM_THREADS: '1' },
      timeout: 150_000,
      maxBuffer: 16 * 2 ** 20,
    });
    t.equal(child.signal, null, `no signal (a crash or abort would show here); stderr: ${child.stderr.slice(-2000)}`);
    t.equal(child.status, 0, 'the child exits cleanly');
    const line = child.stdout.trim().split('\n').pop() ?? '';
    const s = JSON.parse(line) as FuzzSummary;
    t.same(s.uncovered, [], 'every exported native function has a fuzz entry');
    t.ok(s.attempts >= ATTEMPTS, `${s.attempts} calls over ${s.targets} targets (${s.exported} exports)`);
    t.ok(Object.keys(s.byTarget).length === s.targets, 'every target was called');
    t.same(s.findings, [], 'no call failed with anything but an HscrError (or the exception its own argument threw)');
    t.equal(s.hangs, 0, 'no call hung');
    t.equal(s.hscrErrors + s.returned + s.receiverRejected + s.hostileRethrown, s.attempts, 'every call accounted for');
    t.ok(s.hscrErrors > ATTEMPTS / 3, `${s.hscrErrors} HscrErrors, ${s.returned} returned, ${s.receiverRejected} foreign receivers refused by V8/N-API, ${s.hostileRethrown} hostile-getter exceptions passed through`);
    t.ok(s.maxRssMiB < 3000, `max RSS ${s.maxRssMiB} MiB`);
    t.comment(`seed ${seed}: ${JSON.stringify({ attempts: s.attempts, returned: s.returned, hscrErrors: s.hscrErrors, receiverRejected: s.receiverRejected, hostileRethrown: s.hostileRethrown, codes: s.codes, maxRssMiB: s.maxRssMiB, seconds: (Date.now() - started) / 1000 })}`);
  });
}
