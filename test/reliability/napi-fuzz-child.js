'use strict';
/**
 * The N-API fuzz (issue 13): calls every function and method the native addon exports with wrong arguments
 * (types, shapes, dtypes, disposed handles, wrong `this`, huge sizes, NaN) drawn from a seeded generator.
 * Runs in a child process of test/reliability/napi-fuzz.test.ts so that a crash (a signal, an abort) is seen
 * as a failure instead of taking the test runner down. Prints one JSON summary line.
 *
 * Every call must return, or throw/reject with an HscrError (or with the JS exception a hostile argument
 * threw itself: the Proxy below). Anything else is recorded as a finding; a call that does not settle within
 * CALL_TIMEOUT_MS is recorded as a hang.
 */
for (const id of ['ts-node/register/transpile-only', '@isaacs/ts-node-temp-fork-for-pr-2009/register/transpile-only']) {
  try {
    require(id);
    break;
  } catch (e) {
    if (e.code !== 'MODULE_NOT_FOUND') throw e;
  }
}
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { native } = require('../../lib/native.ts');
const { HscrError } = require('../../lib/errors.ts');

const SEED = Number(process.env.FUZZ_SEED ?? 1);
const ATTEMPTS = Number(process.env.FUZZ_ATTEMPTS ?? 3000);
const CALL_TIMEOUT_MS = 20_000;

// mulberry32: small, seeded, reproducible.
let state = SEED >>> 0;
function rand() {
  state = (state + 0x6d2b79f5) >>> 0;
  let x = state;
  x = Math.imul(x ^ (x >>> 15), x | 1);
  x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
}
const pick = (items) => items[Math.floor(rand() * items.length)];
const chance = (p) => rand() < p;

const addon = native();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-fuzz-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
// Relative junk paths ('cuda', 'sum') are valid file names: they must land in the temp folder.
process.chdir(tmp);

// ---- valid pieces the fuzz mutates ---------------------------------------------------------------------------
const IMAGE = -200;
function tinyConfig() {
  return {
    architecture: 'llava-hf',
    vision: { hiddenSize: 16, intermediateSize: 32, numLayers: 2, numHeads: 2, imageSize: 16, patchSize: 8, numChannels: 3, layerNormEps: 1e-5, hiddenAct: 'quick_gelu' },
    projector: { type: 'mlp2x_gelu' },
    text: { vocabSize: 31, hiddenSize: 16, intermediateSize: 32, numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 8, rmsNormEps: 1e-5, ropeTheta: 10000, slidingWindow: null, tieWordEmbeddings: false, maxPositionEmbeddings: 64, bosTokenId: 1, eosTokenId: 2, padTokenId: 0 },
    selectLayer: -2,
    selectFeature: 'patch',
    imageTokenIndex: IMAGE,
    template: 'mistral_instruct',
  };
}
const T = addon.Tensor;
const live = [];
function keep(t) {
  live.push(t);
  return t;
}
const pixelsOk = () => keep(T.fromArray(new Float32Array(2 * 3 * 16 * 16).map((_, i) => Math.sin(i)), [2, 3, 16, 16]));
function disposedTensor() {
  const t = T.fromArray(new Float32Array(2), [2]);
  t.dispose();
  return t;
}

const hostile = new Proxy(
  {},
  {
    get() {
      throw new Error('hostile getter');
    },
    has() {
      throw new Error('hostile getter');
    },
    ownKeys() {
      throw new Error('hostile getter');
    },
  },
);

const NUMBERS = [0, -1, 1, 2, 3, 0.5, -0, NaN, Infinity, -Infinity, 2 ** 40, 2 ** 62, -(2 ** 53), 1e308, Number.MAX_SAFE_INTEGER + 2, 4.7];
const STRINGS = ['', 'x', 'float32', 'float16', 'bfloat16', 'int32', 'uint8', 'bool', 'cpu', 'cuda', 'cuda:99', 'meta', 'a\0b', 'é'.repeat(3000), 'none', 'token', 'sum', 'lora', 'full', 'mlpo', 'sft'];
function junk(depth = 0) {
  switch (Math.floor(rand() * 12)) {
    case 0:
      return pick([undefined, null, true, false]);
    case 1:
    case 2:
      return pick(NUMBERS);
    case 3:
      return pick(STRINGS);
    case 4:
      return pick([Symbol('s'), 10n, -1n, 2n ** 70n, () => 1, hostile, new ArrayBuffer(8), Object.create(null), new Date(0), /x/]);
    case 5:
      return pick([new Float32Array(4), new Float32Array([NaN, Infinity, 1, 2]), new Uint16Array(2), new BigInt64Array(2), new Int32Array(3), new Uint8Array([0, 1, 2]), new Int8Array(1), new Float64Array(0)]);
    case 6:
      return depth > 1 ? [] : Array.from({ length: Math.floor(rand() * 4) }, () => junk(depth + 1));
    case 7:
      return pick([[1, 2], [NaN], [-1], [2 ** 62, 2 ** 62], [2 ** 40], [0, 2 ** 62], [3, 'x'], [1.5]]);
    case 8:
      return depth > 1 ? {} : Object.fromEntries(Array.from({ length: Math.floor(rand() * 3) }, () => [pick(['rows', 'pixels', 'lr', 'seed', 'r', 'loss', 'name', 'file', 'key', 'rank']), junk(depth + 1)]));
    case 9:
      return tensorArg();
    case 10:
      return pick([disposedTensor(), handles.disposedModel, Object.create(T.prototype), T.prototype, handles.model, handles.optimizer ?? {}]);
    default:
      return pick([tmpFile(), tinyConfig(), batchArg()]);
  }
}
function tensorArg() {
  const kind = Math.floor(rand() * 8);
  try {
    switch (kind) {
      case 0:
        return keep(T.fromArray(new Float32Array(6).fill(NaN), [2, 3]));
      case 1:
        return keep(T.fromArray(new Int32Array(4), [2, 2]));
      case 2:
        return keep(T.fromArray(new Float32Array(0), [0, 5]));
      case 3:
        return keep(T.fromArray(new Uint8Array([0, 1, 1, 0]), [4], 'bool'));
      case 4:
        return keep(T.fromArray(new Float32Array(12), [1, 3, 2, 2]));
      case 5:
        return keep(T.fromArray(new Uint16Array(4), [4], 'bfloat16'));
      case 6:
        return pixelsOk();
      default:
        return disposedTensor();
    }
  } catch {
    return undefined;
  }
}
function rowsArg() {
  const ok = () => ({ image: 0, prompt: [1, 5, IMAGE, 6], answer: [7, 8, 2] });
  return Array.from({ length: 1 + Math.floor(rand() * 3) }, () => {
    const row = ok();
    if (chance(0.6)) row[pick(['image', 'prompt', 'answer', 'perturb', 'seed'])] = chance(0.5) ? junk(1) : pick([[IMAGE, IMAGE], [1, 99999], Int32Array.from([1, IMAGE, 3]), [1, IMAGE, -5], 5, 2 ** 40]);
    return row;
  });
}
function batchArg() {
  const b = { pixels: chance(0.6) ? pixelsOk() : tensorArg(), rows: rowsArg() };
  if (chance(0.2)) b[pick(['pixels', 'rows'])] = junk(1);
  return b;
}
function optionsArg(keys) {
  const o = {};
  for (const k of keys) if (chance(0.4)) o[k] = chance(0.5) ? junk(1) : pick(NUMBERS);
  return chance(0.1) ? junk(1) : o;
}
let fileCount = 0;
function tmpFile() {
  return pick([path.join(tmp, `out-${fileCount++}.safetensors`), path.join(tmp, 'corrupt.safetensors'), path.join(tmp, 'valid.safetensors'), tmp, '/nonexistent/dir/x.safetensors', '/proc/self/mem', '']);
}
fs.writeFileSync(path.join(tmp, 'corrupt.safetensors'), Buffer.from([255, 255, 255, 255, 0, 0, 0, 0, 123]));

// ---- handles -----------------------------------------------------------------------------------------------------
const handles = { model: undefined, disposedModel: undefined, optimizer: undefined };

async function setUp() {
  handles.model = await addon.Model.create(tinyConfig(), { seed: 1 });
  handles.disposedModel = await addon.Model.create(tinyConfig(), { seed: 2 });
  handles.disposedModel.dispose();
  await addon.writeSafetensors(path.join(tmp, 'valid.safetensors'), { a: T.fromArray(new Float32Array([1, NaN]), [2]), b: T.fromArray(new Int32Array([1]), [1]) }, { step: 'x' });
  await handles.model.saveWeights(path.join(tmp, 'model.safetensors'), handles.model.parameters().map((p) => ({ name: p.name, key: p.name })));
}

const modelArg = () => (chance(0.7) ? handles.model : junk());

// Every export of the addon → how to call it with wrong arguments. A new export without an entry fails the run.
const FUNCTIONS = {
  setErrorClass: () => [pick([undefined, 1, 'x', () => 1, {}, Symbol('s'), hostile])],
  setNumThreads: () => [pick([0, -1, 2 ** 40, NaN, Infinity, 'x', undefined, 1.5, 1025, 2])],
  runtimeInfo: () => [junk()],
  cpuCacheStats: () => [junk()],
  releaseCpuCache: () => [junk()],
  setCpuCacheLimit: () => [pick([0, -1, 2 ** 60, NaN, Infinity, 'x', undefined, null, 1.5, 64 << 20])],
  gemmBenchmark: () => [pick([0, -1, 2 ** 40, NaN, 'x', 1, 3, 32769]), pick([0, -1, NaN, 'x', 1e-4, 601, Infinity]), chance(0.5) ? junk() : 'cpu', chance(0.5) ? junk() : 'float32'],
  matmulAsync: () => [chance(0.5) ? tensorArg() : junk(), chance(0.5) ? tensorArg() : junk()],
  randn: () => [chance(0.7) ? pick([[2 ** 40], [2 ** 62, 2 ** 62], [-1, 2], [NaN], [2, 3], [], [2 ** 31, 2 ** 31]]) : junk(), chance(0.5) ? { seed: pick(NUMBERS), dtype: pick(STRINGS) } : junk()],
  readSafetensors: () => [chance(0.7) ? tmpFile() : junk()],
  safetensorsKeys: () => [chance(0.7) ? tmpFile() : junk()],
  writeSafetensors: () => [chance(0.7) ? path.join(tmp, `w-${fileCount++}.safetensors`) : junk(), chance(0.5) ? { t: tensorArg(), [pick(['__metadata__', 'u', '\ud800'])]: tensorArg() } : junk(), chance(0.5) ? { k: pick(['v', 1, null]) } : junk()],
  safetensorsShards: () => [chance(0.7) ? pick([tmp, '/nonexistent', path.join(tmp, 'valid.safetensors')]) : junk()],
  keptVisualTokens: () => [pick([...NUMBERS, 16, 'x']), pick([0, 0.7, 1, -0.1, 1.1, NaN, 'x']), pick([...NUMBERS, 'x', 1n])],
  contrastiveScores: () => [tensorArg(), tensorArg(), tensorArg(), tensorArg(), optionsArg(['beta', 'n', 'alpha', 'candidates', 'plausibility'])],
  contrastiveForModel: () => [modelArg(), chance(0.7) ? { ...batchArg(), rows: rowsArg().map((r) => ({ ...r, eligible: chance(0.5) ? junk(1) : [1, 0, 1] })) } : junk(), optionsArg(['beta', 'n', 'alpha', 'candidates', 'ratio', 'perturb', 'seed', 'views', 'debugLogits'])],
  mlpoLoss: () => [chance(0.7) ? { policyChosen: tensorArg(), policyRejected: tensorArg(), referenceChosen: tensorArg(), referenceRejected: tensorArg(), mask: tensorArg() } : junk(), optionsArg(['gamma', 'lambdaExplicit', 'lambdaImplicit', 'pairWeighting'])],
  addLora: () => [modelArg(), optionsArg(['r', 'alpha', 'dropout', 'targets', 'scope', 'seed'])],
  setTrainable: () => [modelArg(), pick(['lora', 'full', 'none', 'x', 1, undefined])],
  setLoraEnabled: () => [modelArg(), junk()],
  mergeLora: () => [modelArg(), junk()],
  setTraining: () => [modelArg(), junk()],
  forwardBackward: () => [modelArg(), chance(0.7) ? batchArg() : junk(), optionsArg(['loss', 'scale', 'groups', 'referenceLogps', 'seed', 'perturb', 'ratio', 'gamma'])],
  rngState: () => [junk()],
  setRngState: () => [chance(0.5) ? pick([keep(T.fromArray(new Uint8Array(5056).map(() => Math.floor(rand() * 256)), [5056])), keep(T.fromArray(new Uint8Array(3), [3]))]) : junk()],
  manualSeed: () => [pick([...NUMBERS, 'x', -1n, 10n])],
};
const CLASSES = {
  Tensor: {
    statics: { fromArray: () => [junk(), chance(0.7) ? pick([[2, 2], [4], [-1, -4], [2 ** 62, 4], [0, 2 ** 62], [NaN], ['x']]) : junk(), chance(0.5) ? pick(STRINGS) : junk()] },
    instance: () => (chance(0.8) ? tensorArg() : disposedTensor()),
    methods: { toArray: () => [], to: () => [pick(STRINGS)], toAsync: () => [chance(0.7) ? pick(STRINGS) : junk()], dispose: () => [] },
    getters: ['shape', 'dtype', 'device', 'numel', 'disposed'],
  },
  Model: {
    statics: {
      create: () => {
        const cfg = tinyConfig();
        const part = pick(['vision', 'text', 'projector', null]);
        const key = part ? pick(Object.keys(cfg[part])) : pick(Object.keys(cfg));
        const value = chance(0.5) ? pick(NUMBERS) : junk(1);
        if (part) cfg[part][key] = value;
        else cfg[key] = value;
        return [chance(0.85) ? cfg : junk(), optionsArg(['seed', 'device', 'dtype', 'memoryCheck', 'maxMemoryBytes'])];
      },
    },
    instance: () => (chance(0.85) ? handles.model : handles.disposedModel),
    methods: {
      parameters: () => [],
      loadWeights: () => [chance(0.7) ? [{ name: pick(['language_model.lm_head.weight', 'x', 1]), file: pick([path.join(tmp, 'model.safetensors'), tmpFile(), 5]), key: pick(['language_model.lm_head.weight', 'language_model.model.norm.weight', 'a', 'b']) }] : junk(), optionsArg(['allowNonFinite'])],
      saveWeights: () => [chance(0.7) ? path.join(tmp, `m-${fileCount++}.safetensors`) : junk(), chance(0.7) ? [{ name: pick(['language_model.lm_head.weight', 'x']), key: pick(['k', '__metadata__', 1]) }] : junk(), chance(0.5) ? { a: pick(['b', 1]) } : junk(), optionsArg(['allowNonFinite'])],
      logprobs: () => [chance(0.8) ? batchArg() : junk(), optionsArg(['perturb', 'ratio', 'seed'])],
      generate: () => [chance(0.8) ? batchArg() : junk(), { ...optionsArg(['perturb', 'ratio', 'seed', 'temperature', 'topP', 'useCache']), maxNewTokens: pick([0, -1, 1, 2, 2 ** 40, NaN, 'x', 64]) }],
      dispose: () => [],
    },
    getters: ['disposed', 'device', 'dtype'],
  },
  Optimizer: {
    statics: { create: () => [chance(0.5) ? pick([handles.model, [tensorArg(), tensorArg()], [keep(T.fromArray(new Float32Array([1, 2]), [2]))]]) : junk(), optionsArg(['beta1', 'beta2', 'eps', 'weightDecay'])] },
    instance: () => handles.optimizer,
    methods: {
      step: () => [chance(0.8) ? { lr: pick([0.1, NaN, Infinity, -1, 'x', 1e38]), maxGradNorm: pick([0, 1, NaN, -1]), skip: junk(1), grads: chance(0.5) ? [tensorArg()] : undefined, processGroup: chance(0.1) ? junk(1) : undefined } : junk()],
      save: () => [chance(0.7) ? path.join(tmp, `o-${fileCount++}.safetensors`) : junk()],
      load: () => [chance(0.7) ? tmpFile() : junk()],
      parameterNames: () => [],
    },
    getters: ['stepCount'],
  },
  ProcessGroup: {
    // Only argument sets that cannot form a group: a valid one would wait for peers at a TCPStore.
    statics: { create: () => [chance(0.8) ? { rank: pick([0, 1, -1, NaN, 'x']), worldSize: pick([0, -1, NaN, 'x', 2 ** 40, undefined]), masterAddr: pick(['127.0.0.1', '', 1]), masterPort: pick([0, -1, 70000, 'x']), backend: pick(['gloo', 'nccl', 'mpi', 1]), timeoutMs: pick([1, -1, NaN]) } : junk()] },
    instance: () => undefined,
    methods: { allreduce: () => [junk()], barrier: () => [], broadcastParameters: () => [modelArg()], destroy: () => [] },
    getters: ['rank', 'worldSize', 'backend'],
  },
};

// ---- the run -----------------------------------------------------------------------------------------------------
const summary = { seed: SEED, attempts: 0, returned: 0, hscrErrors: 0, hostileRethrown: 0, receiverRejected: 0, hangs: 0, findings: [], byTarget: {}, codes: {} };

// A prototype method called on a foreign receiver never reaches hscr's code: V8's signature check ("Illegal
// invocation") or napi_unwrap ("Invalid argument") refuse it first. Counted apart: not a crash, not an hscr bug.
const RECEIVER_ERRORS = new Set(['Illegal invocation', 'Invalid argument']);

function classify(target, err, wrongThis) {
  if (wrongThis && err && RECEIVER_ERRORS.has(err.message)) {
    summary.receiverRejected++;
  } else if (err instanceof HscrError) {
    summary.hscrErrors++;
    summary.codes[err.code] = (summary.codes[err.code] ?? 0) + 1;
  } else if (err && err.message === 'hostile getter') {
    summary.hostileRethrown++;
  } else {
    summary.findings.push({ target, error: String(err && err.stack ? err.stack.split('\n')[0] : err) });
  }
}

async function attempt(target, call, wrongThis = false) {
  summary.attempts++;
  summary.byTarget[target] = (summary.byTarget[target] ?? 0) + 1;
  try {
    const r = call();
    if (r && typeof r.then === 'function') {
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error('timeout'), { hang: true })), CALL_TIMEOUT_MS);
      });
      try {
        const value = await Promise.race([r, timeout]);
        if (value && typeof value.dispose === 'function' && value !== handles.model) value.dispose();
      } finally {
        clearTimeout(timer);
      }
    } else if (r && typeof r.dispose === 'function' && r !== handles.model && target.startsWith('Tensor.fromArray')) {
      r.dispose();
    }
    summary.returned++;
  } catch (err) {
    if (err && err.hang) {
      summary.hangs++;
      summary.findings.push({ target, error: 'did not settle within 20 s' });
    } else classify(target, err, wrongThis || target.includes('wrong this'));
  } finally {
    addon.setErrorClass(HscrError);
  }
}

function plan() {
  const calls = [];
  for (const [name, args] of Object.entries(FUNCTIONS)) calls.push([name, () => addon[name](...args())]);
  for (const [cls, spec] of Object.entries(CLASSES)) {
    const C = addon[cls];
    for (const [m, args] of Object.entries(spec.statics)) calls.push([`${cls}.${m}`, () => C[m](...args())]);
    for (const [m, args] of Object.entries(spec.methods)) {
      calls.push([`${cls}#${m}${spec.instance() === undefined ? ' (wrong this: no instance)' : ''}`, () => {
        const self = spec.instance();
        if (self === undefined) return Reflect.apply(C.prototype[m], junk(), args());
        if (m === 'dispose' && (self === handles.model || self === handles.optimizer)) return undefined; // keep the shared handles
        return self[m](...args());
      }]);
      calls.push([`${cls}#${m} (wrong this)`, () => Reflect.apply(C.prototype[m], pick([{}, Object.create(C.prototype), disposedTensor(), handles.disposedModel, 1, undefined]), args())]);
    }
    for (const g of spec.getters) {
      const get = Object.getOwnPropertyDescriptor(C.prototype, g).get;
      calls.push([`${cls}.${g} (getter)`, () => Reflect.apply(get, chance(0.5) && spec.instance() ? spec.instance() : pick([{}, Object.create(C.prototype), 1]), []), 'getter']);
    }
  }
  return calls;
}

async function main() {
  await setUp();
  handles.optimizer = addon.Optimizer.create([T.fromArray(new Float32Array([1, 2, 3]), [3])], { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
  const exported = Object.keys(addon).filter((k) => typeof addon[k] === 'function').sort();
  const covered = new Set([...Object.keys(FUNCTIONS), ...Object.keys(CLASSES)]);
  summary.uncovered = exported.filter((k) => !covered.has(k));
  summary.exported = exported.length;
  const calls = plan();
  summary.targets = calls.length;
  // Every target at least once, then random ones up to ATTEMPTS.
  for (const [name, call, kind] of calls) await attempt(name, call, kind === 'getter');
  // Then random targets, a foreign receiver one time in five (V8 refuses those before hscr's code runs).
  const direct = calls.filter(([name]) => !name.includes('wrong this'));
  const foreign = calls.filter(([name]) => name.includes('wrong this'));
  while (summary.attempts < ATTEMPTS) {
    const [name, call, kind] = pick(chance(0.2) ? foreign : direct);
    await attempt(name, call, kind === 'getter');
    if (live.length > 200) live.splice(0, 100).forEach((t) => t.dispose());
  }
  summary.maxRssMiB = Math.round(process.resourceUsage().maxRSS / 1024);
  summary.findings = summary.findings.slice(0, 40);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

process.on('unhandledRejection', (e) => {
  summary.findings.push({ target: 'unhandledRejection', error: String(e) });
});
main().catch((e) => {
  process.stderr.write(`fuzz driver failed: ${e && e.stack}\n`);
  process.exitCode = 2;
});
