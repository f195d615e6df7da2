/**
 * The model's context window, checked when the data is loaded: a record whose prompt + visual tokens +
 * answer (+ the tokens a generation may add) exceeds max_position_embeddings would run far past the memory
 * and time anyone planned for (attention grows with the square of the length) or be cut silently. It is an
 * E_DATA naming file, line and length before any forward pass; with `truncate` the question is shortened
 * instead (from its end; the template around it and the answer, which loss and metrics are about, stay
 * whole), and a record whose answer alone does not fit is still an error.
 */
import { dataError, HscrError } from '../errors';
import type { ModelBundle } from './bundle';
import { encodeRecord, type EncodedRecord } from './bundle';

/** Visual tokens one image becomes: one per patch (plus CLS for the 'cls_patch' feature selection). */
export function visualTokens(bundle: Pick<ModelBundle, 'model'>): number {
  const { imageSize, patchSize } = bundle.model.config.vision;
  return (imageSize / patchSize) ** 2 + (bundle.model.config.selectFeature === 'cls_patch' ? 1 : 0);
}

/** Positions a teacher-forced row takes: text tokens, each image placeholder expanded to its visual tokens, the answer. */
export function sequenceLength(bundle: Pick<ModelBundle, 'model'>, enc: EncodedRecord): number {
  const image = bundle.model.config.imageTokenIndex;
  const images = enc.promptIds.filter((id) => id === image).length;
  return enc.promptIds.length - images + images * visualTokens(bundle) + enc.answerIds.length;
}

export interface FitOptions {
  /** The data file, for messages. */
  source: string;
  /** Line of a record in the source (undefined when unknown). */
  lineOf?: (index: number) => number | undefined;
  /** Tokens generation adds after the prompt (eval: max new tokens); 0 for teacher forcing. */
  reserve?: number;
  /** Shorten questions that do not fit instead of refusing them. */
  truncate?: boolean;
  /** Answers besides `answer` that must fit too (MLPO's rejected answers), by record index. */
  alsoAnswers?: (index: number) => readonly string[];
}

export interface FitResult<T> {
  records: T[];
  /** Ids whose question was shortened. */
  truncated: string[];
}

interface Fittable {
  id: string;
  question: string;
  answer?: string;
}

function longest<T extends Fittable>(bundle: ModelBundle, r: T, answers: readonly (string | undefined)[]): number {
  return Math.max(...answers.map((answer) => sequenceLength(bundle, encodeRecord(bundle, { question: r.question, answer }))));
}

/**
 * Checks every record against the context window (see the file comment); returns the records, with
 * shortened questions where `truncate` allowed it. Throws E_DATA for the first record that does not fit.
 */
export function fitToContext<T extends Fittable>(bundle: ModelBundle, records: readonly T[], opts: FitOptions): FitResult<T> {
  const limit = bundle.model.config.text.maxPositionEmbeddings;
  const reserve = opts.reserve ?? 0;
  if (!Number.isInteger(reserve) || reserve < 0) throw new HscrError('reserve must be an integer ≥ 0', 'E_ARG', reserve);
  const out: T[] = [];
  const truncated: string[] = [];
  records.forEach((r, i) => {
    const answers = [r.answer, ...(opts.alsoAnswers?.(i) ?? [])];
    let length: number;
    try {
      length = longest(bundle, r, answers) + reserve;
    } catch (e) {
      throw dataError(opts.source, opts.lineOf?.(i), 'answer', `record "${r.id}": ${(e as Error).message}`, r.answer);
    }
    if (length <= limit) return void out.push(r);
    const what = `record "${r.id}" is ${length} tokens long (prompt + ${visualTokens(bundle)} visual tokens + answer${reserve ? ` + ${reserve} generated` : ''}); the model's context (max_position_embeddings) is ${limit}`;
    if (!opts.truncate) throw dataError(opts.source, opts.lineOf?.(i), 'question', `${what}; shorten it, or pass --truncate to cut long questions`, length);
    const shortened = shortenQuestion(bundle, r, answers, limit - reserve);
    if (!shortened) throw dataError(opts.source, opts.lineOf?.(i), 'answer', `${what}, and even with no question at all it does not fit`, length);
    truncated.push(r.id);
    out.push(shortened);
  });
  return { records: out, truncated };
}

/** The longest prefix (in question tokens) of the question that fits, found by bisection; undefined if none does. */
function shortenQuestion<T extends Fittable>(bundle: ModelBundle, r: T, answers: readonly (string | undefined)[], limit: number): T | undefined {
  const tokenizer = bundle.tokenizer;
  const ids = tokenizer.encode(r.question).filter((id) => id !== tokenizer.bosId);
  const withTokens = (n: number): T => ({ ...r, question: tokenizer.decode(ids.slice(0, n), { skipSpecial: true }).trim() });
  const fits = (n: number) => {
    try {
      return longest(bundle, withTokens(n), answers) <= limit;
    } catch {
      return false;
    }
  };
  if (!fits(0)) return undefined;
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return withTokens(lo);
}
