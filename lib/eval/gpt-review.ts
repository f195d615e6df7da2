/**
 * The paper's Table 2 protocol: LLaVA-Med's GPT-4 review (llava/eval/eval_multimodal_chat_gpt_score.py and
 * summarize_gpt_review.py). A judge model sees the figure caption and context, the question, the reference
 * answer (Assistant 1, GPT-4's own) and the model's answer (Assistant 2), and scores both 1–10 on the first
 * line of its reply. The model's score is reported relative to the reference's: mean(s2 / s1) × 100, per
 * question type, per domain and overall. Any OpenAI-compatible chat-completions endpoint will do.
 */
import { promises as fsp } from 'node:fs';
import { HscrError, dataError } from '../errors';
import { readRecords } from '../data/loaders';

/** LLaVA-Med's judge instruction, verbatim (including its two-space indents). */
export const REVIEW_INSTRUCTION = `We would like to request your feedback on the performance of two AI assistants in response to the user question displayed above. The user asks the question on observing an image. For your reference, the visual content in the image is represented with caption describing the same image.
  Please rate the helpfulness, relevance, accuracy, level of details of their responses. Each assistant receives an overall score on a scale of 1 to 10, where a higher score indicates better overall performance.
  Please first output a single line containing only two values indicating the scores for Assistant 1 and 2, respectively. The two scores are separated by a space. In the subsequent line, please provide a comprehensive explanation of your evaluation, avoiding any potential bias and ensuring that the order in which the responses were presented does not affect your judgment.`;

/** LLaVA-Med's system message, verbatim: the stray leading quote is in the original and kept so scores compare. */
export const REVIEW_SYSTEM = "'You are a helpful and precise assistant for checking the quality of the answer.";

export interface ReviewItem {
  questionId: string;
  /** 'conversation' or 'detailed_description' in LLaVA-Med's set. */
  type: string;
  /** chest_xray, mri, histology, gross or ct_scan; undefined when the item has none. */
  domain?: string;
  figLabel: string;
  figCaption: string;
  /** In-text mention of the figure, as the prompt shows it (see pyRepr). */
  figContext: string;
  question: string;
  /** The reference answer (GPT-4's, Assistant 1). */
  reference: string;
  /** The evaluated model's answer (Assistant 2). */
  answer: string;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export function reviewMessages(item: ReviewItem): ChatMessage[] {
  const user =
    `[Context]\nFigure Caption:\n${item.figLabel}: ${item.figCaption}\n\n` +
    `Figure Context:\n\t- ${item.figContext}\n\n` +
    `[Question]\n${item.question}\n\n` +
    `[Assistant 1]\n${item.reference}\n\n[End of Assistant 1]\n\n` +
    `[Assistant 2]\n${item.answer}\n\n[End of Assistant 2]\n\n` +
    `[System]\n${REVIEW_INSTRUCTION}\n\n`;
  return [
    { role: 'system', content: REVIEW_SYSTEM },
    { role: 'user', content: user },
  ];
}

/**
 * The two scores on the reply's first line. LLaVA-Med splits that line on single spaces and needs exactly
 * two fields; this also takes "8, 7", "8  7" and "8/10 7/10" — and returns null rather than guessing when
 * the line holds anything else.
 */
export function parseReviewScores(reply: string): [number, number] | null {
  const first = reply.trim().split('\n')[0].trim();
  const m = /^(\d+(?:\.\d+)?)(?:\s*\/\s*10)?[\s,;]+(\d+(?:\.\d+)?)(?:\s*\/\s*10)?$/.exec(first);
  if (!m) return null;
  return [Number(m[1]), Number(m[2])];
}

export interface ChatEndpoint {
  /** Base URL (…/v1) or the full …/chat/completions URL. */
  url: string;
  apiKey?: string;
  /** LLaVA-Med used gpt-4-0314. */
  model: string;
  /** LLaVA-Med used 0. */
  temperature?: number;
  /** Retries after HTTP 429 / 5xx / network errors, with doubling waits (default 5). */
  maxRetries?: number;
  /** First retry wait in ms (default 1000). */
  retryBaseMs?: number;
  timeoutMs?: number;
}

function completionsUrl(url: string): string {
  const u = url.replace(/\/+$/, '');
  return u.endsWith('/chat/completions') ? u : `${u}/chat/completions`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function retryable(status: number): boolean {
  return status === 429 || status >= 500;
}

/** One chat completion through Node's fetch; returns the first choice's text. */
export async function chatComplete(endpoint: ChatEndpoint, messages: ChatMessage[]): Promise<string> {
  const body = JSON.stringify({ model: endpoint.model, messages, temperature: endpoint.temperature ?? 0 });
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (endpoint.apiKey) headers.authorization = `Bearer ${endpoint.apiKey}`;
  const retries = endpoint.maxRetries ?? 5;
  for (let attempt = 0; ; attempt++) {
    let status = 0;
    let detail = '';
    try {
      const res = await fetch(completionsUrl(endpoint.url), { method: 'POST', headers, body, signal: AbortSignal.timeout(endpoint.timeoutMs ?? 120_000) });
      status = res.status;
      const text = await res.text();
      if (res.ok) return firstChoice(text);
      detail = text.slice(0, 200);
      if (!retryable(status)) throw new HscrError(`chat endpoint answered HTTP ${status}: ${detail}`, 'E_IO', status);
    } catch (err) {
      if (err instanceof HscrError) throw err;
      detail = (err as Error).message;
    }
    if (attempt >= retries) throw new HscrError(`chat endpoint failed after ${attempt + 1} tries (${status ? `HTTP ${status}` : 'network'}: ${detail})`, 'E_IO', status || detail);
    await sleep((endpoint.retryBaseMs ?? 1000) * 2 ** attempt);
  }
}

function firstChoice(text: string): string {
  let json: { choices?: { message?: { content?: unknown } }[] };
  try {
    json = JSON.parse(text);
  } catch {
    throw new HscrError(`chat endpoint answered something that is not JSON: ${text.slice(0, 120)}`, 'E_IO', text.slice(0, 120));
  }
  const content = json.choices?.[0]?.message?.content;
  if (typeof content !== 'string') throw new HscrError('chat endpoint reply has no choices[0].message.content', 'E_IO', text.slice(0, 200));
  return content.trim();
}

export interface ReviewRow {
  questionId: string;
  type: string;
  domain?: string;
  /** The judge's reply, trimmed. */
  review: string;
  /** [reference, model]; null when the first line held no two scores (or the reference got 0). */
  scores: [number, number] | null;
}

export interface ReviewCategory {
  n: number;
  /** Mean judge score of the reference and of the model. */
  referenceScore: number;
  modelScore: number;
  /** mean(model / reference) × 100: the Table 2 figure. */
  relativeScore: number;
}

export interface ReviewSummary {
  /** Per type (conversation, detailed_description), per domain, and 'overall'. */
  categories: Record<string, ReviewCategory>;
  /** Rows left out because their reply could not be scored. */
  unscored: string[];
}

/** summarize_gpt_review.py: averages per question type, per domain and overall. */
export function summarizeReviews(rows: ReviewRow[]): ReviewSummary {
  const groups = new Map<string, [number, number][]>();
  const add = (key: string, s: [number, number]) => groups.set(key, [...(groups.get(key) ?? []), s]);
  const unscored: string[] = [];
  for (const row of rows) {
    if (!row.scores || row.scores[0] === 0) {
      unscored.push(row.questionId);
      continue;
    }
    add(row.type, row.scores);
    if (row.domain) add(row.domain, row.scores);
    add('overall', row.scores);
  }
  const categories: Record<string, ReviewCategory> = {};
  for (const [key, scores] of groups) {
    const mean = (f: (s: [number, number]) => number) => scores.reduce((a, s) => a + f(s), 0) / scores.length;
    categories[key] = { n: scores.length, referenceScore: mean((s) => s[0]), modelScore: mean((s) => s[1]), relativeScore: mean((s) => s[1] / s[0]) * 100 };
  }
  return { categories, unscored };
}

export interface ReviewOptions {
  endpoint: ChatEndpoint;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** Each row is appended here as it arrives (JSONL). */
  outFile?: string;
  onProgress?: (done: number, total: number) => void;
}

/** Reviews every item through the endpoint and summarises. */
export async function runGptReview(items: ReviewItem[], opts: ReviewOptions): Promise<{ rows: ReviewRow[]; summary: ReviewSummary }> {
  const rows: ReviewRow[] = new Array(items.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      const item = items[i];
      const review = await chatComplete(opts.endpoint, reviewMessages(item));
      const scores = parseReviewScores(review);
      rows[i] = { questionId: item.questionId, type: item.type, ...(item.domain ? { domain: item.domain } : {}), review, scores };
      if (opts.outFile) await fsp.appendFile(opts.outFile, JSON.stringify(rows[i]) + '\n');
      opts.onProgress?.(++done, items.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, worker));
  return { rows, summary: summarizeReviews(rows) };
}

const DOMAINS = ['chest_xray', 'mri', 'histology', 'gross', 'ct_scan'];

function pyString(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\' || ch === quote) out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || (c >= 0x7f && c < 0xa0)) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + quote;
}

/**
 * Python's repr() of a JSON value. LLaVA-Med's script puts the question file's `in_text_mention` (a list of
 * {tokens, entities}) into the prompt with an f-string, so the judge read its repr; so does this one.
 */
export function pyRepr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return pyString(v);
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(', ')}]`;
  return `{${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${pyString(k)}: ${pyRepr(x)}`).join(', ')}}`;
}

/**
 * Pairs LLaVA-Med's review question file (llava_med_eval_qa50_qa.jsonl: question_id, type, domain,
 * fig_label, fig_caption, in_text_mention, text, gpt4_answer) with a model's answer file (question_id,
 * text) by question_id.
 */
export async function loadReviewItems(questionFile: string, answerFile: string): Promise<ReviewItem[]> {
  const answers = new Map<string, string>();
  for (const { line, value } of await readRecords(answerFile)) {
    const rec = value as Record<string, unknown>;
    const id = rec?.question_id;
    if (typeof id !== 'string' && typeof id !== 'number') throw dataError(answerFile, line, 'question_id', 'missing', id);
    if (typeof rec.text !== 'string') throw dataError(answerFile, line, 'text', 'missing or not a string', rec.text);
    answers.set(String(id), rec.text);
  }
  const items: ReviewItem[] = [];
  for (const { line, value } of await readRecords(questionFile)) {
    const rec = value as Record<string, unknown>;
    const str = (field: string, optional = false): string => {
      const v = rec?.[field];
      if (typeof v === 'string') return v;
      if (optional && v === undefined) return '';
      throw dataError(questionFile, line, field, 'missing or not a string', v);
    };
    const id = rec?.question_id;
    if (typeof id !== 'string' && typeof id !== 'number') throw dataError(questionFile, line, 'question_id', 'missing', id);
    const answer = answers.get(String(id));
    if (answer === undefined) throw dataError(answerFile, undefined, 'question_id', `no answer for question_id ${id} (${questionFile} line ${line})`, id);
    const domainObj = (rec.domain ?? {}) as Record<string, unknown>;
    const domain = DOMAINS.find((d) => domainObj[d]);
    items.push({ questionId: String(id), type: str('type'), ...(domain ? { domain } : {}), figLabel: str('fig_label', true), figCaption: str('fig_caption', true), figContext: typeof rec.in_text_mention === 'string' ? rec.in_text_mention : pyRepr(rec.in_text_mention ?? ''), question: str('text'), reference: str('gpt4_answer'), answer });
  }
  return items;
}
