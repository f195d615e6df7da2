/**
 * What `hscr sft` and `hscr train` do before any work, in the order that loses nothing: the process group,
 * the input paths, then (rank 0) the output folder checked and locked, then the model. The lock is held
 * before the model loads so a second writer is refused at once, and let go if the model fails to load.
 */
import { disposeBundle, loadModelBundle, type ModelBundle } from '../model/bundle';
import { checkInputFile, checkInputFolder, checkOutputFolder, lockOutput, type OutputLock } from '../util/output';
import type { TrainConfig } from './config';
import { distEnvFrom, initDistributed, type DistContext } from './launcher';
import { checkOutputDir, type RunOptions } from './loop';

export interface OpenRun {
  dist: DistContext;
  bundle: ModelBundle;
  /** Frees the model, lets go of the output lock and (when this call made it) the process group. */
  close(): void;
}

export async function openRun(
  config: TrainConfig,
  o: Pick<RunOptions, 'resume' | 'overwrite' | 'dist'>,
  input: { flag: string; file: string },
  command: string,
): Promise<OpenRun> {
  const ownGroup = o.dist === undefined;
  const dist = o.dist ?? (await initDistributed(distEnvFrom(), config.device.startsWith('cuda') ? 'nccl' : 'gloo'));
  let lock: OutputLock | undefined;
  try {
    checkInputFolder(config.modelDir, '--model');
    checkInputFile(input.file, input.flag);
    if (dist.rank === 0) {
      checkOutputFolder(config.outputDir);
      checkOutputDir(config.outputDir, o);
      // One writer per run folder: a second sft/train on it is refused at once (E_LOCKED).
      lock = lockOutput(config.outputDir, command);
    }
    const bundle = await loadModelBundle(config.modelDir, { device: config.device, allowNonFinite: config.allowNonFinite });
    return {
      dist,
      bundle,
      close() {
        disposeBundle(bundle);
        lock?.release();
        if (ownGroup) dist.group?.destroy();
      },
    };
  } catch (e) {
    lock?.release();
    if (ownGroup) dist.group?.destroy();
    throw e;
  }
}
