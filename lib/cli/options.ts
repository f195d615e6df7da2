/** Parsers for commander options: a bad value is an E_ARG naming the flag and the value it got. */
import { Option } from 'commander';
import { HscrError } from '../errors';

/**
 * An integer in [min, max]. "1e3" and "10.0" are integers too; a value that is an integer but outside the
 * range ("1e20", "-1") is reported as out of range, not as "not an integer".
 */
export function parseInteger(flag: string, raw: string, min = -Infinity, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(raw);
  const range = min > -Infinity ? `[${min}, ${max}]` : `≤ ${max}`;
  if (raw.trim() === '' || !Number.isFinite(value) || !Number.isInteger(value)) {
    throw new HscrError(`${flag} must be an integer${min > -Infinity ? ` ≥ ${min}` : ''}, got "${raw}"`, 'E_ARG', raw);
  }
  if (value < min || value > max || !Number.isSafeInteger(value)) {
    throw new HscrError(`${flag} is out of range: must be an integer in ${range}, got "${raw}"`, 'E_ARG', raw);
  }
  return value;
}

export function integer(flag: string, min = -Infinity, max = Number.MAX_SAFE_INTEGER): (raw: string) => number {
  return (raw) => parseInteger(flag, raw, min, max);
}

/** Seeds are mixed as 32-bit words: a larger one would be silently folded onto a smaller one. */
export const SEED_MAX = 0xffffffff;

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

/**
 * A hidden, older spelling of an option that stores into the same value (so a required option given under
 * its old name still counts). Commander has no option aliases; its options store under attributeName().
 */
export function legacyAlias(flags: string, target: string): Option {
  const option = new (class extends Option {
    override attributeName(): string {
      return target;
    }
  })(flags);
  return option.hideHelp();
}
