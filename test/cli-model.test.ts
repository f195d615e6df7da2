import t from 'tap';
import fs from 'fs';
import path from 'path';
import { execFileSync } from 'child_process';
import { initModel } from '../lib/cli/model';
import { loadModelBundle, disposeBundle } from '../lib/model/bundle';
import { parameterCount } from '../lib/model/presets';
import { generatePhantom } from '../lib/data/phantom';

const root = path.resolve(__dirname, '..');
const hscr = (args: string[]) => execFileSync(process.execPath, [path.join(root, 'bin/hscr.js'), ...args], { encoding: 'utf8' });

t.test('hscr init writes a loadable tiny model; hscr logprobs scores answers', async (t) => {
  const dir = t.testdir();
  const model = path.join(dir, 'tiny');
  const out = hscr(['init', '--preset', 'tiny', '--out', model, '--seed', '4']);
  t.match(out, /wrote .*tiny \(tiny, [\d,]+ parameters\)/);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json']) {
    t.ok(fs.existsSync(path.join(model, f)), f);
  }
  const bundle = await loadModelBundle(model);
  const n = parameterCount(bundle.model.config);
  t.ok(n <= 2_000_000, `tiny preset has ${n} parameters (≤ 2M)`);
  t.equal(bundle.model.parameters().reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0), n, 'native model has exactly the config\'s parameters');
  disposeBundle(bundle);
  t.throws(() => hscr(['init', '--preset', 'tiny', '--out', model, '--seed', '4']), 'refuses to overwrite a model');

  await generatePhantom({ outDir: path.join(dir, 'ph'), train: 0, test: 6, seed: 3 });
  const data = path.join(dir, 'ph', 'test.jsonl');
  const lines = (args: string[]) => hscr(['logprobs', '--model', model, '--data', data, '--quiet', ...args]).trim().split('\n').map((l) => JSON.parse(l));
  const plain = lines([]);
  const records = fs.readFileSync(data, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.same(plain.map((l) => l.id), records.map((r) => r.id), 'one line per record, in order');
  for (const [i, l] of plain.entries()) {
    t.equal(l.tokens.length, l.logprobs.length);
    t.equal(l.tokens[l.tokens.length - 1], '</s>', 'the answer ends with EOS');
    t.ok(l.tokens.join('').replace(/▁/g, ' ').includes(String(records[i].answer).split(' ')[0]), 'answer tokens spell the answer');
    t.ok(l.logprobs.every((x: number) => x < 0));
  }
  // Other batch shapes change BLAS blocking, hence float rounding: equal within 1e-5, not bit for bit.
  const rebatched = lines(['--batch', '2']);
  const gap = Math.max(...rebatched.flatMap((l, i) => l.logprobs.map((x: number, k: number) => Math.abs(x - plain[i].logprobs[k]))));
  t.ok(gap < 1e-5, `batching changes log-probs by at most ${gap.toExponential(1)}`);
  const dropped = lines(['--perturb', 'token', '--ratio', '0.7', '--seed', '5']);
  t.notSame(dropped, plain, 'visual-token dropout changes the log-probs');
  t.same(lines(['--perturb', 'token', '--ratio', '0.7', '--seed', '5']), dropped, 'seeded');
});
