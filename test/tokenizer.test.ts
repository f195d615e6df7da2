import t from 'tap';
import { MISTRAL_TOKENIZER, SHARED_DIR, needShared } from './helpers/shared';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CORPUS_SPECIAL_TOKENS,
  HscrTokenizer,
  buildCorpusTokenizer,
  corpusSpecialTokensMap,
  corpusTokenizerConfig,
  corpusWords,
  loadTokenizer,
} from '../lib/model/tokenizer';

const SHARED = SHARED_DIR;
const MISTRAL_DIR = path.join(SHARED, MISTRAL_TOKENIZER);
const NO_MISTRAL = needShared(MISTRAL_TOKENIZER);

interface VqaRadRecord {
  question: string;
  answer: string | number;
}
const vqaRad = (name: string) =>
  (JSON.parse(fs.readFileSync(path.join(SHARED, 'data/vqa-rad', name), 'utf8')) as VqaRadRecord[]).flatMap((r) => [r.question, String(r.answer)]);

t.test('Mistral-7B tokenizer: the ids verified in the shared README', { skip: NO_MISTRAL }, async (t) => {
  const tk = await loadTokenizer(MISTRAL_DIR);
  t.equal(tk.vocabSize, 32000);
  t.same([tk.unkId, tk.bosId, tk.eosId], [0, 1, 2]);
  t.equal(tk.padId, 0, 'no pad token: pads with unk, as LLaVA does');
  t.equal(tk.imageTokenId, null);
  t.same(tk.encode('Is there a mass in the left lung?'), [1, 1691, 736, 264, 3042, 297, 272, 1749, 14966, 28804]);
  t.same(tk.encode('What modality is used to take this image?'), [1, 1824, 968, 2045, 349, 1307, 298, 1388, 456, 3469, 28804]);
  t.same(tk.encode('domesticated', { addBos: false }), [2853, 374, 6899]);
  const pieces: Array<[number, string]> = [
    [272, '▁the'], [1691, '▁Is'], [5081, '▁yes'], [708, '▁no'], [5592, '▁Yes'], [1770, '▁No'], [14966, '▁lung'], [28804, '?'], [28705, '▁'], [13, '<0x0A>'],
  ];
  for (const [id, text] of pieces) {
    t.equal(tk.tokenText(id), text);
    t.equal(tk.tokenId(text), id);
  }
  t.ok(tk.isSpecial(2) && !tk.isSpecial(5081));
});

t.test('Mistral-7B tokenizer: decode inverts encode (byte fallback included)', { skip: NO_MISTRAL }, async (t) => {
  const tk = await loadTokenizer(MISTRAL_DIR);
  const ids = tk.encode('Is there a mass in the left lung?');
  t.equal(tk.decode(ids), '<s> Is there a mass in the left lung?');
  t.equal(tk.decode(ids, { skipSpecial: true }), 'Is there a mass in the left lung?');
  t.equal(tk.decode([...ids, 2], { skipSpecial: true }), 'Is there a mass in the left lung?');
  t.equal(tk.decode([]), '');
  const unusual = 'naïve café: 5 µm ✓ 肺';
  const encoded = tk.encode(unusual, { addBos: false });
  t.ok(encoded.some((id) => id >= 3 && id <= 258), 'some characters go through byte tokens');
  t.equal(tk.decode(encoded), unusual);
  for (const text of vqaRad('testset.json').slice(0, 200)) {
    const back = tk.decode(tk.encode(text), { skipSpecial: true });
    if (back !== text.replace(/^ /, '')) t.fail(`${JSON.stringify(text)} came back as ${JSON.stringify(back)}`);
  }
});

t.test('bad arguments are E_ARG with the value', { skip: NO_MISTRAL }, async (t) => {
  const tk = await loadTokenizer(MISTRAL_DIR);
  t.throws(() => tk.decode([32000]), { code: 'E_ARG', value: 32000 });
  t.throws(() => tk.decode([1.5]), { code: 'E_ARG', value: 1.5 });
  t.throws(() => tk.tokenText(-1), { code: 'E_ARG', value: -1 });
  t.throws(() => tk.encode(5 as never), { code: 'E_ARG', value: 5 });
  await t.rejects(loadTokenizer(path.join(SHARED, 'no-such-folder')), { code: 'E_IO' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-tok-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"model":');
  await t.rejects(loadTokenizer(dir), { code: 'E_CONFIG' });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(buildCorpusTokenizer(['a'])));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ ...corpusTokenizerConfig(), bos_token: '<bos>' }));
  await t.rejects(loadTokenizer(dir), { code: 'E_CONFIG', value: '<bos>' }, 'a special token missing from the vocabulary');
});

t.test('corpus tokenizer: special ids, one token per word, loads from files', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-tok-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const words = corpusWords('Is there a mass in the left lung?\nNo, the x-ray is  normal.');
  t.same(words, ['Is', 'there', 'a', 'mass', 'in', 'the', 'left', 'lung?', 'No,', 'the', 'x-ray', 'is', 'normal.']);
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(buildCorpusTokenizer(words)));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(corpusTokenizerConfig()));
  fs.writeFileSync(path.join(dir, 'special_tokens_map.json'), JSON.stringify(corpusSpecialTokensMap()));
  const tk = await loadTokenizer(dir);
  t.same(CORPUS_SPECIAL_TOKENS.map((s) => tk.tokenId(s)), [0, 1, 2, 3, 4, 5, 6]);
  t.same([tk.unkId, tk.bosId, tk.eosId, tk.padId, tk.imageTokenId], [0, 1, 2, 3, 4]);
  const ids = tk.encode('Is there a mass in the left lung?');
  t.same(ids.map((id) => tk.tokenText(id)), ['<s>', '▁Is', '▁there', '▁a', '▁mass', '▁in', '▁the', '▁left', '▁lung', '?']);
  t.same(tk.encode('[INST] <image>\nthe x-ray [/INST]', { addBos: false }).map((id) => tk.tokenText(id)), ['[INST]', '▁', '<image>', '\n', 'the', '▁x', '-', 'ray', '▁', '[/INST]']);
  t.same(tk.encode('the spleen', { addBos: false }), [tk.tokenId('▁the'), 0], 'an unseen word is <unk>');
  t.equal(tk.decode(tk.encode('No, the x-ray is  normal.')), '<s> No, the x-ray is  normal.');
  // as transformers: specials are dropped before decoding, so the first word loses its start marker
  t.equal(tk.decode(tk.encode('[INST] the lung [/INST] No </s>'), { skipSpecial: true }), 'the lung  No ');
});

t.test('corpus tokenizer round trip on all of VQA-RAD built from its own words', { skip: needShared('data/vqa-rad/trainset.json', 'data/vqa-rad/testset.json') }, async (t) => {
  const texts = [...vqaRad('trainset.json'), ...vqaRad('testset.json')];
  const tk = new HscrTokenizer(buildCorpusTokenizer(texts.flatMap(corpusWords)), corpusTokenizerConfig());
  let failures = 0;
  for (const text of texts) {
    const ids = tk.encode(text, { addBos: false });
    const back = tk.decode(ids);
    // the one whitespace rule: a single leading space is the start marker and does not come back
    if (back !== text.replace(/^ /, '') || ids.includes(tk.unkId)) {
      if (failures++ < 5) t.fail(`${JSON.stringify(text)} → ${JSON.stringify(back)}`);
    }
  }
  t.equal(failures, 0, `${texts.length} texts`);
  t.ok(tk.vocabSize > 1000 && tk.vocabSize < 6000, `vocabulary ${tk.vocabSize}`);
});

t.test('corpus tokenizer: maxVocab keeps the most frequent pieces; bad input is E_ARG', async (t) => {
  const words = [...Array(5).fill('lung'), ...Array(3).fill('heart'), 'spleen'];
  const full = new HscrTokenizer(buildCorpusTokenizer(words), corpusTokenizerConfig());
  const fixed = 7 + 3 + 32; // specials, ▁ \n \t, printable ASCII punctuation
  t.equal(full.vocabSize, fixed + 6, '3 words × (▁word, word)');
  const ids = (word: string) => [full.tokenId(word)!, full.tokenId(`▁${word}`)!];
  t.ok(Math.max(...ids('lung')) < Math.min(...ids('heart')) && Math.max(...ids('heart')) < Math.min(...ids('spleen')), 'by frequency');
  const capped = new HscrTokenizer(buildCorpusTokenizer(words, { maxVocab: fixed + 4 }), corpusTokenizerConfig());
  t.equal(capped.vocabSize, fixed + 4);
  t.ok(capped.tokenId('▁lung') !== undefined && capped.tokenId('heart') !== undefined);
  t.equal(capped.tokenId('▁spleen'), undefined, 'the rarest word is cut');
  t.throws(() => buildCorpusTokenizer(words, { maxVocab: 10 }), { code: 'E_ARG', value: 10 });
  t.throws(() => buildCorpusTokenizer([3 as never]), { code: 'E_ARG', value: 3 });
  t.same(buildCorpusTokenizer(['b', 'a', 'b']), buildCorpusTokenizer(['b', 'a', 'b']), 'deterministic');
});
