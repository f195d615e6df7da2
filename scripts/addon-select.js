'use strict';
// Chooses which hscr binary to load, for the install test (scripts/addon-test.js, run by node-gyp-build-test),
// the prebuild step (scripts/prebuild.js) and the library (lib/native.ts). Plain CommonJS: it must run before
// dist/ exists.
//
// Prebuilds are written by prebuildify (scripts/prebuild.js), one folder per libtorch variant, each laid out
// as node-gyp-build expects of a package folder, so node-gyp-build.path(<variant folder>) resolves the binary
// for this platform, arch, libc and Node-API:
//   prebuilds/torch-<major>.<minor>-<cpu|cuda>/prebuilds/<platform>-<arch>/hscr.glibc.node
//   prebuilds/loader/prebuilds/<platform>-<arch>/hscr_preload.glibc.node   (torch-free: dlopens libtorch)
// Why folders and not file-name tags: node-gyp-build ignores tags it does not know (a `torch-1.13` tag would
// not stop it loading a binary built for another libtorch), and one binary per folder leaves it no choice to
// get wrong. node-gyp-build cannot know which libtorch a machine has, so that part is ours:
//
// libtorch is looked for where users have it, in this order:
//   1. LIBTORCH (an unpacked libtorch, or its lib/ folder),
//   2. the PyTorch of HSCR_PYTHON, `python3`, `/usr/bin/python3` (found with importlib, without importing torch),
//   3. Debian's libtorch (/usr/lib/<multiarch>).
// For each libtorch found, the variant of the same major.minor and flavour is test-loaded in a child process
// (after preloading that libtorch's libraries), as node-llama-cpp does, so a binary that crashes on load
// never takes the caller down.
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { spawnSync } = require('child_process');
const nodeGypBuild = require('node-gyp-build');

const MULTIARCH = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' }[process.arch] || `${process.arch}-linux-gnu`;
const DEBIAN_LIB_DIR = `/usr/lib/${MULTIARCH}`;
/** The libraries hscr.node links, in dependency order (the CUDA ones only where present). */
const TORCH_LIBS = ['libc10', 'libc10_cuda', 'libtorch_cpu', 'libtorch_cuda', 'libtorch'];

function platformTuple() {
  return `${process.platform}-${process.arch}`;
}

/** 'torch-1.13-cpu': the variant folder's name under prebuilds/. */
function variantTag(v) {
  return `torch-${v.version}-${v.cuda ? 'cuda' : 'cpu'}`;
}

function variantDir(root, v) {
  return path.join(root, 'prebuilds', variantTag(v));
}

const LOADER_DIR = 'loader';

/** {version: '1.13', cuda: false} from a variant folder's name, or undefined. */
function parseVariant(name) {
  const m = /^torch-(\d+)\.(\d+)-(cpu|cuda)$/.exec(path.basename(name));
  return m ? { version: `${m[1]}.${m[2]}`, cuda: m[3] === 'cuda' } : undefined;
}

/** The binary node-gyp-build resolves in `dir` (a package-like folder) for this machine, or undefined. */
function resolveIn(dir) {
  if (!fs.existsSync(dir)) return undefined;
  try {
    const file = nodeGypBuild.path(dir);
    // node-gyp-build falls back to prebuilds beside the node executable: only a file inside `dir` counts.
    return file.startsWith(dir + path.sep) ? file : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The variant folders under prebuilds/ ({version, cuda, dir, file}); `file` is what node-gyp-build resolves
 * there for this platform (undefined when the variant has no build for it).
 */
function listVariants(root) {
  let names;
  try {
    names = fs.readdirSync(path.join(root, 'prebuilds'));
  } catch {
    return [];
  }
  return names
    .map((name) => {
      const v = parseVariant(name);
      if (!v) return undefined;
      const dir = path.join(root, 'prebuilds', name);
      return { ...v, dir, file: resolveIn(dir) };
    })
    .filter(Boolean);
}

/** The torch-free preloader prebuild for this machine, or undefined. */
function preloaderFile(root) {
  return resolveIn(path.join(root, 'prebuilds', LOADER_DIR));
}

/**
 * A local build, as node-gyp-build finds one: the first *.node in build/Release (or build/Debug) of the
 * package folder. CMake writes hscr.node alone there (the preloader goes to build/loader/).
 */
function localBuild(root) {
  const file = resolveIn(root);
  return file && file.startsWith(path.join(root, 'build') + path.sep) ? file : undefined;
}

/** The library file for `base` in `dir` (libc10.so, else libc10.so.X.Y…), or undefined. */
function libFile(dir, base) {
  let names;
  try {
    names = fs.readdirSync(dir);
  } catch {
    return undefined;
  }
  if (names.includes(`${base}.so`)) return path.join(dir, `${base}.so`);
  const versioned = names.filter((n) => n.startsWith(`${base}.so.`)).sort((a, b) => a.length - b.length);
  return versioned.length ? path.join(dir, versioned[0]) : undefined;
}

function readVersionPy(file) {
  try {
    const text = fs.readFileSync(file, 'utf8');
    const v = /__version__\s*=\s*['"]([^'"]+)['"]/.exec(text);
    const cuda = /^cuda\s*(?::[^=]*)?=\s*['"]([^'"]+)['"]/m.exec(text);
    return v ? { full: v[1], cudaVersion: cuda ? cuda[1] : undefined } : undefined;
  } catch {
    return undefined;
  }
}

function readTorchHeaderVersion(root) {
  for (const rel of ['include/torch/csrc/api/include/torch/version.h', 'include/torch/version.h']) {
    try {
      const text = fs.readFileSync(path.join(root, rel), 'utf8');
      const major = /TORCH_VERSION_MAJOR\s+(\d+)/.exec(text);
      const minor = /TORCH_VERSION_MINOR\s+(\d+)/.exec(text);
      const patch = /TORCH_VERSION_PATCH\s+(\d+)/.exec(text);
      if (major && minor) return `${major[1]}.${minor[1]}.${patch ? patch[1] : 0}`;
    } catch {
      /* try the next layout */
    }
  }
  return undefined;
}

/**
 * What libtorch lives in `dir` (a lib folder, or a python torch package folder): its real lib folder,
 * version and flavour. `versionDir` may hold PyTorch's version.py. Undefined when there is no libtorch_cpu.
 */
function describeLibtorch(dir, source, versionDir) {
  const cpu = libFile(dir, 'libtorch_cpu');
  if (!cpu) return undefined;
  const real = fs.realpathSync(cpu);
  const libDir = path.dirname(real);
  let full;
  let cudaVersion;
  for (const py of [versionDir && path.join(versionDir, 'version.py'), path.join(dir, '..', 'version.py'), path.join(dir, 'version.py')]) {
    const v = py && readVersionPy(py);
    if (v) {
      full = v.full;
      cudaVersion = v.cudaVersion;
      break;
    }
  }
  if (!full) {
    try {
      full = fs.readFileSync(path.join(libDir, '..', 'build-version'), 'utf8').trim();
    } catch {
      /* not an unpacked libtorch */
    }
  }
  if (!full) {
    const m = /\.so\.(\d+\.\d+(?:\.\d+)?)$/.exec(real);
    if (m) full = m[1];
  }
  if (!full) full = readTorchHeaderVersion(path.join(libDir, '..'));
  if (!full) return undefined;
  const mm = /^(\d+)\.(\d+)/.exec(full);
  if (!mm) return undefined;
  const cuda = !!libFile(libDir, 'libtorch_cuda');
  const preload = TORCH_LIBS.map((b) => libFile(libDir, b)).filter(Boolean);
  return { libDir, version: `${mm[1]}.${mm[2]}`, fullVersion: full, cuda, cudaVersion, source, preload };
}

/** The torch package folder of a python interpreter, found without importing torch (fast). */
function pythonTorchDir(python) {
  const r = spawnSync(
    python,
    ['-c', "import importlib.util as u, os; s = u.find_spec('torch'); print(os.path.dirname(s.origin) if s and s.origin else '')"],
    { stdio: ['ignore', 'pipe', 'ignore'], timeout: 20000 },
  );
  if (r.status !== 0 || !r.stdout) return undefined;
  const dir = r.stdout.toString().trim();
  return dir || undefined;
}

/** Every libtorch this machine has, in the order above (duplicates of one lib folder kept once). */
function findLibtorchInstalls(env = process.env) {
  const found = [];
  const add = (d) => {
    if (d && !found.some((f) => f.libDir === d.libDir)) found.push(d);
  };
  if (env.LIBTORCH) {
    const root = path.resolve(env.LIBTORCH);
    add(describeLibtorch(path.join(root, 'lib'), 'LIBTORCH') || describeLibtorch(root, 'LIBTORCH'));
  }
  const pythons = [env.HSCR_PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean);
  for (const python of [...new Set(pythons)]) {
    const torchDir = pythonTorchDir(python);
    if (!torchDir) continue;
    const source = `PyTorch of ${python} (${torchDir})`;
    add(describeLibtorch(path.join(torchDir, 'lib'), source, torchDir) || describeLibtorch(torchDir, source, torchDir));
  }
  add(describeLibtorch(DEBIAN_LIB_DIR, "Debian's libtorch"));
  return found;
}

function cacheFile(key) {
  const hash = crypto.createHash('sha1').update(key).digest('hex').slice(0, 16);
  return path.join(os.tmpdir(), `hscr-loadcheck-${hash}`);
}

/**
 * Loads `file` in a child process (after preloading `preload` through `preloader`), and returns
 * {ok, error}. A success is remembered (keyed by the files' sizes and mtimes) so later processes skip it.
 */
function testLoad(file, preloader, preload) {
  const stamp = [file, preloader, ...preload]
    .filter(Boolean)
    .map((f) => {
      try {
        const s = fs.statSync(f);
        return `${f}:${s.size}:${s.mtimeMs}`;
      } catch {
        return `${f}:missing`;
      }
    })
    .join('|');
  const marker = cacheFile(stamp);
  if (fs.existsSync(marker)) return { ok: true, cached: true };
  const script =
    (preloader && preload.length ? `require(${JSON.stringify(preloader)}).preload(${JSON.stringify(preload)});` : '') +
    `const a = require(${JSON.stringify(file)}); if (typeof a.runtimeInfo !== 'function') throw new Error('not an hscr addon');` +
    `process.stdout.write(JSON.stringify(a.runtimeInfo()));`;
  const r = spawnSync(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120000 });
  if (r.status === 0) {
    try {
      fs.writeFileSync(marker, r.stdout);
    } catch {
      /* an unwritable tmp only costs the next process another check */
    }
    return { ok: true, cached: false };
  }
  const stderr = (r.stderr || '').toString().trim().split('\n');
  const why = stderr.find((l) => /Error|error|undefined symbol|cannot open/.test(l)) || stderr.pop() || `exit ${r.status ?? r.signal}`;
  return { ok: false, error: why.trim() };
}

/**
 * The binary to load and why. Order: HSCR_ADDON_PATH; a local build (node-gyp-build's own precedence:
 * build/Release shadows prebuilds, as in a developer checkout or after a build from source); then, per
 * libtorch found, the variant folder of its major.minor and flavour (a CPU variant also serves a CUDA libtorch,
 * without CUDA), its binary resolved by node-gyp-build and test-loaded in a child process. Returns
 * {file, preloader, preload, libtorch, variant, reason, kind} or throws an Error (code E_NATIVE) whose
 * message lists what was found, what was tried, and the fix.
 */
function selectAddon(root, env = process.env, options = {}) {
  const check = options.testLoad !== false;
  if (env.HSCR_ADDON_PATH) {
    const file = path.resolve(env.HSCR_ADDON_PATH);
    return { file, preload: [], kind: 'HSCR_ADDON_PATH', reason: `HSCR_ADDON_PATH=${env.HSCR_ADDON_PATH}` };
  }
  const local = options.prebuildsOnly ? undefined : localBuild(root);
  if (local) {
    return {
      file: local,
      preload: [],
      kind: 'local build',
      reason: `node-gyp-build found a local build (${path.relative(root, local)}); it shadows prebuilds and finds libtorch through its RUNPATH`,
    };
  }
  const variants = listVariants(root);
  const preloader = preloaderFile(root);
  const installs = findLibtorchInstalls(env);
  const tried = [];
  for (const lt of installs) {
    const exact = variants.find((v) => v.version === lt.version && v.cuda === lt.cuda && v.file);
    const cpuOnCuda = lt.cuda ? variants.find((v) => v.version === lt.version && !v.cuda && v.file) : undefined;
    for (const v of [exact, cpuOnCuda].filter(Boolean)) {
      const result = check ? testLoad(v.file, preloader, lt.preload) : { ok: true };
      tried.push({ variant: variantTag(v), file: v.file, libtorch: lt, ...result });
      if (result.ok) {
        const note = v === exact ? 'matches' : 'is the CPU variant for (CUDA unused with it)';
        return {
          file: v.file,
          preloader,
          preload: lt.preload,
          libtorch: lt,
          variant: variantTag(v),
          kind: 'prebuild',
          reason:
            `variant ${variantTag(v)} ${note} libtorch ${lt.fullVersion}${lt.cuda ? ' (CUDA)' : ''} in ${lt.libDir}, found as ${lt.source}; ` +
            `node-gyp-build resolved ${path.relative(v.dir, v.file)} in it` +
            (check ? `, and it loaded in a child process${result.cached ? ' (cached)' : ''}` : ''),
        };
      }
    }
  }
  const err = new Error(noMatchMessage(root, variants, installs, tried));
  err.code = 'E_NATIVE';
  err.details = { variants: variants.map((v) => ({ variant: variantTag(v), file: v.file })), installs, tried };
  throw err;
}

function noMatchMessage(root, variants, installs, tried) {
  const lines = ['no hscr binary matches the libtorch on this machine.'];
  lines.push(
    installs.length
      ? `libtorch found: ${installs.map((l) => `${l.fullVersion}${l.cuda ? ' CUDA' : ' CPU'} in ${l.libDir} (${l.source})`).join('; ')}`
      : 'libtorch found: none (looked at LIBTORCH, the PyTorch of python3 and /usr/bin/python3, and ' + DEBIAN_LIB_DIR + ')',
  );
  lines.push(
    `prebuilt variants in ${path.join(root, 'prebuilds')}: ` +
      (variants.map((v) => `${variantTag(v)}${v.file ? '' : ` (none for ${platformTuple()})`}`).join(', ') || 'none'),
  );
  for (const t of tried) if (!t.ok) lines.push(`  ${t.variant} (${t.file}) with ${t.libtorch.libDir}: does not load: ${t.error}`);
  const wanted = variants
    .filter((v) => v.file)
    .map((v) => `libtorch ${v.version} ${v.cuda ? 'CUDA' : 'CPU'}`)
    .join(' or ');
  lines.push(
    'fix: ' +
      (wanted ? `install ${wanted} (e.g. the matching PyTorch, or point LIBTORCH at an unpacked libtorch), or ` : '') +
      `build from source against your libtorch: \`cd ${root} && HSCR_BUILD_FROM_SOURCE=1 npm run install\` ` +
      '(needs cmake and g++; LIBTORCH or python3 with torch picks the libtorch).',
  );
  return lines.join('\n');
}

module.exports = {
  DEBIAN_LIB_DIR,
  LOADER_DIR,
  platformTuple,
  variantTag,
  variantDir,
  parseVariant,
  listVariants,
  preloaderFile,
  localBuild,
  describeLibtorch,
  findLibtorchInstalls,
  testLoad,
  selectAddon,
};

if (require.main === module) {
  // `node scripts/addon-select.js`: what would load here, and why (used by `hscr doctor` users and CI logs).
  try {
    const s = selectAddon(path.resolve(__dirname, '..'), process.env, { prebuildsOnly: process.argv.includes('--prebuilds') });
    process.stdout.write(JSON.stringify(s, null, 2) + '\n');
  } catch (e) {
    process.stderr.write(e.message + '\n');
    process.exit(1);
  }
}
