/**
 * The README's API example, as a user would run it: a consumer folder whose node_modules/hscr is this
 * package (dist/ and its .d.ts), the example type-checked with `tsc --strict` importing only the package
 * root, then compiled and executed.
 */
import t from 'tap';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { spawnSync } from 'child_process';

const root = path.resolve(__dirname, '..');

function readmeExample(): string {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## API'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('README has no ```ts block in its API section');
  return m[1];
}

t.test('the README API example type-checks with tsc --strict against the package root, and runs', async (t) => {
  const code = readmeExample();
  t.notMatch(code, /from '(?!hscr'|node:)[^']*'/, 'imports only the package root (and node built-ins)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-consumer-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(root, path.join(dir, 'node_modules', 'hscr'), 'dir');
  fs.writeFileSync(path.join(dir, 'consumer.ts'), code);
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noUnusedLocals: true,
        target: 'ES2022',
        module: 'commonjs',
        moduleResolution: 'node',
        esModuleInterop: true,
        outDir: 'out',
        typeRoots: [path.join(root, 'node_modules', '@types')],
        types: ['node'],
        skipLibCheck: true,
      },
      files: ['consumer.ts'],
    }),
  );
  const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { encoding: 'utf8' });
  t.equal(tsc.status, 0, `tsc --strict: ${tsc.stdout}${tsc.stderr}`);
  if (tsc.status !== 0) return;
  const run = spawnSync(process.execPath, [path.join(dir, 'out', 'consumer.js')], { cwd: dir, encoding: 'utf8', timeout: 300_000 });
  t.equal(run.status, 0, run.stderr);
  t.match(run.stdout, /preferences: [1-9]\d* written, [1-9]\d* re-ranked/);
  t.match(run.stdout, /\| hscr \|/, 'the results table');
  t.match(run.stdout, /perfect answers score 1\n/);
  t.match(run.stdout, /bad input is an HscrError: E_ARG/);
});
