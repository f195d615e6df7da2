/**
 * The one record shape every loader returns, whatever the benchmark's own format: the later stages
 * (generation, re-ranking, training, evaluation) never look at a dataset's native fields.
 */
import type { PhantomScene } from './phantom/scene';

export type AnswerType = 'closed' | 'open';

export interface VqaRecord {
  /** Unique within a file; predictions are paired with ground truth by this id, never by position. */
  id: string;
  /** Absolute path of the image. */
  image: string;
  question: string;
  /** Kept as the dataset wrote it (case, stray spaces): the published scorers see it that way too. */
  answer: string;
  answer_type: AnswerType;
  /** 'vqa-rad', 'slake', 'pathvqa', 'phantom', … — the column the result table groups by. */
  dataset?: string;
  modality?: string;
  /** Phantom records only: what the image shows, so answers and descriptions can be checked against it. */
  scene?: PhantomScene;
  /** Phantom records only: the question family (presence, location, organ, count, …). */
  family?: string;
}

export interface SkipCount {
  reason: string;
  count: number;
}

/** What every loader returns: nothing is dropped without being counted in `skipped`. */
export interface LoadResult {
  records: VqaRecord[];
  loaded: number;
  skipped: SkipCount[];
}

/** Counts skips by reason, in first-seen order. */
export class SkipTally {
  private readonly counts = new Map<string, number>();

  add(reason: string, n = 1): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + n);
  }

  list(): SkipCount[] {
    return [...this.counts].map(([reason, count]) => ({ reason, count }));
  }
}
