/**
 * Learning-rate and term-weight schedules over optimizer steps, with transformers' arithmetic
 * (get_{constant,linear,cosine}_schedule_with_warmup as HF Trainer steps them): the 0-based step s runs at
 * lr · factor(s), so with warm-up the very first step has lr 0, exactly as a paper run under HF Trainer did.
 */
import { HscrError } from '../errors';
import type { LrScheduleKind, TermSchedule } from './config';

export interface LrSchedule {
  kind: LrScheduleKind;
  /** Peak learning rate. */
  lr: number;
  warmupSteps: number;
  totalSteps: number;
}

/** HF TrainingArguments.get_warmup_steps: explicit steps win, else ceil(ratio · total). */
export function warmupStepsFor(totalSteps: number, warmupRatio: number, warmupSteps?: number): number {
  return warmupSteps ?? Math.ceil(totalSteps * warmupRatio);
}

/** The multiplier of step s (0-based); no clamp of cosine progress past the end, as in transformers. */
export function lrFactor(step: number, s: Omit<LrSchedule, 'lr'>): number {
  if (!Number.isInteger(step) || step < 0) throw new HscrError('schedule step must be an integer ≥ 0', 'E_ARG', step);
  if (step < s.warmupSteps) return step / Math.max(1, s.warmupSteps);
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  switch (s.kind) {
    case 'constant':
      return 1;
    case 'linear':
      return Math.max(0, (s.totalSteps - step) / span);
    case 'cosine':
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * ((step - s.warmupSteps) / span))));
    default:
      throw new HscrError('lr schedule must be cosine, linear or constant', 'E_ARG', s.kind);
  }
}

/** The learning rate optimizer step s (0-based) runs at. */
export function learningRateAt(step: number, s: LrSchedule): number {
  return s.lr * lrFactor(step, s);
}

/** A loss term's weight at step s (0-based): λ, or λ warmed in linearly over `steps` steps. */
export function termWeightAt(step: number, weight: number, schedule: TermSchedule): number {
  if (schedule.kind === 'constant') return weight;
  return weight * Math.min(1, (step + 1) / schedule.steps);
}
