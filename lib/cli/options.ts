/** Parsers for commander options: a bad value is an E_ARG naming the flag and the value it got. */
import { HscrError } from '../errors';

export function integer(flag: string, min = -Infinity): (raw: string) => number {
  return (raw) => {
    const value = Number(raw);
    if (!/^\s*-?\d+\s*$/.test(raw) || !Number.isSafeInteger(value) || value < min) {
      throw new HscrError(`${flag} must be an integer${min > -Infinity ? ` ≥ ${min}` : ''}, got "${raw}"`, 'E_ARG', raw);
    }
    return value;
  };
}

export function number(flag: string, min = -Infinity, max = Infinity): (raw: string) => number {
  return (raw) => {
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value) || value < min || value > max) {
      throw new HscrError(`${flag} must be a number in [${min}, ${max}], got "${raw}"`, 'E_ARG', raw);
    }
    return value;
  };
}

export function choice<T extends string>(flag: string, allowed: readonly T[]): (raw: string) => T {
  return (raw) => {
    if (!(allowed as readonly string[]).includes(raw)) throw new HscrError(`${flag} must be one of ${allowed.join(', ')}, got "${raw}"`, 'E_ARG', raw);
    return raw as T;
  };
}
