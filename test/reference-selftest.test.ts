import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

// Debian's interpreter carries torch 1.13; the python3 first on PATH does not.
const PYTHON = '/usr/bin/python3';
const SELFTEST = path.resolve(__dirname, 'reference/selftest.py');
// The self-test has 37 checks today; far fewer passing means checks stopped being registered.
const MIN_CHECKS = 30;

t.test('reference implementations pass their self-consistency checks', async (t) => {
  const run = spawnSync(PYTHON, [SELFTEST], { encoding: 'utf8', timeout: 120_000 });
  const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
  if (run.status !== 0) t.comment(output);
  t.equal(run.error, undefined, `${PYTHON} could be run`);
  t.equal(run.status, 0, 'selftest exits 0');
  const summary = /^selftest: (\d+) passed, (\d+) failed$/m.exec(run.stdout ?? '');
  t.ok(summary, 'selftest prints its summary line');
  t.equal(Number(summary?.[2]), 0, 'no check failed');
  t.ok(Number(summary?.[1]) >= MIN_CHECKS, `at least ${MIN_CHECKS} checks passed (got ${summary?.[1]})`);
  t.notMatch(output, /^FAIL /m, 'no check reported FAIL');
});
