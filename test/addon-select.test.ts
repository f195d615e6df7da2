import t from 'tap';
import fs from 'fs';
import os from 'os';
import path from 'path';

const root = path.resolve(__dirname, '..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const select = require(path.join(root, 'scripts', 'addon-select.js'));
const built = path.join(root, 'build', 'Release');
const preloaderBuilt = path.join(root, 'build', 'loader', 'hscr_preload.node');
const plat = `${process.platform}-${process.arch}`;

/**
 * A package root laid out as scripts/prebuild.js (prebuildify) writes it: prebuilds/<variant>/prebuilds/<plat>/
 * hscr.glibc.node per variant (variant -> source file), and the preloader in prebuilds/loader/.
 */
function fakeRoot(variants: Record<string, string>, preloader?: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-select-'));
  const put = (folder: string, name: string, from: string) => {
    const to = path.join(dir, 'prebuilds', folder, 'prebuilds', plat);
    fs.mkdirSync(to, { recursive: true });
    fs.copyFileSync(from, path.join(to, name));
  };
  for (const [variant, from] of Object.entries(variants)) put(variant, 'hscr.glibc.node', from);
  if (preloader) put(select.LOADER_DIR, 'hscr_preload.glibc.node', preloader);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('variant folders carry libtorch major.minor and flavour, and parse back', async (t) => {
  t.equal(select.variantTag({ version: '2.4', cuda: true }), 'torch-2.4-cuda');
  t.same(select.parseVariant('/x/prebuilds/torch-1.13-cpu'), { version: '1.13', cuda: false });
  t.equal(select.parseVariant('linux-x64'), undefined, 'a platform folder is not a variant');
  t.equal(select.parseVariant('loader'), undefined);
});

t.test('node-gyp-build resolves each variant folder for this platform only', async (t) => {
  const dir = fakeRoot({ 'torch-1.13-cpu': path.join(root, 'package.json') });
  // A variant built only for another platform: listed, with no file for this one.
  fs.mkdirSync(path.join(dir, 'prebuilds', 'torch-2.4-cuda', 'prebuilds', 'win32-x64'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'prebuilds', 'torch-2.4-cuda', 'prebuilds', 'win32-x64', 'hscr.napi.node'), '');
  const variants = select.listVariants(dir).sort((a: { version: string }, b: { version: string }) => a.version.localeCompare(b.version));
  t.equal(variants.length, 2);
  t.equal(variants[0].file, path.join(dir, 'prebuilds', 'torch-1.13-cpu', 'prebuilds', plat, 'hscr.glibc.node'));
  t.equal(variants[1].file, undefined, 'no linux build in the win32-only variant');
  t.equal(select.localBuild(dir), undefined, 'no build/Release: no local build');
  fs.mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'build', 'Release', 'hscr.node'), '');
  t.equal(select.localBuild(dir), path.join(dir, 'build', 'Release', 'hscr.node'), 'node-gyp-build: build/Release shadows prebuilds');
});

t.test("the libtorch on this machine is found with its version, flavour and the libraries to preload", async (t) => {
  const installs = select.findLibtorchInstalls({ PATH: process.env.PATH });
  t.ok(installs.length >= 1, 'at least one libtorch (Debian 1.13 here)');
  const lt = installs[0];
  t.match(lt.version, /^\d+\.\d+$/);
  t.ok(lt.preload.some((f: string) => /libtorch_cpu\.so/.test(f)) && lt.preload.some((f: string) => /libc10\.so/.test(f)));
  t.equal(lt.cuda, fs.readdirSync(lt.libDir).some((f) => f.startsWith('libtorch_cuda.so')));
});

t.test('the prebuild matching the libtorch found is chosen after a child-process load test', { skip: !fs.existsSync(preloaderBuilt) && 'no local build to copy' }, async (t) => {
  const lt = select.findLibtorchInstalls({ PATH: process.env.PATH })[0];
  const match = select.variantTag(lt);
  const dir = fakeRoot({ [match]: path.join(built, 'hscr.node'), 'torch-9.9-cpu': path.join(built, 'hscr.node') }, preloaderBuilt);
  const s = select.selectAddon(dir, { PATH: process.env.PATH });
  t.equal(s.file, path.join(dir, 'prebuilds', match, 'prebuilds', plat, 'hscr.glibc.node'));
  t.equal(s.variant, match);
  t.equal(s.kind, 'prebuild');
  t.equal(s.preloader, path.join(dir, 'prebuilds', 'loader', 'prebuilds', plat, 'hscr_preload.glibc.node'));
  t.match(s.reason, new RegExp(`libtorch ${lt.version.replace('.', '\\.')}.*node-gyp-build resolved`));
  t.same(s.preload, lt.preload);
});

t.test('no matching variant: an E_NATIVE error naming what was found, what exists, and the fix', async (t) => {
  const dir = fakeRoot({ 'torch-9.9-cuda': path.join(root, 'package.json') });
  let error: (Error & { code?: string }) | undefined;
  try {
    select.selectAddon(dir, { PATH: process.env.PATH });
  } catch (e) {
    error = e as Error & { code?: string };
  }
  t.ok(error, 'no variant matches: it throws');
  t.equal(error?.code, 'E_NATIVE');
  t.match(error?.message, /libtorch found: \d+\.\d+/);
  t.match(error?.message, /prebuilt variants in .*: torch-9\.9-cuda/);
  t.match(error?.message, /fix: install libtorch 9\.9 CUDA .*HSCR_BUILD_FROM_SOURCE=1/s);
});

t.test('a variant that does not load is reported with the loader error, not crashed on', async (t) => {
  const lt = select.findLibtorchInstalls({ PATH: process.env.PATH })[0];
  // A text file under the matching name: dlopen fails in the child, the parent reports it.
  const dir = fakeRoot({ [select.variantTag(lt)]: path.join(root, 'package.json') });
  t.throws(() => select.selectAddon(dir, { PATH: process.env.PATH }), /does not load: .*(invalid ELF|too short|not an ELF)/s);
});
