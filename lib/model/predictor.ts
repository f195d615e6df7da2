/** The predictor `hscr eval` drives: a model bundle answering batches of questions by greedy generation. */
import { HscrError } from '../errors';
import type { Predictor } from '../eval/run';
import type { VisionLanguageModel } from './vlm';
import { disposeBundle, generateAnswers, loadModelBundle, type LoadBundleOptions } from './bundle';
import { fitToContext, type FitOptions, type FitResult } from './context';

export interface PredictorOptions extends LoadBundleOptions {
  maxNewTokens?: number;
  /** Loads a LoRA adapter (PEFT folder) into the bundle's model; lib/train provides it. */
  loadAdapter?: (model: VisionLanguageModel, adapterDir: string, options?: { allowNonFinite?: boolean }) => Promise<void>;
}

export async function loadPredictor(
  modelDir: string,
  adapterDir?: string,
  options: PredictorOptions = {},
): Promise<Predictor & { dispose(): void; fit<T extends { id: string; question: string }>(records: readonly T[], opts: Omit<FitOptions, 'reserve'>): FitResult<T> }> {
  const bundle = await loadModelBundle(modelDir, options);
  if (adapterDir) {
    try {
      if (!options.loadAdapter) throw new HscrError('loading an adapter needs options.loadAdapter (lib/train/adapter applyAdapter)', 'E_ARG', adapterDir);
      await options.loadAdapter(bundle.model, adapterDir, { allowNonFinite: options.allowNonFinite });
    } catch (e) {
      disposeBundle(bundle);
      throw e;
    }
  }
  const maxNewTokens = options.maxNewTokens ?? 32;
  const predict = ((batch: { id: string; image: string; question: string }[]) => generateAnswers(bundle, batch, { maxNewTokens })) as Predictor;
  // The prompt plus the tokens generation may add must fit the context (checked when the data is loaded).
  const fit = <T extends { id: string; question: string }>(records: readonly T[], opts: Omit<FitOptions, 'reserve'>): FitResult<T> => {
    const prompts = fitToContext(bundle, records.map((r) => ({ id: r.id, question: r.question })), { ...opts, reserve: maxNewTokens });
    const fitted = records.map((r, i) => (prompts.records[i].question === r.question ? r : { ...r, question: prompts.records[i].question }));
    return { records: fitted, truncated: prompts.truncated };
  };
  return Object.assign(predict, { dispose: () => disposeBundle(bundle), fit });
}
