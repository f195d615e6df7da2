'use strict';
// Finds libtorch's CMake package, in the order the docs promise:
// 1. LIBTORCH (a libtorch root) or Torch_DIR env; 2. the torch of python3 (the CUDA build on GPU machines);
// 3. Debian's libtorch-dev. Prints the directory, or explains what to install.
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const DEBIAN_TORCH_DIR = '/usr/lib/x86_64-linux-gnu/cmake/Torch';

function hasConfig(dir) {
  return !!dir && fs.existsSync(path.join(dir, 'TorchConfig.cmake'));
}

function fromPython(python) {
  try {
    const out = execFileSync(python, ['-c', 'import torch, os; print(os.path.dirname(torch.__file__))'], {
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 60000,
    });
    return path.join(out.toString().trim(), 'share', 'cmake', 'Torch');
  } catch {
    return undefined;
  }
}

function candidates(env = process.env) {
  const list = [];
  if (env.Torch_DIR) list.push({ dir: env.Torch_DIR, source: 'Torch_DIR' });
  if (env.LIBTORCH) list.push({ dir: path.join(env.LIBTORCH, 'share', 'cmake', 'Torch'), source: 'LIBTORCH' });
  for (const python of ['python3', '/usr/bin/python3']) {
    const dir = fromPython(python);
    if (dir) list.push({ dir, source: `${python} torch` });
  }
  list.push({ dir: DEBIAN_TORCH_DIR, source: 'Debian libtorch-dev' });
  return list;
}

function findTorch(env = process.env) {
  const tried = candidates(env);
  const found = tried.find((c) => hasConfig(c.dir));
  if (found) return found;
  const lines = tried.map((c) => `  - ${c.dir} (${c.source})`).join('\n');
  const err = new Error(
    `libtorch not found. Looked for TorchConfig.cmake in:\n${lines}\n` +
      'Install it with `bash scripts/setup.sh` (Debian: apt-get install libtorch-dev libopenblas0-openmp cmake), ' +
      'or point LIBTORCH at an unpacked libtorch / Torch_DIR at its share/cmake/Torch.',
  );
  err.code = 'E_NATIVE';
  throw err;
}

module.exports = { findTorch, candidates };

if (require.main === module) {
  try {
    const { dir, source } = findTorch();
    process.stdout.write(process.argv.includes('--json') ? JSON.stringify({ dir, source }) + '\n' : dir + '\n');
  } catch (e) {
    process.stderr.write(e.message + '\n');
    process.exit(1);
  }
}
