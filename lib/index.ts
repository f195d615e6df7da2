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

// Model: the native VLM, its config/checkpoint layouts, tokenizer, template and image preprocessing.
export { VisionLanguageModel, keptVisualTokens, type Batch, type BatchRow, type PerturbKind, type GenerateOptions as ModelGenerateOptions } from './model/vlm';
export { loadModelBundle, batchOf, generateAnswers, encodeRecord, type ModelBundle } from './model/bundle';
export { readModelConfig, writeModelConfig, type ModelConfig } from './model/config';
export { presetConfig, parameterCount, type PresetName } from './model/presets';
export { loadTokenizer, HscrTokenizer } from './model/tokenizer';
export { encodeExample, renderConversation } from './model/template';
export { loadImages, preprocessImage, readPreprocessing } from './model/image';
export { readSafetensors, writeSafetensors, safetensorsKeys } from './model/safetensors';
export { loadPredictor } from './model/predictor';

// Data: the phantom benchmark and the real benchmarks' loaders.
export { generatePhantom, phantomCorpus, loadDataset, type VqaRecord } from './data';

// HSCR preference data (§3.1) and re-ranking (§3.2).
export { contrastiveScores, modelContrastive } from './generate/contrastive';
export { generatePreferences, generateFile } from './generate/pipeline';
export { buildDispreferred } from './generate/dispreferred';
export { rerank, rerankFile } from './rerank/rerank';
export { corleyMihalcea, idfFromCorpus, embeddingWordSimilarity } from './rerank/similarity';

// Evaluation as LLaVA-Med does it.
export { evaluate } from './eval/run';
export { scorePredictions } from './eval/metrics';

// The run report and the one-config pipeline (`hscr run`).
export { writeRunReport, type RunReport, type RunReportOptions } from './report';
export { runPipeline, loadPipelineConfig, resolvePipelineConfig, type PipelineConfig, type PipelineResult, type StageOutcome } from './pipeline';
