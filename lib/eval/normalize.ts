/**
 * LLaVA-Med's answer normalisation (llava/eval/eval_metrics/glossary.py, itself from the VQA v2 eval) and
 * its word-count helpers (utils.py split_sentence, evaluate_metrics.py), ported rule for rule — quirks
 * included, because the published numbers were computed with them:
 * - a punctuation mark next to a space is deleted, otherwise replaced by a space; but if the text holds a
 *   digit,digit group anywhere, every listed mark is deleted;
 * - a '.' not followed by a digit is deleted, but only the first 32 of them (Python's
 *   `period_strip.sub("", s, re.UNICODE)` passes re.UNICODE = 32 as the *count*);
 * - number words zero–ten and "none" become digits; a, an, the are dropped; a word list of contractions
 *   gets its apostrophe back ("dont" → "don't"); the mixed-case keys (Im, Ive, …) can never match because
 *   the text is lower-cased first;
 * - words are split the way Python's str.split() splits (its whitespace set, not JavaScript's \s).
 */

const CONTRACTIONS = new Map<string, string>(
  Object.entries({
    aint: "ain't", arent: "aren't", cant: "can't", couldve: "could've", couldnt: "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", didnt: "didn't", doesnt: "doesn't", dont: "don't",
    hadnt: "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", hasnt: "hasn't", havent: "haven't",
    hed: "he'd", "hed've": "he'd've", "he'dve": "he'd've", hes: "he's", howd: "how'd", howll: "how'll",
    hows: "how's", "Id've": "I'd've", "I'dve": "I'd've", Im: "I'm", Ive: "I've", isnt: "isn't", itd: "it'd",
    "itd've": "it'd've", "it'dve": "it'd've", itll: "it'll", "let's": "let's", maam: "ma'am", mightnt: "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", mightve: "might've", mustnt: "mustn't",
    mustve: "must've", neednt: "needn't", notve: "not've", oclock: "o'clock", oughtnt: "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", shant: "shan't", "shed've": "she'd've",
    "she'dve": "she'd've", "she's": "she's", shouldve: "should've", shouldnt: "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": 'somebodyd',
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", somebodyll: "somebody'll",
    somebodys: "somebody's", someoned: "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    someonell: "someone'll", someones: "someone's", somethingd: "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", somethingll: "something'll", thats: "that's", thered: "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", therere: "there're", theres: "there's", theyd: "they'd",
    "theyd've": "they'd've", "they'dve": "they'd've", theyll: "they'll", theyre: "they're", theyve: "they've",
    twas: "'twas", wasnt: "wasn't", "wed've": "we'd've", "we'dve": "we'd've", weve: "we've", werent: "weren't",
    whatll: "what'll", whatre: "what're", whats: "what's", whatve: "what've", whens: "when's", whered: "where'd",
    wheres: "where's", whereve: "where've", whod: "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    wholl: "who'll", whos: "who's", whove: "who've", whyll: "why'll", whyre: "why're", whys: "why's",
    wont: "won't", wouldve: "would've", wouldnt: "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", yall: "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", youd: "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", youll: "you'll", youre: "you're", youve: "you've",
  }),
);

const NUMBER_WORDS = new Map<string, string>(
  Object.entries({ none: '0', zero: '0', one: '1', two: '2', three: '3', four: '4', five: '5', six: '6', seven: '7', eight: '8', nine: '9', ten: '10' }),
);
const ARTICLES = new Set(['a', 'an', 'the']);
const PUNCT = [';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!'];
/** Python 3's \d is any Unicode decimal digit. */
const DIGIT_COMMA_DIGIT = /\p{Nd},\p{Nd}/u;
/** The original's lookahead `(?!<=\d)` is a typo for a lookbehind and never fires; kept for fidelity. */
const PERIOD = /(?!<=\p{Nd})\.(?!\p{Nd})/gu;
/** Python's `re.sub(..., count)` with count = re.UNICODE = 32. */
const PERIOD_LIMIT = 32;
/** The characters Python's str.split() splits on. */
const PY_WHITESPACE = /[\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/** Python's str.split() with no argument. */
export function pySplit(text: string): string[] {
  return text.split(PY_WHITESPACE).filter((w) => w !== '');
}

function stripPunctuation(text: string): string {
  const digitGroup = DIGIT_COMMA_DIGIT.test(text);
  let out = text;
  for (const p of PUNCT) {
    const glued = text.includes(p + ' ') || text.includes(' ' + p) || digitGroup;
    out = out.split(p).join(glued ? '' : ' ');
  }
  return out;
}

function stripPeriods(text: string): string {
  let n = 0;
  return text.replace(PERIOD, (m) => (n++ < PERIOD_LIMIT ? '' : m));
}

/** glossary.normalize_word. It lower-cases only after punctuation; callers lower-case first, as LLaVA-Med does. */
export function normalizeWord(text: string): string {
  const words: string[] = [];
  for (const raw of pySplit(stripPeriods(stripPunctuation(text)).toLowerCase())) {
    const word = NUMBER_WORDS.get(raw) ?? raw;
    if (!ARTICLES.has(word)) words.push(CONTRACTIONS.get(word) ?? word);
  }
  return words.join(' ').split(',').join('');
}

/** utils.split_sentence(s, 1): lower-cased words with their counts. */
export function wordCounts(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const w of pySplit(text.toLowerCase())) counts.set(w, (counts.get(w) ?? 0) + 1);
  return counts;
}

export interface F1 {
  f1: number;
  precision: number;
  recall: number;
}

/**
 * evaluate_metrics.calculate_f1score. Both sides are normalised (again, when the caller already did).
 * The quirk the field's open-question "recall" carries: a true-positive word counts as often as it occurs
 * in the *prediction*, so "left left" against "left lung" has recall 2/3, not 1/2.
 */
export function llavaF1(candidate: string, reference: string): F1 {
  const cand = wordCounts(normalizeWord(candidate));
  const ref = wordCounts(normalizeWord(reference));
  if (cand.size === 0 || ref.size === 0) return { f1: 0, precision: 0, recall: 0 };
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (const [w, c] of cand) {
    if (ref.has(w)) tp += c;
    else fp += c;
  }
  for (const [w, c] of ref) if (!cand.has(w)) fn += c;
  if (tp === 0) return { f1: 0, precision: 0, recall: 0 };
  const precision = tp / (tp + fp);
  const recall = tp / (tp + fn);
  return { f1: (2 * precision * recall) / (precision + recall), precision, recall };
}

/**
 * evaluate_metrics.calculate_exactmatch, which despite its name is the number of distinct reference words
 * found in the prediction over the prediction's word count.
 */
export function llavaExactMatch(candidate: string, reference: string): number {
  const cand = wordCounts(normalizeWord(candidate));
  const ref = wordCounts(normalizeWord(reference));
  let found = 0;
  for (const w of ref.keys()) if (cand.has(w)) found++;
  let total = 0;
  for (const c of cand.values()) total += c;
  return total === 0 ? 0 : found / total;
}

/** Textbook multiset token overlap (SQuAD-style), for the strict variant. */
export function tokenF1(candidate: string[], reference: string[]): F1 {
  const ref = new Map<string, number>();
  for (const w of reference) ref.set(w, (ref.get(w) ?? 0) + 1);
  let common = 0;
  for (const w of candidate) {
    const left = ref.get(w) ?? 0;
    if (left > 0) {
      common++;
      ref.set(w, left - 1);
    }
  }
  if (common === 0) return { f1: 0, precision: 0, recall: 0 };
  const precision = common / candidate.length;
  const recall = common / reference.length;
  return { f1: (2 * precision * recall) / (precision + recall), precision, recall };
}
