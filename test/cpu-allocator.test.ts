/**
 * Issue 11: the caching CPU allocator (native/cpu_allocator.cpp). A training step frees and reallocates the
 * same buffers every step; they must come from the cache (no fresh pages), the numbers must not change, the
 * cache must obey its limit and give memory back on request, and HSCR_CPU_ALLOCATOR=system must keep
 * torch's allocator.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { native } from '../lib/native';
import { VisionLanguageModel } from '../lib/model/vlm';
import { trainAddon } from '../lib/train/native';
import { tinyBatch, tinyConfig } from './helpers/tiny-model';

const train = trainAddon();
const sft = { loss: 'sft' as const, scale: 1 };

// Wide enough that the embedding and its gradient (4096 × 128 floats, 2 MiB) go through the cache (≥ 64 KiB).
const WIDE = { vocabSize: 4096, hiddenSize: 128, intermediateSize: 512, headDim: 32 };

async function fullFineTuning(): Promise<VisionLanguageModel> {
  const model = await VisionLanguageModel.create(tinyConfig(WIDE), { seed: 5 });
  train.setTrainable(model.handle, 'full');
  return model;
}

t.test('repeated steps reuse cached buffers and give the same loss', async (t) => {
  const addon = native();
  t.equal(addon.cpuCacheStats().installed, true, 'installed by default');
  const m = await fullFineTuning();
  const batch = tinyBatch();
  const first = (await train.forwardBackward(m.handle, batch, sft)).lossSum;
  await train.forwardBackward(m.handle, batch, sft);
  const warm = addon.cpuCacheStats();
  t.ok(warm.hits > 0, `hits after two steps: ${warm.hits}`);
  const again = (await train.forwardBackward(m.handle, batch, sft)).lossSum;
  const after = addon.cpuCacheStats();
  t.equal(after.misses, warm.misses, 'a third identical step maps no fresh memory');
  t.ok(after.hits > warm.hits, 'it is served from the cache');
  t.equal(again, first, 'no gradient step in between: the same loss, bit for bit');
  t.ok(after.peakLiveBytes >= after.liveBytes && after.cachedBytes <= after.limitBytes, 'counters are consistent');
  t.ok(after.cachedBytes > 0, 'buffers stay cached between steps');
  m.dispose();
  t.equal(addon.cpuCacheStats().cachedBytes, 0, 'disposing the model gives the cached buffers back');
});

t.test('the limit and release', async (t) => {
  const addon = native();
  const m = await fullFineTuning();
  t.teardown(() => m.dispose());
  const limit = addon.cpuCacheStats().limitBytes;
  t.teardown(() => addon.setCpuCacheLimit(limit));
  await train.forwardBackward(m.handle, tinyBatch(), sft);
  t.ok(addon.cpuCacheStats().cachedBytes > 0, 'freed buffers are cached');
  addon.releaseCpuCache();
  t.equal(addon.cpuCacheStats().cachedBytes, 0, 'release empties the cache');
  addon.setCpuCacheLimit(0);
  await train.forwardBackward(m.handle, tinyBatch(), sft);
  t.equal(addon.cpuCacheStats().cachedBytes, 0, 'limit 0: nothing is kept');
  t.throws(() => addon.setCpuCacheLimit(-1), { code: 'E_ARG' });
  t.throws(() => addon.setCpuCacheLimit(Number.NaN), { code: 'E_ARG' });
});

t.test('HSCR_CPU_ALLOCATOR=system keeps torch allocator, same numbers', async (t) => {
  const m = await fullFineTuning();
  t.teardown(() => m.dispose());
  const here = (await train.forwardBackward(m.handle, tinyBatch(), sft)).lossSum;
  const script = `
    for (const id of ['ts-node/register/transpile-only', '@isaacs/ts-node-temp-fork-for-pr-2009/register/transpile-only']) {
      try { require(id); break; } catch (e) { if (e.code !== 'MODULE_NOT_FOUND') throw e; }
    }
    const { native } = require('./lib/native');
    const { VisionLanguageModel } = require('./lib/model/vlm');
    const { trainAddon } = require('./lib/train/native');
    const { tinyBatch, tinyConfig } = require('./test/helpers/tiny-model');
    (async () => {
      const m = await VisionLanguageModel.create(tinyConfig(${JSON.stringify(WIDE)}), { seed: 5 });
      trainAddon().setTrainable(m.handle, 'full');
      const r = await trainAddon().forwardBackward(m.handle, tinyBatch(), { loss: 'sft', scale: 1 });
      console.log(JSON.stringify({ installed: native().cpuCacheStats().installed, loss: r.lossSum }));
    })();`;
  const root = path.resolve(__dirname, '..');
  const child = spawnSync(process.execPath, ['-e', script], {
    cwd: root,
    env: { ...process.env, HSCR_CPU_ALLOCATOR: 'system' },
    encoding: 'utf8',
  });
  t.equal(child.status, 0, child.stderr);
  const out = JSON.parse(child.stdout.trim().split('\n').pop() ?? '{}');
  t.equal(out.installed, false, 'torch allocator kept');
  t.equal(out.loss, here, 'the same loss as with the caching allocator');
});
