import t from 'tap';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { loadReviewItems, reviewMessages, runGptReview, parseReviewScores, summarizeReviews, chatComplete, REVIEW_SYSTEM } from '../lib/eval';

const fx = (f: string) => path.resolve(__dirname, 'fixtures/review', f);

interface Seen {
  auth?: string;
  body: { model: string; temperature: number; messages: { role: string; content: string }[] };
}

/**
 * A judge that speaks the chat-completions API: the reference gets 8; the model 8 when its answer equals the
 * reference, else 4; "UNSCORABLE" answers get a reply without scores. The first request is refused with 429.
 */
async function judge(t: Tap.Test): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  let requests = 0;
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      if (req.url !== '/v1/chat/completions' || req.method !== 'POST') return void res.writeHead(404).end();
      if (requests++ === 0) return void res.writeHead(429, { 'content-type': 'application/json' }).end('{"error": "slow down"}');
      const body = JSON.parse(raw);
      seen.push({ auth: req.headers.authorization, body });
      const user: string = body.messages[1].content;
      const a1 = /\[Assistant 1\]\n([\s\S]*?)\n\n\[End of Assistant 1\]/.exec(user)![1];
      const a2 = /\[Assistant 2\]\n([\s\S]*?)\n\n\[End of Assistant 2\]/.exec(user)![1];
      const content = a2 === 'UNSCORABLE' ? 'I cannot rate this.' : `8 ${a1 === a2 ? 8 : 4}\nAssistant 2 ${a1 === a2 ? 'matches' : 'contradicts'} the caption.`;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content } }] }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, seen };
}

t.test("LLaVA-Med's prompt, verbatim", async (t) => {
  const items = await loadReviewItems(fx('questions.jsonl'), fx('answers.jsonl'));
  t.same(items.map((i) => [i.questionId, i.type, i.domain, i.answer]), [
    ['0', 'conversation', 'histology', 'The organ is the conjunctiva.'],
    ['1', 'detailed_description', 'chest_xray', 'A chest X-ray with a right pleural effusion.'],
    ['2', 'conversation', 'chest_xray', 'The left side.'],
    ['3', 'conversation', 'mri', 'UNSCORABLE'],
  ]);
  const [system, user] = reviewMessages(items[0]);
  t.same(system, { role: 'system', content: REVIEW_SYSTEM });
  const expected =
    '[Context]\nFigure Caption:\nFig. 3: Cystic wall lined by cuboidal epithelium. (H & E stain, \u00d7100)\n\n' +
    "Figure Context:\n\t- [{'tokens': 'Inflammatory cells were not found ( Fig. 3 ) .', 'entities': [{'type': 'figure', 'entity_id': '3', 'start_tok': 5, 'end_tok': 7}]}]\n\n" +
    '[Question]\nWhat is the organ in the image?\n<image>\n\n' +
    '[Assistant 1]\nThe organ is the conjunctiva.\n\n[End of Assistant 1]\n\n' +
    '[Assistant 2]\nThe organ is the conjunctiva.\n\n[End of Assistant 2]\n\n[System]\nWe would like to request your feedback';
  t.equal(user.content.slice(0, expected.length), expected);
  t.match(user.content, /The two scores are separated by a space\. In the subsequent line/);
});

t.test('scores parsed from the first line only', async (t) => {
  t.same(parseReviewScores('8 7\nbecause'), [8, 7]);
  t.same(parseReviewScores('  9.5, 6 \n'), [9.5, 6]);
  t.same(parseReviewScores('8/10 6/10'), [8, 6]);
  t.equal(parseReviewScores('Assistant 1: 8\nAssistant 2: 7'), null);
  t.equal(parseReviewScores('8 7 6'), null);
});

t.test('review through a local chat-completions server', async (t) => {
  const { url, seen } = await judge(t);
  const items = await loadReviewItems(fx('questions.jsonl'), fx('answers.jsonl'));
  const { rows, summary } = await runGptReview(items, { endpoint: { url, apiKey: 'sk-test', model: 'gpt-4-0314', retryBaseMs: 1 }, concurrency: 1 });
  t.equal(seen.length, 4, 'the refused request was retried');
  t.equal(seen[0].auth, 'Bearer sk-test');
  t.equal(seen[0].body.model, 'gpt-4-0314');
  t.equal(seen[0].body.temperature, 0);
  t.same(rows.map((r) => r.scores), [[8, 8], [8, 8], [8, 4], null]);
  t.same(summary.unscored, ['3']);
  // By hand: conversation rows (8,8) and (8,4): model 6, relative mean(1, 0.5) = 75 %; the description 100 %;
  // chest_xray holds (8,8) and (8,4) too; overall mean(1, 1, 0.5) = 83.33 %.
  t.same(summary.categories.conversation, { n: 2, referenceScore: 8, modelScore: 6, relativeScore: 75 });
  t.same(summary.categories.detailed_description, { n: 1, referenceScore: 8, modelScore: 8, relativeScore: 100 });
  t.equal(summary.categories.chest_xray.relativeScore, 75);
  t.equal(summary.categories.histology.n, 1);
  t.ok(Math.abs(summary.categories.overall.relativeScore - 250 / 3) < 1e-9);
});

t.test('HTTP errors: 4xx fails at once, 5xx after the retries', async (t) => {
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits++;
    res.writeHead(req.headers.authorization ? 503 : 401).end('{"error": "no"}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const msgs = [{ role: 'user' as const, content: 'hi' }];
  await t.rejects(chatComplete({ url, model: 'm', retryBaseMs: 1 }, msgs), { code: 'E_IO', message: /HTTP 401/ });
  t.equal(hits, 1);
  await t.rejects(chatComplete({ url, model: 'm', apiKey: 'k', maxRetries: 2, retryBaseMs: 1 }, msgs), { code: 'E_IO', message: /after 3 tries/ });
  t.equal(hits, 4);
  t.same(summarizeReviews([]), { categories: {}, unscored: [] });
});
