import t from 'tap';
import fs from 'fs';
import path from 'path';
import { spawnSync } from 'child_process';
import { emptyPredictionsWarning } from '../lib/cli/eval';
import { learnedNothingWarning } from '../lib/cli/train';
import { Command } from 'commander';
import { createProgram } from '../lib/cli/index';
import { legacyAlias } from '../lib/cli/options';

const root = path.resolve(__dirname, '..');
const hscr = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin', 'hscr.js'), ...args], { encoding: 'utf8' });

t.test('--version prints package.json\'s version', async (t) => {
  const r = hscr('--version');
  t.equal(r.status, 0);
  t.equal(r.stdout.trim(), JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version);
});

t.test('a missing required option is named in one line; --help marks required options', async (t) => {
  const r = hscr('phantom', '--out', '/tmp/never-written', '--train', '2', '--test', '2');
  t.equal(r.status, 1);
  const lines = r.stderr.trim().split('\n');
  t.match(lines[0], /required option '--seed <n>' not specified/);
  t.ok(lines.length <= 2, `no help dump after the error: ${r.stderr}`);
  const help = hscr('eval', '--help').stdout;
  t.match(help, /--model <dir>\s+model folder \(required\)/);
  t.notMatch(help, /--adapter <dir>[^\n]*\(required\)/);
  t.match(help, /--max-new-tokens <n>/);
  t.match(help, /--device <d>/);
});

t.test('eval warns when most predictions are empty, and only then', async (t) => {
  t.match(emptyPredictionsWarning(9, 10), /^warning: 9 of 10 predictions are empty/);
  t.equal(emptyPredictionsWarning(5, 10), '');
  t.equal(emptyPredictionsWarning(0, 0), '');
});

t.test('train warns when margins stayed at 0, and only then', async (t) => {
  t.match(learnedNothingWarning({ 'rewards/margins': 0 }, 40, 5e-7), /learned nothing measurable: rewards\/margins 0\.0000 after 40 steps at --lr 5e-7/);
  t.equal(learnedNothingWarning({ 'rewards/margins': 0.02 }, 40, 1e-4), '');
  t.equal(learnedNothingWarning({ 'rewards/margins': 0 }, 0, 1e-4), '');
});

t.test('one option, one name: a long flag has the same spelling and placeholder in every command', async (t) => {
  const spellings = new Map<string, Set<string>>();
  const commands = new Map<string, Command>();
  const walk = (c: Command) => {
    commands.set(c.name(), c);
    for (const o of c.options) {
      if (o.hidden || !o.long) continue;
      spellings.set(o.long, (spellings.get(o.long) ?? new Set()).add(o.flags));
    }
    c.commands.forEach(walk);
  };
  walk(createProgram());
  // --out's placeholder says what is written, a folder or a file: the one flag allowed two.
  t.same([...(spellings.get('--out') ?? [])].sort(), ['--out <dir>', '--out <file>']);
  spellings.delete('--out');
  const mixed = [...spellings].filter(([, s]) => s.size > 1).map(([flag, s]) => `${flag}: ${[...s].join(' | ')}`);
  t.same(mixed, [], 'no other flag spelt two ways');
  t.same([...(spellings.get('--model') ?? [])], ['--model <dir>'], '--model is a model folder everywhere (review takes --judge)');
  for (const name of ['rerank', 'export-trl', 'train']) {
    const prefs = commands.get(name)?.options.find((o) => o.long === '--prefs');
    t.ok(prefs?.mandatory, `${name} reads its preference file from a required --prefs`);
  }
});

t.test('an older spelling still works and stays out of --help: --in is --prefs', async (t) => {
  const make = () => {
    const c = new Command('x').exitOverride().configureOutput({ writeErr: () => undefined }).requiredOption('--prefs <file>', 'input');
    return c.addOption(legacyAlias('--in <file>', 'prefs')).action(() => undefined);
  };
  t.equal(make().parse(['--in', 'a.jsonl'], { from: 'user' }).opts().prefs, 'a.jsonl');
  t.equal(make().parse(['--prefs', 'b.jsonl'], { from: 'user' }).opts().prefs, 'b.jsonl');
  t.throws(() => make().parse([], { from: 'user' }), /required option '--prefs <file>' not specified/);
  t.notMatch(make().helpInformation(), /--in\b/);
});
