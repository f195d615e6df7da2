import t from 'tap';
import fs from 'fs';
import os from 'os';
import path from 'path';

const root = path.resolve(__dirname, '..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const select = require(path.join(root, 'scripts', 'addon-select.js'));
const built = path.join(root, 'build', 'Release');
const plat = `${process.platform}-${process.arch}`;

/** A package root whose prebuilds/<plat>/ holds `files` (name -> source file). */
function fakeRoot(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-select-'));
  fs.mkdirSync(path.join(dir, 'prebuilds', plat), { recursive: true });
  for (const [name, from] of Object.entries(files)) fs.copyFileSync(from, path.join(dir, 'prebuilds', plat, name));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('variant names carry platform, libtorch major.minor and flavour, and parse back', async (t) => {
  t.equal(select.prebuildName({ version: '2.4', cuda: true }), 'hscr.napi.glibc.torch-2.4.cuda.node');
  t.same(select.parseVariant('/x/hscr.napi.glibc.torch-1.13.cpu.node'), { version: '1.13', cuda: false, file: '/x/hscr.napi.glibc.torch-1.13.cpu.node' });
  t.equal(select.parseVariant('hscr.napi.glibc.node'), undefined);
});

t.test("the libtorch on this machine is found with its version, flavour and the libraries to preload", async (t) => {
  const installs = select.findLibtorchInstalls({ PATH: process.env.PATH });
  t.ok(installs.length >= 1, 'at least one libtorch (Debian 1.13 here)');
  const lt = installs[0];
  t.match(lt.version, /^\d+\.\d+$/);
  t.ok(lt.preload.some((f: string) => /libtorch_cpu\.so/.test(f)) && lt.preload.some((f: string) => /libc10\.so/.test(f)));
  t.equal(lt.cuda, fs.readdirSync(lt.libDir).some((f) => f.startsWith('libtorch_cuda.so')));
});

t.test('the prebuild matching the libtorch found is chosen after a child-process load test', { skip: !fs.existsSync(path.join(built, 'hscr_preload.node')) && 'no local build to copy' }, async (t) => {
  const lt = select.findLibtorchInstalls({ PATH: process.env.PATH })[0];
  const match = select.prebuildName(lt);
  const dir = fakeRoot({
    [match]: path.join(built, 'hscr.node'),
    'hscr.napi.glibc.torch-9.9.cpu.node': path.join(built, 'hscr.node'),
    [select.PRELOAD_NAME]: path.join(built, 'hscr_preload.node'),
  });
  const s = select.selectAddon(dir, { PATH: process.env.PATH });
  t.equal(path.basename(s.file), match);
  t.equal(s.kind, 'prebuild');
  t.match(s.reason, new RegExp(`libtorch ${lt.version.replace('.', '\\.')}`));
  t.same(s.preload, lt.preload);
});

t.test('no matching variant: an E_NATIVE error naming what was found, what exists, and the fix', async (t) => {
  const dir = fakeRoot({ 'hscr.napi.glibc.torch-9.9.cuda.node': path.join(root, 'package.json') });
  let error: (Error & { code?: string }) | undefined;
  try {
    select.selectAddon(dir, { PATH: process.env.PATH });
  } catch (e) {
    error = e as Error & { code?: string };
  }
  t.ok(error, 'no variant matches: it throws');
  t.equal(error?.code, 'E_NATIVE');
  t.match(error?.message, /libtorch found: \d+\.\d+/);
  t.match(error?.message, /hscr\.napi\.glibc\.torch-9\.9\.cuda\.node/);
  t.match(error?.message, /fix: install libtorch 9\.9 CUDA .*HSCR_BUILD_FROM_SOURCE=1/s);
});

t.test('a variant that does not load is reported with the loader error, not crashed on', async (t) => {
  const lt = select.findLibtorchInstalls({ PATH: process.env.PATH })[0];
  // A text file under the matching name: dlopen fails in the child, the parent reports it.
  const dir = fakeRoot({ [select.prebuildName(lt)]: path.join(root, 'package.json') });
  t.throws(() => select.selectAddon(dir, { PATH: process.env.PATH }), /does not load: .*(invalid ELF|too short|not an ELF)/s);
});
