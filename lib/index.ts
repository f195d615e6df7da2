/** hscr: Hierarchical Self-Contrastive Rewarding for vision-language models. */
export { HscrError, type HscrErrorCode } from './errors';
export { HSCR_DEFAULTS } from './config';
export { native, addonLocation, setThreads, resolveThreads, type Tensor, type DType, type RuntimeInfo } from './native';
export { tensor, matmul, randn, toBfloat16Bits, fromBfloat16Bits } from './tensor';
export { doctor, type DoctorReport } from './doctor';
export {
  resolveSftConfig,
  resolveMlpoConfig,
  type TrainConfig,
  type MlpoConfig,
  type LoraConfig,
  type MlpoLossKind,
  type TermSchedule,
} from './train/config';
export { learningRateAt, lrFactor, termWeightAt, type LrSchedule } from './train/schedule';
export { addLoraAdapters, adaptedModules, applyAdapter, loadAdapter, saveAdapter, saveModelFolder, type AdapterInfo } from './train/adapter';
export { runTraining, planSteps, type TrainingTask, type TrainResult, type RunOptions } from './train/loop';
export { runSft, createSftTask, type SftRunOptions } from './train/sft';
export {
  mlpoLoss,
  runMlpo,
  createMlpoTask,
  loadPreferences,
  referenceLogps,
  preferenceAccuracy,
  preferenceFileAccuracy,
  type MlpoRunOptions,
  type MlpoRunResult,
  type PreferenceAccuracy,
} from './train/mlpo';
export { launchWorkers, initDistributed, distEnvFrom, type DistContext, type LaunchOptions } from './train/launcher';
export { runAblation, type AblationConfig, type AblationResult } from './train/ablate';
