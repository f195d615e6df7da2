/**
 * Every failure hscr reports — native or TypeScript — is an HscrError with a stable `code`,
 * so callers can branch on `err.code` instead of parsing messages.
 */
export type HscrErrorCode =
  | 'E_ARG' // a bad argument (wrong JS type, out of range)
  | 'E_SHAPE' // tensor shapes that do not fit together
  | 'E_DTYPE' // a dtype that is not supported here
  | 'E_DEVICE' // a device that is not available
  | 'E_IO' // file system trouble
  | 'E_LOCKED' // another process is writing the same output
  | 'E_TORCH' // an error raised inside libtorch
  | 'E_DISPOSED' // use of a tensor/model after dispose()
  | 'E_CHECKPOINT' // a malformed or incomplete checkpoint
  | 'E_CONFIG' // a bad config.json / option combination
  | 'E_DATA' // malformed input data (file, line, field in the message)
  | 'E_NATIVE' // the native addon is missing or failed to load
  | 'E_DIST' // distributed (c10d) setup or communication failure
  | 'E_NONFINITE' // NaN/Inf where only finite numbers may be (a diverged run, weights that would be written)
  | 'E_INTERNAL'; // a bug in hscr

export class HscrError extends Error {
  readonly code: HscrErrorCode;
  /** The offending value, rendered short, when there is one. */
  readonly value?: unknown;

  constructor(message: string, code: HscrErrorCode = 'E_INTERNAL', value?: unknown) {
    super(message);
    this.name = 'HscrError';
    this.code = code;
    if (value !== undefined) this.value = value;
  }
}

/** Errors about one place in an input file: the message always names file, line and field. */
export function dataError(file: string, line: number | undefined, field: string | undefined, what: string, value?: unknown): HscrError {
  const where = [file, line !== undefined ? `line ${line}` : undefined, field !== undefined ? `field "${field}"` : undefined]
    .filter(Boolean)
    .join(', ');
  return new HscrError(`${where}: ${what}`, 'E_DATA', value);
}
