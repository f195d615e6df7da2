/**
 * Argument types at the library's door (lib/index.ts): a call with a number where a folder path goes, or
 * undefined where an options object goes, is an HscrError E_ARG naming the function, the argument and the
 * value, instead of Node's TypeError from somewhere inside. Only the JS type is checked here; the values
 * themselves are checked where they are used (with their own coded errors). Hand-written: no npm validator
 * checks positional arguments of existing functions without rewriting their signatures into schemas.
 */
import { HscrError } from '../errors';

/** One positional argument: a JS type name, `?` for optional, `|` for alternatives ('string|null?'). */
export type ArgSpec = string;

const CHECKS: Record<string, (v: unknown) => boolean> = {
  string: (v) => typeof v === 'string',
  number: (v) => typeof v === 'number',
  boolean: (v) => typeof v === 'boolean',
  function: (v) => typeof v === 'function',
  null: (v) => v === null,
  object: (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
  array: (v) => Array.isArray(v),
  iterable: (v) => typeof v === 'object' && v !== null && typeof (v as Iterable<unknown>)[Symbol.iterator] === 'function',
  typedarray: (v) => ArrayBuffer.isView(v) && !(v instanceof DataView),
  buffer: (v) => Buffer.isBuffer(v),
  // A VisionLanguageModel (duck-typed: lib/util must not import the model layer).
  model: (v) => typeof v === 'object' && v !== null && typeof (v as { parameters?: unknown }).parameters === 'function' && 'handle' in v,
  // A ModelConfig: its two halves at least; the values are checked natively.
  config: (v) => typeof v === 'object' && v !== null && typeof (v as { vision?: unknown }).vision === 'object' && typeof (v as { text?: unknown }).text === 'object',
};

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (ArrayBuffer.isView(v)) return v.constructor.name;
  return typeof v;
}

function shown(v: unknown): unknown {
  return typeof v === 'symbol' || typeof v === 'function' ? String(v) : v;
}

/** The E_ARG for the first argument of `args` that does not fit `specs`, or null. */
export function argumentError(fn: string, specs: readonly ArgSpec[], args: readonly unknown[]): HscrError | null {
  for (let i = 0; i < specs.length; i++) {
    const optional = specs[i].endsWith('?');
    const kinds = specs[i].replace(/\?$/, '').split('|');
    const v = args[i];
    if (v === undefined && optional) continue;
    if (kinds.some((k) => CHECKS[k]?.(v))) continue;
    return new HscrError(`${fn}: argument ${i + 1} must be ${kinds.join(' or ')}${optional ? ' (or left out)' : ''}, got ${typeOf(v)}`, 'E_ARG', shown(v));
  }
  return null;
}

/**
 * `fn` with its argument types checked first. An async function (or one that returns a promise) rejects
 * with the E_ARG, as it rejects for every other failure; a plain function throws it.
 */
export function withArgTypes<F extends (...args: any[]) => any>(name: string, specs: readonly ArgSpec[], fn: F, async = fn.constructor.name === 'AsyncFunction'): F {
  const checked = function (this: unknown, ...args: unknown[]) {
    const err = argumentError(name, specs, args);
    if (err) {
      if (async) return Promise.reject(err);
      throw err;
    }
    return fn.apply(this, args);
  };
  Object.defineProperty(checked, 'name', { value: fn.name });
  Object.defineProperty(checked, 'length', { value: fn.length });
  return checked as unknown as F;
}
