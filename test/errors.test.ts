import t from 'tap';
import { HscrError, dataError } from '../lib/errors';

t.test('dataError names file, line and field', async (t) => {
  const e = dataError('a.jsonl', 3, 'answer', 'missing');
  t.ok(e instanceof HscrError);
  t.equal(e.code, 'E_DATA');
  t.match(e.message, /a\.jsonl, line 3, field "answer": missing/);
});
