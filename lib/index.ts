/** hscr: Hierarchical Self-Contrastive Rewarding for vision-language models. */
export { HscrError, type HscrErrorCode } from './errors';
export { HSCR_DEFAULTS } from './config';
export { native, addonLocation, setThreads, resolveThreads, type Tensor, type DType, type RuntimeInfo, type AddonLocation } from './native';
export { tensor, matmul, randn, toBfloat16Bits, fromBfloat16Bits } from './tensor';
export { doctor, formatDoctor, type DoctorReport } from './doctor';
export {
  resolveSftConfig,
  resolveMlpoConfig,
  type TrainConfig,
  type MlpoConfig,
  type LoraConfig,
  type MlpoLossKind,
  type TermSchedule,
  type TrainConfigInput,
  type MlpoConfigInput,
  type FinetuneMode,
  type LrScheduleKind,
  type LoraScope,
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
export { runAblation, resolveAblationConfig, formatAblation, type AblationConfig, type AblationResult, type AblationOptions, type TableName } from './train/ablate';

// Model: the native VLM, its config/checkpoint layouts, tokenizer, template and image preprocessing.
export {
  VisionLanguageModel,
  keptVisualTokens,
  type Batch,
  type BatchRow,
  type PerturbKind,
  type PerturbOptions,
  type LogprobResult,
  type GenerateResult,
  type ModelOptions,
  type GenerateOptions as ModelGenerateOptions,
} from './model/vlm';
export { loadModelBundle, disposeBundle, batchOf, generateAnswers, encodeRecord, type ModelBundle, type LoadBundleOptions, type ExampleInput } from './model/bundle';
// Model folders: a randomly initialised one (tiny: no download), and per-token log-probs of records with one.
export { initModel, answerLogprobs, type InitOptions, type LogprobsOptions } from './model/folder';
export { readModelConfig, writeModelConfig, type ModelConfig, type VisionConfig, type TextConfig, type Architecture } from './model/config';
export { presetConfig, parameterCount, PRESET_NAMES, type PresetName, type PresetOptions } from './model/presets';
export { loadTokenizer, HscrTokenizer } from './model/tokenizer';
export { encodeExample, renderConversation } from './model/template';
export { loadImages, preprocessImage, readPreprocessing } from './model/image';
export { readSafetensors, writeSafetensors, safetensorsKeys } from './model/safetensors';
export { loadPredictor, type PredictorOptions } from './model/predictor';

// Data: the phantom benchmark and the real benchmarks' loaders.
export {
  generatePhantom,
  phantomCorpus,
  loadDataset,
  detectFormat,
  readJsonl,
  DATA_FORMATS,
  PHANTOM_DEFAULT_SIZE,
  type VqaRecord,
  type AnswerType,
  type DataFormat,
  type LoadOptions,
  type FormatLoadResult,
  type PhantomOptions,
  type PhantomResult,
} from './data';

// HSCR preference data (§3.1) and re-ranking (§3.2).
export { contrastiveScores, modelContrastive, type ContrastiveOptions, type ModelContrastiveOptions, type PlausibilityRule, type ViewLayout } from './generate/contrastive';
export {
  generatePreferences,
  generateFile,
  type GenerateOptions,
  type GenerateFileOptions,
  type GenerateFileRequest,
  type GenerateCounts,
  type GenerateMode,
} from './generate/pipeline';
export type { PrefRecord, RankedRecord, PreferenceSample, Candidate, RankedCandidate, Replacement } from './generate/types';
// TRL's preference format (prompt/chosen/rejected/images): read wherever ranked preferences are read, written by writeTrlFile.
export { writeTrlFile, toTrl, fromTrl, type TrlPreference, type TrlMessage, type TrlExportRequest } from './generate/trl';
export { buildDispreferred, type ReplacementSchedule } from './generate/dispreferred';
export { rerank, rerankFile, type RerankOptions, type RerankFileOptions, type RerankFileRequest, type RerankCounts, type RerankResult, type RerankMode } from './rerank/rerank';
export { corleyMihalcea, idfFromCorpus, embeddingWordSimilarity, type TextSimilarity, type WordSimilarity, type CorleyMihalceaOptions, type Idf } from './rerank/similarity';

// Evaluation as LLaVA-Med does it.
export {
  evaluate,
  evaluateImageReliance,
  type EvaluateOptions,
  type EvaluationResult,
  type ImageRelianceResult,
  type Predictor,
  type PredictInput,
  type PredictionLine,
} from './eval/run';
export {
  scorePredictions,
  METRIC_VARIANTS,
  type ScoreReport,
  type ScoreOptions,
  type MetricVariant,
  type Predictions,
  type GroupSummary,
  type ItemScore,
} from './eval/metrics';
export { loadPredictions } from './eval/predictions';
export { resultsTable, type TableRow } from './eval/table';
export { hallucinationRate, type HallucinationReport } from './eval/hallucination';
export { runGptReview, loadReviewItems, type ReviewOptions, type ReviewItem, type ReviewSummary } from './eval/gpt-review';

// The run report and the one-config pipeline (`hscr run`).
export { writeRunReport, type RunReport, type RunReportOptions } from './report';
export { runPipeline, loadPipelineConfig, resolvePipelineConfig, type PipelineConfig, type PipelineResult, type StageOutcome } from './pipeline';
