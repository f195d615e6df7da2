import t from 'tap';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { parseRankedRecord, type RankedRecord } from '../lib/generate/types';
import { fromTrl, toTrl, writeTrlFile } from '../lib/generate/trl';

const src = { file: 'prefs.jsonl', line: 3, index: 2 };

t.test('a standard TRL line (strings) reads as a one-rejected ranked record', async (t) => {
  const r = parseRankedRecord({ prompt: '<image>\nIs there a mass?', chosen: 'yes', rejected: 'no', images: ['img/1.png'] }, src);
  t.same(r.id, 'trl-2');
  t.same([r.image, r.question, r.chosen], ['img/1.png', 'Is there a mass?', 'yes']);
  t.same(r.rejected.map((x) => x.text), ['no']);
  t.same(r.rejected[0].replacements, []);
});

t.test('a conversational TRL line (chat messages with an image part) reads the same', async (t) => {
  const r = parseRankedRecord(
    {
      id: 7,
      images: ['a.png'],
      prompt: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Which organ?' }] }],
      chosen: [{ role: 'assistant', content: [{ type: 'text', text: 'the liver' }] }],
      rejected: [{ role: 'assistant', content: 'the lung' }],
    },
    src,
  );
  t.same([r.id, r.image, r.question, r.chosen], ['7', 'a.png', 'Which organ?', 'the liver']);
  t.same(r.rejected.map((x) => x.text), ['the lung']);
});

t.test('bad TRL lines are E_DATA naming file, line and field', async (t) => {
  t.throws(() => parseRankedRecord({ prompt: 'q', chosen: 'a', rejected: 'b' }, src), { code: 'E_DATA', message: /prefs\.jsonl, line 3, field "images"/ });
  t.throws(() => parseRankedRecord({ prompt: '<image>', chosen: 'a', rejected: 'b', images: ['x'] }, src), { code: 'E_DATA', message: /field "prompt"/ });
  t.throws(() => parseRankedRecord({ prompt: 'q', chosen: 5, rejected: 'b', images: ['x'] }, src), { code: 'E_DATA', message: /field "chosen"/ });
  t.throws(() => parseRankedRecord({ prompt: 'q', chosen: 'a', rejected: 'b', images: ['x', 'y'] }, src), { code: 'E_DATA', message: /one image/ });
});

t.test('written TRL: one conversational pair per rejected answer, in rank order, and it reads back', async (t) => {
  const ranked: RankedRecord = {
    id: 's1',
    image: 'images/s1.png',
    question: 'Is the lesion round?',
    chosen: 'yes, round',
    rejected: [
      { text: 'yes, oval', replacements: [{ position: 1, from: 'round', to: 'oval', score: -2 }], similarity: 0.8 },
      { text: 'no, oval', replacements: [], similarity: 0.5 },
    ],
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-trl-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'ranked.jsonl'), `${JSON.stringify(ranked)}\n`);
  const counts = await writeTrlFile({ input: path.join(dir, 'ranked.jsonl'), out: path.join(dir, 'trl.jsonl') });
  t.same(counts, { samples: 1, pairs: 2 });
  const lines = fs.readFileSync(path.join(dir, 'trl.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.same(lines[0], toTrl({ ...ranked, image: path.join(dir, 'images/s1.png') })[0]);
  t.same(Object.keys(lines[0]).sort(), ['chosen', 'id', 'images', 'prompt', 'rank', 'rejected', 'similarity']);
  t.same(lines[0].prompt, [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Is the lesion round?' }] }]);
  t.same(lines.map((l) => [l.id, l.rank, l.similarity]), [['s1/0', 0, 0.8], ['s1/1', 1, 0.5]]);
  const back = lines.map((l, i) => fromTrl(l, { file: 'trl.jsonl', line: i + 1, index: i }));
  t.same(back.map((b) => [b.id, b.question, b.chosen, b.rejected[0].text, b.image]), [
    ['s1/0', 'Is the lesion round?', 'yes, round', 'yes, oval', path.join(dir, 'images/s1.png')],
    ['s1/1', 'Is the lesion round?', 'yes, round', 'no, oval', path.join(dir, 'images/s1.png')],
  ]);
});
