/**
 * Per-step training metrics: one JSON line per optimizer step in <out>/metrics.jsonl, with the names
 * users of TRL's trainers look for (loss, learning_rate, grad_norm, rewards/…, logps/…), plus a progress
 * bar with ETA on a terminal. On resume the lines past the checkpoint are dropped, so a resumed run's file
 * reads as the uninterrupted run's would.
 */
import * as fs from 'node:fs';
import { HscrError } from '../errors';
import { writeFileAtomic } from '../model/config';
import { createProgress, type Progress } from '../util/progress';

export type StepMetrics = Record<string, number>;

export const METRICS_FILE = 'metrics.jsonl';

function stepOf(line: string): number | undefined {
  try {
    const v = JSON.parse(line) as { step?: unknown };
    return typeof v.step === 'number' ? v.step : undefined;
  } catch {
    return undefined;
  }
}

export class MetricsLog {
  private constructor(readonly file: string) {}

  /**
   * Opens the metrics file for a run starting after `startStep` optimizer steps: a fresh run (0) starts an
   * empty file; a resumed one keeps the lines up to its checkpoint's step (a killed run may have logged
   * steps past it, and may have left a partial last line).
   */
  static open(file: string, startStep: number): MetricsLog {
    try {
      if (startStep === 0 || !fs.existsSync(file)) {
        writeFileAtomic(file, '');
      } else {
        const kept = fs
          .readFileSync(file, 'utf8')
          .split('\n')
          .filter((line) => {
            const step = stepOf(line);
            return step !== undefined && step <= startStep;
          });
        writeFileAtomic(file, kept.map((l) => `${l}\n`).join(''));
      }
    } catch (e) {
      if (e instanceof HscrError) throw e;
      throw new HscrError(`${file}: cannot prepare the metrics file (${(e as Error).message})`, 'E_IO', file);
    }
    return new MetricsLog(file);
  }

  /** Appends one step's line; handed to the OS before the next step starts. */
  write(metrics: StepMetrics): void {
    fs.appendFileSync(this.file, `${JSON.stringify(roundFloats(metrics))}\n`);
  }
}

/** Metrics as JSON numbers: non-finite values (a NaN loss) become null rather than breaking the line. */
function roundFloats(m: StepMetrics): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(m)) out[k] = Number.isFinite(v) ? v : null;
  return out;
}

/** Reads a metrics file back (tests, ablate). */
export function readMetrics(file: string): StepMetrics[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as StepMetrics);
}

export interface TrainProgressOptions {
  label: string;
  totalSteps: number;
  startStep: number;
  quiet?: boolean;
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
}

/** The bar counts optimizer steps; rate and ETA count only this run's (a resumed run starts part-way). */
export function trainProgress(o: TrainProgressOptions): Progress {
  return createProgress({ label: o.label, total: o.totalSteps, start: o.startStep, quiet: o.quiet, stream: o.stream });
}
