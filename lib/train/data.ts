/**
 * What the trainers share about data: the file fingerprint a checkpoint and the reference cache are keyed
 * by, and decoded pixels kept across epochs (training sees every image once per epoch, and decoding plus
 * PIL-exact resizing costs more than a tiny model's forward pass).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { HscrError } from '../errors';

/** sha256 of a file's bytes, hex. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  } catch (e) {
    throw new HscrError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'E_IO', file);
  }
  return hash.digest('hex');
}

export { PixelCache } from '../model/pixel-cache';
