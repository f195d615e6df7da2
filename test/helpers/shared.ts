/**
 * The real data beside the project (../shared: VQA-RAD, SLAKE, PathVQA, the Mistral tokenizer). A user's
 * clone has none of it: tests that need it skip, with one line naming what is missing. HSCR_SHARED_DIR
 * points elsewhere (set it to an empty folder to check that `npm test` passes without the data).
 */
import fs from 'fs';
import path from 'path';

export const SHARED_DIR = process.env.HSCR_SHARED_DIR ? path.resolve(process.env.HSCR_SHARED_DIR) : path.resolve(__dirname, '../../../shared');

export function sharedPath(...parts: string[]): string {
  return path.join(SHARED_DIR, ...parts);
}

export const MISTRAL_TOKENIZER = 'models/mistral-7b-tokenizer';

/** For tap's `skip`: false when every path (relative to the shared folder) exists, else the reason, one line. */
export function needShared(...relPaths: string[]): false | string {
  const missing = relPaths.filter((p) => !fs.existsSync(sharedPath(p)));
  return missing.length === 0 ? false : `needs the shared data: ${missing.map((p) => sharedPath(p)).join(', ')} missing`;
}
