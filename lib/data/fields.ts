/** Typed access to one raw record's fields; every complaint names file, line, record number and field. */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { dataError, type HscrError } from '../errors';
import type { AnswerType } from './types';

export class RawRecord {
  constructor(
    readonly file: string,
    readonly line: number,
    /** 0-based position in the file (JSON files written on one line share line 1). */
    readonly index: number,
    readonly value: Record<string, unknown>,
  ) {}

  static of(file: string, line: number, index: number, value: unknown): RawRecord {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw dataError(file, line, undefined, `record ${index + 1} is not a JSON object`, value);
    }
    return new RawRecord(file, line, index, value as Record<string, unknown>);
  }

  fail(field: string, what: string, value?: unknown): HscrError {
    return dataError(this.file, this.line, field, `record ${this.index + 1}: ${what}`, value);
  }

  has(field: string): boolean {
    return this.value[field] !== undefined && this.value[field] !== null;
  }

  /** A non-empty string; numbers are accepted and written in decimal (VQA-RAD has a few numeric answers). */
  text(field: string): string {
    const v = this.maybeEmpty(field);
    if (v.trim() === '') throw this.fail(field, 'is empty', v);
    return v;
  }

  /** Like text() but an empty string passes (the caller counts it as a skip: SLAKE's train split has one). */
  maybeEmpty(field: string): string {
    const v = this.value[field];
    if (v === undefined || v === null) throw this.fail(field, 'missing');
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
    if (typeof v !== 'string') throw this.fail(field, `must be a string, got ${typeof v}`, v);
    return v;
  }

  /** An id: a string or an integer. */
  id(field: string): string {
    const v = this.value[field];
    if (typeof v === 'number' && Number.isInteger(v)) return String(v);
    return this.text(field);
  }

  /** OPEN/CLOSED in any case, stray spaces allowed (VQA-RAD's train set has "CLOSED "). */
  answerType(field: string): AnswerType {
    const raw = this.text(field);
    const t = raw.trim().toLowerCase();
    if (t === 'open' || t === 'closed') return t;
    throw this.fail(field, 'must be OPEN or CLOSED', raw);
  }
}

/** Closed when the answer is yes or no: the rule for formats that carry no answer type. */
export function inferAnswerType(answer: string): AnswerType {
  const a = answer.trim().toLowerCase();
  return a === 'yes' || a === 'no' ? 'closed' : 'open';
}

/** What to do about a record whose image file does not exist ('ignore': do not look, e.g. for scoring). */
export type MissingImagePolicy = 'error' | 'skip' | 'ignore';

/** Checks image files once each. */
export class ImageCheck {
  private readonly seen = new Map<string, boolean>();

  exists(file: string): boolean {
    let ok = this.seen.get(file);
    if (ok === undefined) {
      ok = existsSync(file);
      this.seen.set(file, ok);
    }
    return ok;
  }
}

export function resolveImage(root: string, name: string): string {
  return path.resolve(root, name);
}
