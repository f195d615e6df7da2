/**
 * LLaVA's chat templates (llava/conversation.py) and its prompt tokenisation (mm_utils.tokenizer_image_token):
 * - mistral_instruct (LLaVA-Med 1.5): SeparatorStyle.LLAMA_2, empty system, sep "", sep2 "</s>":
 *   `[INST] <image>\n{question} [/INST]` then ` {answer} </s>`; the tokenizer adds <s>.
 * - vicuna_v1: SeparatorStyle.TWO, sep " ", sep2 "</s>":
 *   `{system} USER: <image>\n{question} ASSISTANT:` then ` {answer}</s>`.
 */
import { HscrError } from '../errors';
import type { ModelConfig, TemplateName } from './config';
import type { HscrTokenizer } from './tokenizer';

export const IMAGE_PLACEHOLDER = '<image>';

const VICUNA_SYSTEM =
  "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";

export interface Example {
  question: string;
  /** The target; absent for a generation prompt. */
  answer?: string;
}

export interface EncodedExample {
  /** The prompt, with cfg.imageTokenIndex where <image> stood (the model splices visual tokens there). */
  promptIds: number[];
  /** The target tokens up to and including the final EOS; empty without an answer. */
  answerIds: number[];
}

export interface RenderedConversation {
  /** What the model sees before it answers (the generation prompt). */
  prompt: string;
  /** prompt + answer + end of turn; null without an answer. */
  full: string | null;
}

/** LLaVA's preprocess_multimodal: any <image> in the question moves to the front, followed by a newline. */
function userTurn(question: string): string {
  return `${IMAGE_PLACEHOLDER}\n${question.split(IMAGE_PLACEHOLDER).join('').trim()}`;
}

/** The conversation text as LLaVA's Conversation.get_prompt() writes it; `eos` is the tokenizer's EOS text. */
export function renderConversation(template: TemplateName, example: Example, eos = '</s>'): RenderedConversation {
  if (typeof example.question !== 'string') throw new HscrError('question must be a string', 'E_ARG', example.question);
  if (example.answer !== undefined && (typeof example.answer !== 'string' || example.answer.trim() === '')) {
    throw new HscrError('answer must be a non-empty string when given', 'E_ARG', example.answer);
  }
  const user = userTurn(example.question);
  const answer = example.answer?.trim();
  switch (template) {
    case 'mistral_instruct': {
      const prompt = `[INST] ${user} [/INST]`;
      return { prompt, full: answer === undefined ? null : `${prompt} ${answer} ${eos}` };
    }
    case 'vicuna_v1': {
      const prompt = `${VICUNA_SYSTEM} USER: ${user} ASSISTANT:`;
      return { prompt, full: answer === undefined ? null : `${prompt} ${answer}${eos}` };
    }
    default:
      throw new HscrError('template must be "mistral_instruct" or "vicuna_v1"', 'E_ARG', template);
  }
}

/**
 * LLaVA's tokenizer_image_token: the text chunks around each <image> are tokenised on their own (each as if
 * it began a text); when the tokenizer adds BOS, the first chunk keeps it and the others lose theirs.
 * `imageTokenIndex` goes between the chunks.
 */
export function tokenizeWithImage(text: string, tokenizer: HscrTokenizer, imageTokenIndex: number): number[] {
  const chunks = text.split(IMAGE_PLACEHOLDER).map((chunk) => tokenizer.encode(chunk));
  const offset = chunks[0].length > 0 && chunks[0][0] === tokenizer.bosId ? 1 : 0;
  const ids: number[] = offset ? [tokenizer.bosId] : [];
  chunks.forEach((chunk, i) => {
    if (i > 0) ids.push(imageTokenIndex);
    ids.push(...chunk.slice(offset));
  });
  return ids;
}

/**
 * Prompt and answer ids for one example. The answer ids are exactly the tail the whole conversation's
 * tokenisation has after the prompt (LLaVA masks targets by prompt length); if the tokenizer merged across
 * the prompt/answer boundary there would be no such split, and that is an error rather than a silent shift.
 */
export function encodeExample(
  example: Example,
  tokenizer: HscrTokenizer,
  cfg: Pick<ModelConfig, 'template' | 'imageTokenIndex'>,
): EncodedExample {
  const eosText = tokenizer.tokenText(tokenizer.eosId);
  const { prompt, full } = renderConversation(cfg.template, example, eosText);
  const promptIds = tokenizeWithImage(prompt, tokenizer, cfg.imageTokenIndex);
  if (full === null) return { promptIds, answerIds: [] };
  const fullIds = tokenizeWithImage(full, tokenizer, cfg.imageTokenIndex);
  if (fullIds.length <= promptIds.length || promptIds.some((id, i) => fullIds[i] !== id)) {
    throw new HscrError(
      `the conversation's tokens do not start with the prompt's tokens, so the answer cannot be cut off cleanly (question ${JSON.stringify(example.question)}, answer ${JSON.stringify(example.answer)})`,
      'E_ARG',
      example,
    );
  }
  const answerIds = fullIds.slice(promptIds.length);
  if (answerIds[answerIds.length - 1] !== tokenizer.eosId) {
    throw new HscrError(`the answer's tokens do not end with EOS ${tokenizer.eosId}`, 'E_INTERNAL', answerIds);
  }
  return { promptIds, answerIds };
}
