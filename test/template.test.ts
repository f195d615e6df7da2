import t from 'tap';
import { MISTRAL_TOKENIZER, SHARED_DIR, needShared } from './helpers/shared';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeExample, renderConversation, tokenizeWithImage } from '../lib/model/template';
import { HscrTokenizer, buildCorpusTokenizer, corpusTokenizerConfig, corpusWords, loadTokenizer, type TokenizerJson } from '../lib/model/tokenizer';

const SHARED = SHARED_DIR;
const MISTRAL_DIR = path.join(SHARED, MISTRAL_TOKENIZER);
const NO_MISTRAL = needShared(MISTRAL_TOKENIZER);
const MISTRAL = { template: 'mistral_instruct', imageTokenIndex: -200 } as const;
const VICUNA = { template: 'vicuna_v1', imageTokenIndex: -200 } as const;
let mistralLoad: ReturnType<typeof loadTokenizer> | undefined;
/** Loaded once (1.9 MB of JSON), on first use: a clone without the shared data never reads it. */
const mistral = () => (mistralLoad ??= loadTokenizer(MISTRAL_DIR));

/**
 * LLaVA's Conversation.get_prompt() for SeparatorStyle.LLAMA_2 and TWO, transcribed step by step from
 * llava/conversation.py, with the user turn as LLaVA's preprocess_multimodal leaves it ("<image>\n" + question).
 */
function llavaGetPrompt(style: 'LLAMA_2' | 'TWO', system: string, sep: string, sep2: string, messages: Array<[string, string | null]>): string {
  if (style === 'LLAMA_2') {
    const wrapSys = (msg: string) => (msg.length > 0 ? `<<SYS>>\n${msg}\n<</SYS>>\n\n` : msg);
    const wrapInst = (msg: string) => `[INST] ${msg} [/INST]`;
    let ret = '';
    messages.forEach(([, message], i) => {
      if (message) {
        if (i === 0) message = wrapSys(system) + message;
        if (i % 2 === 0) ret += sep + wrapInst(message);
        else ret += ' ' + message + ' ' + sep2;
      }
    });
    while (sep !== '' && ret.startsWith(sep)) ret = ret.slice(sep.length); // str.lstrip(sep) for a one-character set
    return ret;
  }
  const seps = [sep, sep2];
  let ret = system + seps[0];
  messages.forEach(([role, message], i) => {
    if (message) ret += `${role}: ${message.trim()}${seps[i % 2] === sep2 ? `${sep2} ` : sep}`;
    else ret += `${role}:`;
  });
  return ret.trim();
}

const VICUNA_SYSTEM =
  "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";

interface QA {
  question: string;
  answer: string;
}

function sharedQuestions(): QA[] {
  const rad = JSON.parse(fs.readFileSync(path.join(SHARED, 'data/vqa-rad/testset.json'), 'utf8')) as Array<{ question: string; answer: string | number }>;
  const slake = JSON.parse(fs.readFileSync(path.join(SHARED, 'data/slake/test.json'), 'utf8')) as Array<{ question: string; answer: string; q_lang: string }>;
  const pvqa = JSON.parse(fs.readFileSync(path.join(SHARED, 'data/pathvqa/pvqa_test.json'), 'utf8')) as Array<{ sentf: { pvqa: string[] }; labelf: { pvqa: Array<Record<string, number>> } }>;
  return [
    ...rad.map((r) => ({ question: r.question, answer: String(r.answer) })),
    ...slake.filter((r) => r.q_lang === 'en').map((r) => ({ question: r.question, answer: r.answer })),
    ...pvqa.flatMap((r) => r.sentf.pvqa.map((question, i) => ({ question, answer: Object.keys(r.labelf.pvqa[i])[0] }))),
  ].filter((qa) => qa.answer.trim() !== '');
}

t.test('rendered text is what LLaVA\'s get_prompt writes', async (t) => {
  const q = 'Is there a mass in the left lung?';
  const user = `<image>\n${q}`;
  const mistral = renderConversation('mistral_instruct', { question: q, answer: 'yes' });
  t.equal(mistral.prompt, llavaGetPrompt('LLAMA_2', '', '', '</s>', [['USER', user], ['ASSISTANT', null]]));
  t.equal(mistral.full, llavaGetPrompt('LLAMA_2', '', '', '</s>', [['USER', user], ['ASSISTANT', 'yes']]));
  t.equal(mistral.full, '[INST] <image>\nIs there a mass in the left lung? [/INST] yes </s>');
  const vicuna = renderConversation('vicuna_v1', { question: q, answer: 'yes' });
  t.equal(vicuna.prompt, llavaGetPrompt('TWO', VICUNA_SYSTEM, ' ', '</s>', [['USER', user], ['ASSISTANT', null]]));
  t.equal(vicuna.full, llavaGetPrompt('TWO', VICUNA_SYSTEM, ' ', '</s>', [['USER', user], ['ASSISTANT', 'yes']]));
  t.equal(renderConversation('mistral_instruct', { question: q }).full, null);
  t.equal(renderConversation('mistral_instruct', { question: ` ${q} <image>` }).prompt, mistral.prompt, 'an <image> in the question moves to the front; the question is stripped');
  t.throws(() => renderConversation('mistral_instruct', { question: q, answer: '  ' }), { code: 'E_ARG' });
  t.throws(() => renderConversation('chatml' as never, { question: q }), { code: 'E_ARG', value: 'chatml' });
});

t.test('mistral_instruct with the real tokenizer: LLaVA-Med\'s prompt ids and answer ids', { skip: NO_MISTRAL }, async (t) => {
  const tk = await mistral();
  const { promptIds, answerIds } = encodeExample({ question: 'Is there a mass in the left lung?', answer: 'yes' }, tk, MISTRAL);
  // <s> ▁[ INST ] ▁ | <image> | ▁ <0x0A> Is ▁there ▁a ▁mass ▁in ▁the ▁left ▁lung ? ▁[ / INST ]
  t.same(promptIds, [1, 733, 16289, 28793, 28705, -200, 28705, 13, 2301, 736, 264, 3042, 297, 272, 1749, 14966, 28804, 733, 28748, 16289, 28793]);
  t.same(answerIds, [5081, 28705, 2], '▁yes ▁ </s>');
  t.same(encodeExample({ question: 'Is there a mass in the left lung?' }, tk, MISTRAL), { promptIds, answerIds: [] });
  const vicuna = encodeExample({ question: 'Is there a mass in the left lung?', answer: 'No' }, tk, { ...VICUNA, imageTokenIndex: 32000 });
  t.same(vicuna.answerIds, [1770, 2], '▁No </s>');
  t.equal(vicuna.promptIds.filter((id) => id === 32000).length, 1);
  const afterImage = tk.decode(vicuna.promptIds.slice(vicuna.promptIds.indexOf(32000) + 1));
  t.equal(afterImage, '\nIs there a mass in the left lung? ASSISTANT:', 'the chunk after <image> starts with ▁ (dropped by the decoder)');
  t.ok(tk.decode(vicuna.promptIds.slice(0, vicuna.promptIds.indexOf(32000))).startsWith('<s> A chat between'));
});

t.test('answer ids equal the tail of the whole conversation\'s tokens, for every shared VQA question', { skip: needShared(MISTRAL_TOKENIZER, 'data/vqa-rad/testset.json', 'data/slake/test.json', 'data/pathvqa/pvqa_test.json') }, async (t) => {
  const tk = await mistral();
  const examples = sharedQuestions();
  let bad = 0;
  for (const cfg of [MISTRAL, VICUNA]) {
    // every question with LLaVA-Med's template; a fifth of them with vicuna_v1 (keeps the file fast)
    for (const qa of cfg === MISTRAL ? examples : examples.filter((_, i) => i % 5 === 0)) {
      const { promptIds, answerIds } = encodeExample(qa, tk, cfg);
      const full = renderConversation(cfg.template, qa).full!;
      const whole = tokenizeWithImage(full, tk, cfg.imageTokenIndex);
      const ok =
        JSON.stringify([...promptIds, ...answerIds]) === JSON.stringify(whole) &&
        answerIds.at(-1) === tk.eosId &&
        tk.decode(answerIds, { skipSpecial: true }).trim() === qa.answer.trim() &&
        promptIds.filter((id) => id === -200).length === 1;
      if (!ok && bad++ < 5) t.fail(`${cfg.template}: ${JSON.stringify(qa)}`);
    }
  }
  t.equal(bad, 0, `${examples.length} questions, ${Math.ceil(examples.length / 5)} of them with both templates`);
  t.ok(examples.length > 1900);
});

t.test('tokenizeWithImage follows tokenizer_image_token: one BOS, chunks tokenised on their own', { skip: NO_MISTRAL }, async (t) => {
  const tk = await mistral();
  const chunk = (s: string) => tk.encode(s);
  t.same(tokenizeWithImage('a <image> b <image>', tk, 9), [1, ...chunk('a ').slice(1), 9, ...chunk(' b ').slice(1), 9]);
  t.same(tokenizeWithImage('<image>', tk, -200), [1, -200]);
  t.same(tokenizeWithImage('no image', tk, -200), chunk('no image'));
  const noBos = new HscrTokenizer(buildCorpusTokenizer(['a', 'b']), { ...corpusTokenizerConfig(), add_bos_token: false });
  t.same(noBos.encode('a'), [noBos.tokenId('▁a')], 'add_bos_token: false is honoured');
  t.same(tokenizeWithImage('a <image> b', noBos, 4), [...noBos.encode('a '), 4, ...noBos.encode(' b')], 'without BOS every chunk is kept whole');
});

t.test('the corpus tokenizer with the tiny preset\'s image token', async (t) => {
  const words = corpusWords('Is there a mass in the left lung? yes no');
  const tk = new HscrTokenizer(buildCorpusTokenizer(words), corpusTokenizerConfig());
  const { promptIds, answerIds } = encodeExample({ question: 'Is there a mass in the left lung?', answer: 'no' }, tk, { template: 'mistral_instruct', imageTokenIndex: tk.imageTokenId! });
  t.same(promptIds.map((id) => tk.tokenText(id)), ['<s>', '[INST]', '▁', '<image>', '▁', '\n', 'Is', '▁there', '▁a', '▁mass', '▁in', '▁the', '▁left', '▁lung', '?', '▁', '[/INST]']);
  t.same(answerIds.map((id) => tk.tokenText(id)), ['▁no', '▁', '</s>']);
});

t.test('a tokenizer that merges across the prompt/answer boundary is refused, not silently shifted', async (t) => {
  const chars = ['<unk>', '<s>', '</s>', '▁', '[', '/', 'I', 'N', 'S', 'T', ']', 'q', 'a', '<', '>', 'i', 'm', 'g', 'e', '\n', ']▁'];
  const json: TokenizerJson = {
    version: '1.0',
    added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    post_processor: null,
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    model: { type: 'BPE', vocab: Object.fromEntries(chars.map((c, i) => [c, i])), merges: ['] ▁'], unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false },
  };
  const tk = new HscrTokenizer(json, { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' });
  t.same(tk.encode('] a', { addBos: false }).map((id) => tk.tokenText(id)), ['▁', ']▁', 'a'], 'the merge exists');
  t.throws(() => encodeExample({ question: 'q', answer: 'a' }, tk, MISTRAL), { code: 'E_ARG' });
});
