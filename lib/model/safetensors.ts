/**
 * Hugging Face safetensors checkpoints through the native reader/writer (native/safetensors.cpp).
 * Reads are zero-copy views of a private file mapping that stays alive while any of its tensors does;
 * writes are atomic (temp file, fsync, rename). All work runs off the JS thread.
 */
import { native, type DType, type Tensor } from '../native';

/** The safetensors dtypes hscr reads and writes. int16/int8 exist in checkpoints but not as JS typed arrays. */
export type SafetensorsDType = DType | 'int16' | 'int8';

/** One header entry, in header order. */
export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
}

export interface SafetensorsFile {
  /** Tensors in header order (JS orders integer-like names first, as for every object). */
  tensors: Record<string, Tensor>;
  /** The file's `__metadata__` (string to string); empty when absent. */
  metadata: Record<string, string>;
}

interface SafetensorsAddon {
  readSafetensors(path: string): Promise<SafetensorsFile>;
  safetensorsKeys(path: string): Promise<SafetensorsEntry[]>;
  writeSafetensors(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): Promise<void>;
  safetensorsShards(dir: string): Promise<string[]>;
}

function addon(): SafetensorsAddon {
  return native() as unknown as SafetensorsAddon;
}

/** Every tensor and the metadata of one file. E_CHECKPOINT (naming the file) on a malformed file, E_IO on a missing one. */
export function readSafetensors(path: string): Promise<SafetensorsFile> {
  return addon().readSafetensors(path);
}

/** Names, dtypes and shapes from the header alone; the tensor data is not touched. */
export function safetensorsKeys(path: string): Promise<SafetensorsEntry[]> {
  return addon().safetensorsKeys(path);
}

/**
 * Writes the tensors in the object's key order, header padded to 8 bytes as the reference writer does.
 * An existing file at `path` is replaced only once the new one is complete on disk.
 */
export function writeSafetensors(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
  return addon().writeSafetensors(path, tensors, metadata);
}

/**
 * The files of a Hugging Face checkpoint directory: DIR/model.safetensors, or the shards that
 * DIR/model.safetensors.index.json's weight_map names, in first-seen order. E_CHECKPOINT naming what is missing.
 */
export function checkpointShards(dir: string): Promise<string[]> {
  return addon().safetensorsShards(dir);
}
