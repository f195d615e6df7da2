/**
 * Issue 13, failure 8: library calls with wrong argument types gave Node's TypeErrors. Every public function
 * (lib/index.ts) is called with values of the wrong type in its first two positions; each call must fail
 * with an HscrError (E_ARG for a wrong type), never a TypeError from inside. Runs in a temp folder, since a
 * function that accepts an object may start writing its default output folder before it fails.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as hscr from '../../lib/index';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-rel-args-'));
const cwd = process.cwd();
process.chdir(tmp);
t.teardown(() => {
  process.chdir(cwd);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const FIRST: unknown[] = [undefined, null, 42, NaN, {}, [], 'nonexistent-xyz', Symbol('s'), () => 1, 10n, true];
const SECOND: unknown[] = [undefined, 42, null, Symbol('t')];
// Functions that take no arguments or only read the machine: nothing to get wrong.
const NO_ARGS = new Set(['native', 'addonLocation', 'doctor', 'phantomCorpus', 'distEnvFrom']);
// Functions for which {} is a complete, valid call (every option defaulted): it would start real work.
const EMPTY_OBJECT_IS_VALID = new Set(['runAblation']);

t.test('every public function rejects wrong argument types with an HscrError', async (t) => {
  const functions = Object.entries(hscr).filter(([name, f]) => typeof f === 'function' && !/^[A-Z]/.test(name) && !NO_ARGS.has(name));
  let attempts = 0;
  let eArg = 0;
  const leaks: string[] = [];
  const slow: string[] = [];
  for (const [name, fn] of functions) {
    const started = Date.now();
    for (const a of FIRST) {
      if (EMPTY_OBJECT_IS_VALID.has(name) && typeof a === 'object' && a !== null && !Array.isArray(a)) continue;
      if (name === 'setThreads' && typeof a === 'number') continue; // 42 is a valid (and slow) thread count
      for (const b of SECOND) {
        attempts++;
        try {
          const r = (fn as (...args: unknown[]) => unknown)(a, b);
          if (r && typeof (r as Promise<unknown>).then === 'function') {
            await Promise.race([r, new Promise((_, reject) => setTimeout(() => reject(new Error('did not settle in 10 s')), 10_000))]);
          }
        } catch (e) {
          if (e instanceof hscr.HscrError) {
            if (e.code === 'E_ARG') eArg++;
          } else leaks.push(`${name}(${String(a)}, ${String(b)}): ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
        }
      }
    }
    if (Date.now() - started > 1000) slow.push(`${name} ${Date.now() - started} ms`);
  }
  t.comment(`slowest: ${slow.join(', ') || 'none over 1 s'}`);
  t.same(leaks.slice(0, 20), [], 'no TypeError (or other non-HscrError) escapes');
  t.ok(functions.length >= 60, `${functions.length} public functions`);
  t.ok(eArg > attempts * 0.8, `${eArg} of ${attempts} calls were E_ARG`);
  t.comment(`library argument fuzz: ${attempts} calls over ${functions.length} functions, ${eArg} E_ARG, ${leaks.length} non-HscrError`);
});

t.test('the E_ARG names the function, the argument, the field and what it got', async (t) => {
  t.throws(() => hscr.readModelConfig(42 as unknown as string), { code: 'E_ARG', message: 'readModelConfig: argument 1: Invalid input: expected string, received number', value: 42 });
  await t.rejects(hscr.loadModelBundle(undefined as unknown as string), { code: 'E_ARG', message: /^loadModelBundle: argument 1: .*expected string, received undefined/ });
  await t.rejects(hscr.readSafetensors({} as unknown as string), { code: 'E_ARG', message: /^readSafetensors: argument 1: .*expected string, received object/ });
  t.throws(() => hscr.tensor([1, 2] as unknown as Float32Array, [2]), { code: 'E_ARG', message: /^tensor: argument 1: expected a typed array/ });
  // A field inside an options object is named, with its value.
  await t.rejects(hscr.initModel({ preset: 'tiny', out: 7 as unknown as string }), { code: 'E_ARG', message: /^initModel: argument 1 field out: .*expected string, received number/, value: 7 });
  await t.rejects(hscr.generateFile({ model: 'm', data: ['d'] as unknown as string, out: 'o' }), { code: 'E_ARG', message: /^generateFile: argument 1 field data: .*expected string, received array/ });
  // An async generator fails on its first next(), like every other failure of it.
  const it = hscr.answerLogprobs({ model: 1 as unknown as string, data: 'd' });
  await t.rejects(it.next(), { code: 'E_ARG', message: /^answerLogprobs: argument 1 field model:/ });
  // scorePredictions given a plain object of id → text works; one of the wrong shape is named.
  t.throws(() => hscr.scorePredictions([{ id: 'a', question: 'q', answer: 'yes', answerType: 'closed' }] as never, { a: 3 } as never), { code: 'E_ARG', message: /^scorePredictions: argument 2: expected a Map or an object/ });
  // Right types still reach the function's own checks, with their own codes.
  await t.rejects(hscr.initModel({ preset: 'huge' as never, out: '/nonexistent-dir/x' }), { code: 'E_ARG', message: /--preset must be/ });
  // Extra trailing arguments are a mistake, not silently ignored.
  t.throws(() => (hscr.keptVisualTokens as (...a: unknown[]) => unknown)(4, 0.5, 1, 'extra'), { code: 'E_ARG', message: /takes at most 3 arguments, got 4/ });
});
