/**
 * Argument types at the package root's door. A call with a number where a folder path goes, or an array
 * where an options object goes, becomes an HscrError E_ARG that names the function, the argument (and the
 * field inside an options object) and what it got, instead of Node's TypeError from somewhere inside.
 *
 * The schemas are zod's (already the pipeline config's validator); only types and required fields are
 * checked here. Values (ranges, existing paths, shapes) stay checked where they are used, with their own
 * coded errors, so one source of truth holds each rule.
 */
import { z } from 'zod';
import { HscrError } from '../errors';

/** One positional argument's schema. */
export type ArgSchema = z.ZodType;
/** The positional arguments of one call style; an overloaded function has several. */
export type Signature = readonly ArgSchema[];

/** A value fit to carry on an error (symbols, functions and bigints do not survive JSON or util.inspect well). */
function shown(v: unknown): unknown {
  return typeof v === 'symbol' || typeof v === 'function' || typeof v === 'bigint' ? String(v) : v;
}

function at(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const key of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[key] : undefined;
  return v;
}

/** The E_ARG for `args` against one signature, or null when they fit. */
function mismatch(fn: string, signature: Signature, args: readonly unknown[]): HscrError | null {
  if (args.length > signature.length && args.slice(signature.length).some((a) => a !== undefined)) {
    return new HscrError(`${fn}: takes at most ${signature.length} arguments, got ${args.length}`, 'E_ARG', args.length);
  }
  for (let i = 0; i < signature.length; i++) {
    const r = signature[i].safeParse(args[i]);
    if (r.success) continue;
    const issue = r.error.issues[0];
    const field = issue.path.length ? ` field ${issue.path.map(String).join('.')}` : '';
    const value = at(args[i], issue.path);
    return new HscrError(`${fn}: argument ${i + 1}${field}: ${issue.message}`, 'E_ARG', shown(value));
  }
  return null;
}

/** The E_ARG for the call, or null: the first signature that fits wins; otherwise the first's complaint. */
export function argumentError(fn: string, signatures: readonly Signature[], args: readonly unknown[]): HscrError | null {
  let first: HscrError | null = null;
  for (const s of signatures) {
    const err = mismatch(fn, s, args);
    if (!err) return null;
    first ??= err;
  }
  return first;
}

type AnyFunction = (...args: any[]) => any;

/**
 * `fn` with its argument types checked first. A promise-returning function rejects with the E_ARG (as it
 * rejects for every other failure), an async generator throws it from its first next(), a plain function
 * throws it. `returnsPromise` marks a plain function that returns a promise.
 */
export function guard<F extends AnyFunction>(name: string, signatures: Signature | readonly Signature[], fn: F, returnsPromise = false): F {
  const list = (Array.isArray(signatures[0]) ? signatures : [signatures]) as readonly Signature[];
  const kind = returnsPromise ? 'AsyncFunction' : fn.constructor.name;
  let checked: AnyFunction;
  if (kind === 'AsyncGeneratorFunction') {
    checked = async function* (this: unknown, ...args: unknown[]) {
      const err = argumentError(name, list, args);
      if (err) throw err;
      yield* fn.apply(this, args);
    };
  } else {
    checked = function (this: unknown, ...args: unknown[]) {
      const err = argumentError(name, list, args);
      if (err) {
        if (kind === 'AsyncFunction') return Promise.reject(err);
        throw err;
      }
      return fn.apply(this, args);
    };
  }
  Object.defineProperty(checked, 'name', { value: fn.name });
  Object.defineProperty(checked, 'length', { value: fn.length });
  return checked as F;
}

// Schemas shared by the root's signatures.
export const str = z.string();
export const num = z.number();
export const bool = z.boolean();
export const fn = z.custom<AnyFunction>((v) => typeof v === 'function', { message: 'expected a function' });
/** An options object whose listed fields have these types; other fields pass through to the function's own checks. */
export const options = <T extends z.ZodRawShape>(shape: T) => z.looseObject(shape);
export const anyObject = z.looseObject({});
export const typedArray = z.custom<ArrayBufferView>((v) => ArrayBuffer.isView(v) && !(v instanceof DataView), { message: 'expected a typed array' });
export const tensor = z.custom((v) => v !== null && typeof v === 'object' && Array.isArray((v as { shape?: unknown }).shape) && typeof (v as { toArray?: unknown }).toArray === 'function', {
  message: 'expected a Tensor',
});
export const shape = z.array(z.number());
export const strings = z.array(z.string());
