/** Reading prediction files: hscr's predictions.jsonl and LLaVA-Med-style answer files. */
import { dataError } from '../errors';
import { readRecords } from '../data/loaders';

/**
 * id → predicted text. The id is `id`, else `question_id`; the text is `prediction` (hscr), else `text`
 * (LLaVA-Med's answer files). A repeated id is E_DATA: pairing by id must be unambiguous.
 */
export async function loadPredictions(file: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const firstLine = new Map<string, number>();
  for (const { line, value } of await readRecords(file)) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw dataError(file, line, undefined, 'not a JSON object', value);
    const rec = value as Record<string, unknown>;
    const idField = rec.id !== undefined ? 'id' : 'question_id';
    const id = rec[idField];
    if (!(typeof id === 'string' && id !== '') && !(typeof id === 'number' && Number.isInteger(id))) throw dataError(file, line, idField, 'missing or not a string/integer id', id);
    if (rec.prediction === undefined && rec.text === undefined) {
      throw dataError(file, line, 'prediction', 'missing (hscr predictions carry "prediction", LLaVA-Med answer files "text"; this record has neither)', Object.keys(rec).slice(0, 8));
    }
    const textField = rec.prediction !== undefined ? 'prediction' : 'text';
    const text = rec[textField];
    if (typeof text !== 'string') throw dataError(file, line, textField, `must be a string, got ${text === null ? 'null' : typeof text}`, text);
    const key = String(id);
    if (out.has(key)) throw dataError(file, line, idField, `id "${key}" already on line ${firstLine.get(key)}`, key);
    out.set(key, text);
    firstLine.set(key, line);
  }
  return out;
}
