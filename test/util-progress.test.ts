import t from 'tap';
import { Writable } from 'node:stream';
import { createProgress } from '../lib/util/progress';

function capture(isTTY: boolean): Writable & { isTTY: boolean; columns: number; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return Object.assign(stream, { isTTY, columns: 120, text: () => chunks.join('') });
}

// Strips cursor movements and line clears, leaving what a terminal would show.
const visible = (s: string) => s.replace(/\x1b\[[0-9;]*[A-Za-z]|\x1b[78]/g, '');

t.test('not a terminal: plain lines with counts, percentage, rate and ETA, no bar', async (t) => {
  const stream = capture(false);
  let clock = 1000;
  const progress = createProgress({ label: 'rerank', total: 8, start: 2, stream, plainIntervalMs: 60_000, now: () => clock });
  clock += 500;
  progress.tick();
  clock += 1500;
  progress.tick(3);
  progress.stop();
  progress.stop();
  const lines = stream.text().trim().split('\n');
  t.equal(lines.length, 2, 'one line at start, one at stop');
  t.match(lines[0], /^rerank: 2\/8 \(25%\), -\/s, ETA /);
  t.match(lines[1], /^rerank: 6\/8 \(75%\), 2\.0\/s, ETA /, '4 items of this run in 2 s; the 2 resumed ones do not count');
  t.notMatch(stream.text(), /\x1b|\[=/);
});

t.test('on a terminal: a bar with value, rate and ETA', async (t) => {
  const stream = capture(true);
  let clock = 0;
  const progress = createProgress({ label: 'generate', total: 40, stream, now: () => clock });
  clock = 2000;
  progress.tick(40);
  progress.stop();
  const shown = visible(stream.text());
  t.match(shown, /generate \[=+\] 100% \| 40\/40 \| 20\/s \| ETA /);
  t.match(stream.text(), /\x1b\[/, 'draws in place with terminal control sequences');
});

t.test('quiet: nothing at all', async (t) => {
  const stream = capture(true);
  const progress = createProgress({ label: 'x', total: 3, stream, quiet: true });
  progress.tick();
  progress.stop();
  t.equal(stream.text(), '');
});
