import t from 'tap';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { HscrError } from '../lib/errors';
import { openResumableJsonl } from '../lib/util/jsonl-writer';

const lines = (file: string) => readFileSync(file, 'utf8').split('\n');

t.test('a new file (and its folder) gets one line per record', async (t) => {
  const file = path.join(t.testdir(), 'sub', 'out.jsonl');
  const out = await openResumableJsonl<{ id: string; v: number }>(file);
  t.same([...out.done], []);
  // Not awaited one by one: lines must still come out whole and in call order.
  await Promise.all([out.write({ id: 'a', v: 1 }), out.write({ id: 'b', v: 2 }), out.write({ id: 'c', v: 3 })]);
  await out.close();
  await out.close();
  t.same(lines(file), ['{"id":"a","v":1}', '{"id":"b","v":2}', '{"id":"c","v":3}', '']);
  t.same([...out.done], ['a', 'b', 'c']);
});

t.test('reopening reads the ids written and appends after them', async (t) => {
  const file = path.join(t.testdir(), 'out.jsonl');
  const first = await openResumableJsonl<{ id: string | number }>(file);
  await first.write({ id: 'x' });
  await first.write({ id: 7 });
  await first.close();
  const second = await openResumableJsonl<{ id: string }>(file);
  t.same([...second.done].sort(), ['7', 'x']);
  t.equal(second.truncated, undefined);
  await second.write({ id: 'y' });
  await second.close();
  t.same(lines(file), ['{"id":"x"}', '{"id":7}', '{"id":"y"}', '']);
});

t.test('a partial last line from a killed run is cut off, reported, and not counted as done', async (t) => {
  const dir = t.testdir({ 'out.jsonl': '{"id":"a"}\n{"id":"b","text":"ok"}\n{"id":"c","text":"half wr' });
  const file = path.join(dir, 'out.jsonl');
  const out = await openResumableJsonl<{ id: string }>(file);
  t.same([...out.done], ['a', 'b']);
  t.same(out.truncated, { line: 3, bytes: '{"id":"c","text":"half wr'.length, preview: '{"id":"c","text":"half wr' });
  await out.write({ id: 'c' });
  await out.close();
  t.same(lines(file), ['{"id":"a"}', '{"id":"b","text":"ok"}', '{"id":"c"}', '']);
});

t.test('a complete last record without newline is kept, and the next line starts on a new line', async (t) => {
  const file = path.join(t.testdir({ 'out.jsonl': '{"id":"a"}\n{"id":"b"}' }), 'out.jsonl');
  const out = await openResumableJsonl<{ id: string }>(file);
  t.same([...out.done], ['a', 'b']);
  t.equal(out.truncated, undefined);
  await out.write({ id: 'c' });
  await out.close();
  t.same(lines(file), ['{"id":"a"}', '{"id":"b"}', '{"id":"c"}', '']);
});

t.test('a custom id field; multi-byte text survives a chunked scan', async (t) => {
  const file = path.join(t.testdir(), 'out.jsonl');
  const long = 'é'.repeat(70_000); // spans several 64 KiB read chunks, split inside a character
  const first = await openResumableJsonl<{ key: string; text: string }>(file, { idField: 'key' });
  await first.write({ key: 'k01', text: long });
  await first.write({ key: 'k2', text: 'x' });
  await first.close();
  const second = await openResumableJsonl<{ key: string }>(file, { idField: 'key' });
  t.same([...second.done], ['k01', 'k2']);
  await second.close();
  t.equal(JSON.parse(lines(file)[0]).text, long);
});

t.test('bad existing content is E_DATA with file, line and field, and the file is left untouched', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['{"id":"a"}\nnot json\n{"id":"c"}\n', /out\.jsonl, line 2: not valid JSON/],
    ['{"id":"a"}\n{"name":"b"}\n', /out\.jsonl, line 2, field "id": missing/],
    ['{"id":"a"}\n\n{"id":"a"}\n', /out\.jsonl, line 3, field "id": id already written/],
    ['{"id":"a"}\nsome other file', /out\.jsonl, line 2: last line is not a JSON record/],
  ];
  for (const [content, message] of cases) {
    const file = path.join(t.testdir({ 'out.jsonl': content }), 'out.jsonl');
    await t.rejects(openResumableJsonl(file), { code: 'E_DATA', message });
    t.equal(readFileSync(file, 'utf8'), content);
  }
});

t.test('writes that would break the one-line-per-id rule are E_ARG and write nothing', async (t) => {
  const file = path.join(t.testdir(), 'out.jsonl');
  const out = await openResumableJsonl<{ id?: unknown; big?: bigint }>(file);
  await out.write({ id: 'a' });
  const refused = [{ id: 'a' }, { id: '' }, {}, { id: { nested: 1 } }, { id: 'b', big: 1n }];
  for (const record of refused) {
    const err = await out.write(record).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof HscrError && err.code === 'E_ARG', JSON.stringify(record, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)));
  }
  await out.close();
  await t.rejects(out.write({ id: 'c' }), { code: 'E_ARG', message: /after close/ });
  t.same(lines(file), ['{"id":"a"}', '']);
  const reopened = await openResumableJsonl(file);
  t.same([...reopened.done], ['a']);
  await reopened.close();
});
