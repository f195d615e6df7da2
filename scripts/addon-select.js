'use strict';
// Chooses which hscr binary to load, for the install script (scripts/install-native.js), the prebuild step
// (scripts/prebuild.js) and the library (lib/native.ts). Plain CommonJS with no dependencies: it must run
// before dist/ exists.
//
// Prebuilt variants are named by platform, libtorch major.minor and CPU/CUDA:
//   prebuilds/<platform>-<arch>/hscr.napi.glibc.torch-<major>.<minor>.<cpu|cuda>.node
//   prebuilds/<platform>-<arch>/hscr_preload.napi.glibc.node   (torch-free: dlopens libtorch, RTLD_LOCAL)
// (node-gyp-build's tag parser reads `napi` and `glibc` and ignores the rest, so the names stay legal there.)
//
// libtorch is looked for where users have it, in this order:
//   1. LIBTORCH (an unpacked libtorch, or its lib/ folder),
//   2. the PyTorch of HSCR_PYTHON, `python3`, `/usr/bin/python3` (found with importlib, without importing torch),
//   3. Debian's libtorch (/usr/lib/<multiarch>).
// For each libtorch found, the prebuild of the same major.minor and flavour is test-loaded in a child process
// (after preloading that libtorch's libraries), so a binary that crashes on load never takes the caller down.
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { spawnSync } = require('child_process');

const MULTIARCH = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' }[process.arch] || `${process.arch}-linux-gnu`;
const DEBIAN_LIB_DIR = `/usr/lib/${MULTIARCH}`;
/** The libraries hscr.node links, in dependency order (the CUDA ones only where present). */
const TORCH_LIBS = ['libc10', 'libc10_cuda', 'libtorch_cpu', 'libtorch_cuda', 'libtorch'];

function platformDir(root) {
  return path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
}

function variantTag(v) {
  return `torch-${v.version}.${v.cuda ? 'cuda' : 'cpu'}`;
}

function prebuildName(v) {
  return `hscr.napi.glibc.${variantTag(v)}.node`;
}

const PRELOAD_NAME = 'hscr_preload.napi.glibc.node';

/** {version: '1.13', cuda: false, file} from a prebuild's file name, or undefined. */
function parseVariant(file) {
  const m = /^hscr\.napi\.glibc\.torch-(\d+)\.(\d+)\.(cpu|cuda)\.node$/.exec(path.basename(file));
  return m ? { version: `${m[1]}.${m[2]}`, cuda: m[3] === 'cuda', file } : undefined;
}

function listVariants(root) {
  const dir = platformDir(root);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((f) => parseVariant(path.join(dir, f)))
    .filter(Boolean);
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
 * The binary to load and why. Order: HSCR_ADDON_PATH; a local build (build/Release/hscr.node: a developer
 * checkout, it shadows prebuilds); then, per libtorch found, the prebuild of its major.minor and flavour
 * (a CPU prebuild also serves a CUDA libtorch, without CUDA). Returns
 * {file, preloader, preload, libtorch, variant, reason, kind} or throws an Error (code E_NATIVE) whose
 * message lists what was found, what was tried, and the fix.
 */
function selectAddon(root, env = process.env, options = {}) {
  const check = options.testLoad !== false;
  if (env.HSCR_ADDON_PATH) {
    const file = path.resolve(env.HSCR_ADDON_PATH);
    return { file, preload: [], kind: 'HSCR_ADDON_PATH', reason: `HSCR_ADDON_PATH=${env.HSCR_ADDON_PATH}` };
  }
  const local = path.join(root, 'build', 'Release', 'hscr.node');
  if (!options.prebuildsOnly && fs.existsSync(local)) {
    return {
      file: local,
      preload: [],
      kind: 'local build',
      reason: 'a local build (build/Release/hscr.node) exists; it shadows prebuilds and finds libtorch through its RUNPATH',
    };
  }
  const variants = listVariants(root);
  const preloaderFile = path.join(platformDir(root), PRELOAD_NAME);
  const preloader = fs.existsSync(preloaderFile) ? preloaderFile : undefined;
  const installs = findLibtorchInstalls(env);
  const tried = [];
  for (const lt of installs) {
    const exact = variants.find((v) => v.version === lt.version && v.cuda === lt.cuda);
    const cpuOnCuda = lt.cuda ? variants.find((v) => v.version === lt.version && !v.cuda) : undefined;
    for (const v of [exact, cpuOnCuda].filter(Boolean)) {
      const result = check ? testLoad(v.file, preloader, lt.preload) : { ok: true };
      tried.push({ variant: path.basename(v.file), libtorch: lt, ...result });
      if (result.ok) {
        const note = v === exact ? 'matches' : 'is the CPU variant for (CUDA unused with it)';
        return {
          file: v.file,
          preloader,
          preload: lt.preload,
          libtorch: lt,
          variant: variantTag(v),
          kind: 'prebuild',
          reason: `${path.basename(v.file)} ${note} libtorch ${lt.fullVersion}${lt.cuda ? ' (CUDA)' : ''} in ${lt.libDir}, found as ${lt.source}`,
        };
      }
    }
  }
  const err = new Error(noMatchMessage(root, variants, installs, tried));
  err.code = 'E_NATIVE';
  err.details = { variants: variants.map((v) => path.basename(v.file)), installs, tried };
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
    `prebuilt variants for ${process.platform}-${process.arch}: ${variants.map((v) => path.basename(v.file)).join(', ') || 'none'}`,
  );
  for (const t of tried) if (!t.ok) lines.push(`  ${t.variant} with ${t.libtorch.libDir}: does not load: ${t.error}`);
  const wanted = variants.map((v) => `libtorch ${v.version} ${v.cuda ? 'CUDA' : 'CPU'}`).join(' or ');
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
  PRELOAD_NAME,
  platformDir,
  variantTag,
  prebuildName,
  parseVariant,
  listVariants,
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
