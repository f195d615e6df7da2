/**
 * Progress of the long CLIs (generate, rerank, train, eval), on cli-progress: a bar with rate and ETA on a
 * terminal; plain lines now and then when the output is a log file (cluster jobs, CI); nothing when quiet.
 * It writes to stderr by default so the results a command prints on stdout stay clean.
 */
import { SingleBar } from 'cli-progress';

export interface ProgressOptions {
  /** What is counted, e.g. 'rerank'. */
  label: string;
  /** Items in all, including those done by an earlier run. */
  total: number;
  /** Items an earlier run already did (resume); the rate and ETA count only this run's. */
  start?: number;
  quiet?: boolean;
  /** Default process.stderr. A stream without isTTY gets plain lines. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Milliseconds between plain lines when not on a terminal (default 10 s). */
  plainIntervalMs?: number;
  /** Milliseconds clock for the rate (default Date.now); lets tests check the rate exactly. */
  now?: () => number;
}

export interface Progress {
  /** n more items done (default 1). */
  tick(n?: number): void;
  /** Draws the last state and ends the output line; call it in a finally. Safe to call twice. */
  stop(): void;
}

const silent: Progress = { tick: () => undefined, stop: () => undefined };

function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond) || perSecond <= 0) return '-';
  return perSecond >= 10 ? perSecond.toFixed(0) : perSecond.toPrecision(2);
}

export function createProgress(opts: ProgressOptions): Progress {
  if (opts.quiet) return silent;
  const stream = opts.stream ?? process.stderr;
  const onTerminal = stream.isTTY === true;
  const format = onTerminal
    ? `${opts.label} [{bar}] {percentage}% | {value}/{total} | {rate}/s | ETA {eta_formatted}`
    : `${opts.label}: {value}/{total} ({percentage}%), {rate}/s, ETA {eta_formatted}`;
  const bar = new SingleBar({
    format,
    stream,
    noTTYOutput: true,
    notTTYSchedule: opts.plainIntervalMs ?? 10_000,
    // cli-progress would otherwise catch SIGINT/SIGTERM and keep the process alive after Ctrl-C.
    gracefulExit: false,
    hideCursor: false,
    etaBuffer: 50,
  });
  const start = opts.start ?? 0;
  const now = opts.now ?? Date.now;
  const startedAt = now();
  let value = start;
  let running = true;
  const rate = () => formatRate((value - start) / ((now() - startedAt) / 1000));
  bar.start(opts.total, start, { rate: '-' });
  return {
    tick(n = 1) {
      value += n;
      bar.update(value, { rate: rate() });
    },
    stop() {
      if (!running) return;
      running = false;
      bar.update(value, { rate: rate() });
      bar.stop();
    },
  };
}
