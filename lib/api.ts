/**
 * The package root's functions, each behind its argument types (lib/util/arguments.ts): a wrong type is an
 * HscrError E_ARG naming the function, the argument and the field, never a TypeError from inside. Only
 * types and required fields are listed here; each function checks its values itself.
 */
import { z } from 'zod';
import { anyObject, bool, fn, guard, num, options, shape, str, strings, tensor as tensorArg, typedArray } from './util/arguments';
import { setThreads as setThreadsRaw, resolveThreads as resolveThreadsRaw } from './native';
import * as t from './tensor';
import { doctor as doctorRaw, formatDoctor as formatDoctorRaw } from './doctor';
import * as trainConfig from './train/config';
import * as schedule from './train/schedule';
import * as adapter from './train/adapter';
import * as loop from './train/loop';
import * as sft from './train/sft';
import * as mlpo from './train/mlpo';
import * as launcher from './train/launcher';
import * as ablate from './train/ablate';
import { VisionLanguageModel, keptVisualTokens as keptVisualTokensRaw } from './model/vlm';
import * as bundle from './model/bundle';
import * as folder from './model/folder';
import * as modelConfig from './model/config';
import * as presets from './model/presets';
import { HscrTokenizer, loadTokenizer as loadTokenizerRaw } from './model/tokenizer';
import * as template from './model/template';
import * as image from './model/image';
import * as safetensors from './model/safetensors';
import { loadPredictor as loadPredictorRaw } from './model/predictor';
import * as data from './data';
import * as contrastive from './generate/contrastive';
import * as pipeline from './generate/pipeline';
import * as trl from './generate/trl';
import { buildDispreferred as buildDispreferredRaw } from './generate/dispreferred';
import * as rr from './rerank/rerank';
import * as similarity from './rerank/similarity';
import * as run from './eval/run';
import * as metrics from './eval/metrics';
import { loadPredictions as loadPredictionsRaw } from './eval/predictions';
import { resultsTable as resultsTableRaw } from './eval/table';
import { hallucinationRate as hallucinationRateRaw } from './eval/hallucination';
import * as review from './eval/gpt-review';
import { writeRunReport as writeRunReportRaw } from './report';
import * as runPipe from './pipeline';

const opt = <T extends z.ZodType>(s: T) => s.optional();
const model = z.custom<VisionLanguageModel>((v) => v instanceof VisionLanguageModel, { message: 'expected a VisionLanguageModel' });
const modelBundle = options({ dir: str, model, tokenizer: z.instanceof(HscrTokenizer, { message: 'expected an HscrTokenizer' }), preprocessing: anyObject });
const records = z.array(options({ id: str, question: str }));
const questions = z.array(options({ question: str }));
const objects = z.array(anyObject);
const doctorOptions = options({ gemmSize: opt(num), gemmSeconds: opt(num), device: opt(str) });
const runOptions = { resume: opt(bool), overwrite: opt(bool), quiet: opt(bool), onStep: opt(fn) };
const evaluateOptions = options({ batchSize: num, outDir: str, resultsFile: opt(str), predictionsFile: opt(str), onProgress: opt(fn), name: opt(str) });
const fileOptions = opt(anyObject);

// Runtime and tensors.
export const setThreads = guard('setThreads', [opt(num)], setThreadsRaw);
export const resolveThreads = guard('resolveThreads', [opt(num), opt(anyObject)], resolveThreadsRaw);
export const tensor = guard('tensor', [typedArray, shape, opt(str)], t.tensor);
export const matmul = guard('matmul', [tensorArg, tensorArg], t.matmul, true);
export const randn = guard('randn', [shape, opt(options({ seed: opt(num), dtype: opt(str) }))], t.randn);
export const toBfloat16Bits = guard('toBfloat16Bits', [z.instanceof(Float32Array)], t.toBfloat16Bits);
export const fromBfloat16Bits = guard('fromBfloat16Bits', [z.instanceof(Uint16Array)], t.fromBfloat16Bits);
export const doctor = guard('doctor', [opt(doctorOptions)], doctorRaw);
const doctorReport = options({ node: str, platform: str, cores: num, addon: options({ path: str }), torch: anyObject, blas: strings, cuda: anyObject, gemm: anyObject });
export const formatDoctor = guard('formatDoctor', [doctorReport], formatDoctorRaw);

// Training.
export const resolveSftConfig = guard('resolveSftConfig', [anyObject], trainConfig.resolveSftConfig);
export const resolveMlpoConfig = guard('resolveMlpoConfig', [anyObject], trainConfig.resolveMlpoConfig);
export const learningRateAt = guard('learningRateAt', [num, anyObject], schedule.learningRateAt);
export const lrFactor = guard('lrFactor', [num, anyObject], schedule.lrFactor);
export const termWeightAt = guard('termWeightAt', [num, num, anyObject], schedule.termWeightAt);
export const addLoraAdapters = guard('addLoraAdapters', [model, anyObject, num], adapter.addLoraAdapters);
export const adaptedModules = guard('adaptedModules', [model], adapter.adaptedModules);
export const applyAdapter = guard('applyAdapter', [model, str, opt(options({ allowNonFinite: opt(bool) }))], adapter.applyAdapter);
export const loadAdapter = guard('loadAdapter', [model, str, opt(options({ allowNonFinite: opt(bool) }))], adapter.loadAdapter);
export const saveAdapter = guard('saveAdapter', [model, str, anyObject, opt(str.nullable())], adapter.saveAdapter);
export const saveModelFolder = guard('saveModelFolder', [model, str, str], adapter.saveModelFolder);
export const runTraining = guard('runTraining', [model, anyObject, anyObject, opt(options(runOptions))], loop.runTraining);
export const planSteps = guard('planSteps', [num, anyObject, num], loop.planSteps);
export const runSft = guard('runSft', [options({ config: anyObject, data: str, format: opt(str), imageRoot: opt(str), truncate: opt(bool), ...runOptions })], sft.runSft);
export const createSftTask = guard('createSftTask', [modelBundle, objects, str], sft.createSftTask);
export const mlpoLoss = guard('mlpoLoss', [anyObject, opt(anyObject)], mlpo.mlpoLoss, true);
export const runMlpo = guard('runMlpo', [options({ config: anyObject, prefs: str, ...runOptions })], mlpo.runMlpo);
export const createMlpoTask = guard('createMlpoTask', [modelBundle, objects, anyObject, anyObject, options({ prefsSha256: str }), opt(anyObject)], mlpo.createMlpoTask);
export const loadPreferences = guard('loadPreferences', [modelBundle, str], mlpo.loadPreferences);
export const referenceLogps = guard('referenceLogps', [model, anyObject, objects, anyObject], mlpo.referenceLogps);
export const preferenceAccuracy = guard('preferenceAccuracy', [modelBundle, objects, anyObject, anyObject, opt(num)], mlpo.preferenceAccuracy);
export const preferenceFileAccuracy = guard('preferenceFileAccuracy', [str, str, str, options({ referenceCacheDir: str })], mlpo.preferenceFileAccuracy);
export const launchWorkers = guard('launchWorkers', [options({ nproc: num, nnodes: num, nodeRank: num, masterAddr: str }), anyObject], launcher.launchWorkers);
export const initDistributed = guard('initDistributed', [anyObject.nullable(), z.enum(['gloo', 'nccl']), opt(num)], launcher.initDistributed);
export const distEnvFrom = guard('distEnvFrom', [opt(anyObject)], launcher.distEnvFrom);
export const runAblation = guard('runAblation', [options({ configFile: opt(str), config: opt(anyObject), outDir: opt(str), only: opt(strings), quiet: opt(bool), log: opt(fn) })], ablate.runAblation);
export const resolveAblationConfig = guard('resolveAblationConfig', [anyObject, opt(str)], ablate.resolveAblationConfig);
export const formatAblation = guard('formatAblation', [anyObject, strings, objects], ablate.formatAblation);

// Model.
export const keptVisualTokens = guard('keptVisualTokens', [num, num, num], keptVisualTokensRaw);
export const loadModelBundle = guard('loadModelBundle', [str, opt(options({ device: opt(str), dtype: opt(str), allowNonFinite: opt(bool) }))], bundle.loadModelBundle);
export const disposeBundle = guard('disposeBundle', [modelBundle], bundle.disposeBundle);
export const batchOf = guard('batchOf', [modelBundle, questions], bundle.batchOf);
export const generateAnswers = guard('generateAnswers', [modelBundle, questions, opt(anyObject)], bundle.generateAnswers);
export const encodeRecord = guard('encodeRecord', [modelBundle, options({ question: str, answer: opt(str) })], bundle.encodeRecord);
export const initModel = guard(
  'initModel',
  [options({ preset: str, out: str, seed: opt(num), corpus: opt(str), tokenizer: opt(str), layout: opt(str), overwrite: opt(bool) })],
  folder.initModel,
);
export const answerLogprobs = guard(
  'answerLogprobs',
  [options({ model: str, data: str, perturb: opt(str), ratio: opt(num), seed: opt(num), batch: opt(num), quiet: opt(bool), truncate: opt(bool), allowNonFinite: opt(bool) })],
  folder.answerLogprobs,
);
export const readModelConfig = guard('readModelConfig', [str, opt(anyObject)], modelConfig.readModelConfig);
export const writeModelConfig = guard('writeModelConfig', [str, anyObject, str], modelConfig.writeModelConfig);
export const presetConfig = guard('presetConfig', [str, anyObject], presets.presetConfig);
export const parameterCount = guard('parameterCount', [options({ vision: anyObject, text: anyObject })], presets.parameterCount);
export const loadTokenizer = guard('loadTokenizer', [str], loadTokenizerRaw);
export const encodeExample = guard('encodeExample', [anyObject, z.instanceof(HscrTokenizer), anyObject], template.encodeExample);
export const renderConversation = guard('renderConversation', [str, anyObject, opt(str)], template.renderConversation);
export const loadImages = guard('loadImages', [strings, anyObject, opt(anyObject)], image.loadImages);
export const preprocessImage = guard('preprocessImage', [z.union([str, z.instanceof(Buffer)]), anyObject], image.preprocessImage);
export const readPreprocessing = guard('readPreprocessing', [str, opt(anyObject)], image.readPreprocessing);
export const readSafetensors = guard('readSafetensors', [str], safetensors.readSafetensors, true);
export const writeSafetensors = guard('writeSafetensors', [str, z.record(z.string(), tensorArg), opt(z.record(z.string(), z.string()))], safetensors.writeSafetensors, true);
export const safetensorsKeys = guard('safetensorsKeys', [str], safetensors.safetensorsKeys, true);
export const loadPredictor = guard('loadPredictor', [str, opt(str), opt(anyObject)], loadPredictorRaw);

// Data.
export const generatePhantom = guard('generatePhantom', [options({ outDir: str, train: num, test: num, seed: num, val: opt(num), size: opt(num) })], data.generatePhantom);
export const loadDataset = guard('loadDataset', [str, opt(options({ format: opt(str), imageRoot: opt(str) }))], data.loadDataset);
export const detectFormat = guard('detectFormat', [str], data.detectFormat);
export const readJsonl = guard('readJsonl', [str], data.readJsonl);

// Preference data (§3.1) and re-ranking (§3.2).
export const contrastiveScores = guard('contrastiveScores', [tensorArg, tensorArg, tensorArg, tensorArg, opt(anyObject)], contrastive.contrastiveScores);
export const modelContrastive = guard('modelContrastive', [model, anyObject, opt(anyObject)], contrastive.modelContrastive);
export const generatePreferences = guard('generatePreferences', [modelBundle, records, str, opt(anyObject), opt(str)], pipeline.generatePreferences);
export const generateFile = guard(
  'generateFile',
  [[options({ model: str, data: str, out: str })], [str, str, str, fileOptions]],
  pipeline.generateFile,
) as typeof pipeline.generateFile;
export const writeTrlFile = guard('writeTrlFile', [options({ input: str, out: str })], trl.writeTrlFile);
export const toTrl = guard('toTrl', [options({ id: str, question: str, chosen: str })], trl.toTrl);
export const fromTrl = guard('fromTrl', [anyObject, anyObject], trl.fromTrl);
export const buildDispreferred = guard('buildDispreferred', [anyObject, fn, fn, anyObject], buildDispreferredRaw);
export const rerank = guard('rerank', [options({ id: str, chosen: str, candidates: objects }), fn, opt(anyObject)], rr.rerank);
export const rerankFile = guard('rerankFile', [[options({ input: str, out: str })], [str, str, fileOptions]], rr.rerankFile) as typeof rr.rerankFile;
export const corleyMihalcea = guard('corleyMihalcea', [anyObject], similarity.corleyMihalcea);
export const idfFromCorpus = guard('idfFromCorpus', [z.custom<Iterable<string>>((v) => v != null && typeof (v as Iterable<string>)[Symbol.iterator] === 'function' && typeof v !== 'string', { message: 'expected an iterable of strings' })], similarity.idfFromCorpus);
export const embeddingWordSimilarity = guard('embeddingWordSimilarity', [anyObject], similarity.embeddingWordSimilarity);

// Evaluation.
export const evaluate = guard('evaluate', [records, fn, evaluateOptions], run.evaluate);
export const evaluateImageReliance = guard('evaluateImageReliance', [records, fn, evaluateOptions], run.evaluateImageReliance);
export const scorePredictions = guard(
  'scorePredictions',
  [records, z.union([z.instanceof(Map), z.record(z.string(), z.string())], { message: 'expected a Map or an object of id → prediction text' }), opt(z.union([str, anyObject]))],
  metrics.scorePredictions,
);
export const loadPredictions = guard('loadPredictions', [str], loadPredictionsRaw);
export const resultsTable = guard('resultsTable', [objects], resultsTableRaw);
export const hallucinationRate = guard('hallucinationRate', [records, z.instanceof(Map, { message: 'expected a Map of id → prediction text' })], hallucinationRateRaw);
export const runGptReview = guard('runGptReview', [objects, anyObject], review.runGptReview);
export const loadReviewItems = guard('loadReviewItems', [str, str], review.loadReviewItems);

// The run report and the one-config pipeline.
export const writeRunReport = guard('writeRunReport', [str, opt(anyObject)], writeRunReportRaw);
export const runPipeline = guard('runPipeline', [options({ out: str, data: anyObject })], runPipe.runPipeline);
export const loadPipelineConfig = guard('loadPipelineConfig', [str], runPipe.loadPipelineConfig);
export const resolvePipelineConfig = guard('resolvePipelineConfig', [z.unknown(), opt(str), opt(str)], runPipe.resolvePipelineConfig);
