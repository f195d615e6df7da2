/**
 * hscr: Hierarchical Self-Contrastive Rewarding for vision-language models.
 * Functions come from ./api, where each stands behind its argument types (a wrong type is an HscrError
 * E_ARG, never a TypeError); types and classes come from their modules.
 */
export { HscrError, type HscrErrorCode } from './errors';
export { HSCR_DEFAULTS } from './config';
export { setThreads, resolveThreads } from './api';
export { native, addonLocation, type Tensor, type DType, type RuntimeInfo, type AddonLocation } from './native';
export { tensor, matmul, randn, toBfloat16Bits, fromBfloat16Bits } from './api';
export { doctor, formatDoctor } from './api';
export { type DoctorReport } from './doctor';
export { resolveSftConfig, resolveMlpoConfig } from './api';
export {
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
export { learningRateAt, lrFactor, termWeightAt } from './api';
export { type LrSchedule } from './train/schedule';
export { addLoraAdapters, adaptedModules, applyAdapter, loadAdapter, saveAdapter, saveModelFolder } from './api';
export { type AdapterInfo } from './train/adapter';
export { runTraining, planSteps } from './api';
export { type TrainingTask, type TrainResult, type RunOptions } from './train/loop';
export { runSft, createSftTask } from './api';
export { type SftRunOptions } from './train/sft';
export {
  mlpoLoss,
  runMlpo,
  createMlpoTask,
  loadPreferences,
  referenceLogps,
  preferenceAccuracy,
  preferenceFileAccuracy,
} from './api';
export { type MlpoRunOptions, type MlpoRunResult, type PreferenceAccuracy } from './train/mlpo';
export { launchWorkers, initDistributed, distEnvFrom } from './api';
export { type DistContext, type LaunchOptions } from './train/launcher';
export { runAblation, resolveAblationConfig, formatAblation } from './api';
export { type AblationConfig, type AblationResult, type AblationOptions, type TableName } from './train/ablate';

// Model: the native VLM, its config/checkpoint layouts, tokenizer, template and image preprocessing.
export { keptVisualTokens } from './api';
export {
  VisionLanguageModel,
  type Batch,
  type BatchRow,
  type PerturbKind,
  type PerturbOptions,
  type LogprobResult,
  type GenerateResult,
  type ModelOptions,
  type GenerateOptions as ModelGenerateOptions,
} from './model/vlm';
export { loadModelBundle, disposeBundle, batchOf, generateAnswers, encodeRecord } from './api';
export { type ModelBundle, type LoadBundleOptions, type ExampleInput } from './model/bundle';
// Model folders: a randomly initialised one (tiny: no download), and per-token log-probs of records with one.
export { initModel, answerLogprobs } from './api';
export { type InitOptions, type LogprobsOptions } from './model/folder';
export { readModelConfig, writeModelConfig } from './api';
export { type ModelConfig, type VisionConfig, type TextConfig, type Architecture } from './model/config';
export { presetConfig, parameterCount } from './api';
export { PRESET_NAMES, type PresetName, type PresetOptions } from './model/presets';
export { loadTokenizer } from './api';
export { HscrTokenizer } from './model/tokenizer';
export { encodeExample, renderConversation } from './api';
export { loadImages, preprocessImage, readPreprocessing } from './api';
export { readSafetensors, writeSafetensors, safetensorsKeys } from './api';
export { loadPredictor } from './api';
export { type PredictorOptions } from './model/predictor';

// Data: the phantom benchmark and the real benchmarks' loaders.
export {
  generatePhantom,
  loadDataset,
  detectFormat,
  readJsonl,
} from './api';
export {
  phantomCorpus,
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
export { contrastiveScores, modelContrastive } from './api';
export { type ContrastiveOptions, type ModelContrastiveOptions, type PlausibilityRule, type ViewLayout } from './generate/contrastive';
export { generatePreferences, generateFile } from './api';
export {
  type GenerateOptions,
  type GenerateFileOptions,
  type GenerateFileRequest,
  type GenerateCounts,
  type GenerateMode,
} from './generate/pipeline';
export type { PrefRecord, RankedRecord, PreferenceSample, Candidate, RankedCandidate, Replacement } from './generate/types';
// TRL's preference format (prompt/chosen/rejected/images): read wherever ranked preferences are read, written by writeTrlFile.
export { writeTrlFile, toTrl, fromTrl } from './api';
export { type TrlPreference, type TrlMessage, type TrlExportRequest } from './generate/trl';
export { buildDispreferred } from './api';
export { type ReplacementSchedule } from './generate/dispreferred';
export { rerank, rerankFile } from './api';
export { type RerankOptions, type RerankFileOptions, type RerankFileRequest, type RerankCounts, type RerankResult, type RerankMode } from './rerank/rerank';
export { corleyMihalcea, idfFromCorpus, embeddingWordSimilarity } from './api';
export { type TextSimilarity, type WordSimilarity, type CorleyMihalceaOptions, type Idf } from './rerank/similarity';

// Evaluation as LLaVA-Med does it.
export { evaluate, evaluateImageReliance } from './api';
export {
  type EvaluateOptions,
  type EvaluationResult,
  type ImageRelianceResult,
  type Predictor,
  type PredictInput,
  type PredictionLine,
} from './eval/run';
export { scorePredictions } from './api';
export {
  METRIC_VARIANTS,
  type ScoreReport,
  type ScoreOptions,
  type MetricVariant,
  type Predictions,
  type GroupSummary,
  type ItemScore,
} from './eval/metrics';
export { loadPredictions } from './api';
export { resultsTable } from './api';
export { type TableRow } from './eval/table';
export { hallucinationRate } from './api';
export { type HallucinationReport } from './eval/hallucination';
export { runGptReview, loadReviewItems } from './api';
export { type ReviewOptions, type ReviewItem, type ReviewSummary } from './eval/gpt-review';

// The run report and the one-config pipeline (`hscr run`).
export { writeRunReport } from './api';
export { type RunReport, type RunReportOptions } from './report';
export { runPipeline, loadPipelineConfig, resolvePipelineConfig } from './api';
export { type PipelineConfig, type PipelineResult, type StageOutcome } from './pipeline';
