/**
 * A model folder small enough for training tests on a 2-core CPU (16 visual tokens, 2+2 layers, the
 * phantom corpus tokenizer) and phantom data to train it on, plus ranked preference lists built from the
 * phantom answers (y_w the truth, y_l other answers of the same question family).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { generatePhantom, phantomCorpus, familyAnswers, type FamilyName } from '../../lib/data/phantom';
import type { VqaRecord } from '../../lib/data/types';
import { writeModelConfig, type ModelConfig } from '../../lib/model/config';
import { clipPreprocessing, writePreprocessing } from '../../lib/model/image';
import { writeInitFiles } from '../../lib/model/init-files';
import { VisionLanguageModel } from '../../lib/model/vlm';

export async function makeTinyModelDir(dir: string, seed = 1, layout: 'llava-hf' | 'llava-med' = 'llava-hf'): Promise<ModelConfig> {
  const base = await writeInitFiles(dir, { preset: 'tiny', corpusWords: phantomCorpus().words, overwrite: true, layout });
  const cfg: ModelConfig = {
    ...base,
    vision: { ...base.vision, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, imageSize: 32, patchSize: 8 },
    text: { ...base.text, hiddenSize: 64, intermediateSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16 },
  };
  writeModelConfig(dir, cfg, layout);
  writePreprocessing(dir, clipPreprocessing(32, 'pad'));
  const model = await VisionLanguageModel.create(cfg, { seed });
  await model.save(dir, layout);
  model.dispose();
  return cfg;
}

/** Phantom records (32 px images) written under dir; returns the train split's JSONL path and records. */
export async function makePhantomData(dir: string, n: number, seed = 5): Promise<{ file: string; records: VqaRecord[] }> {
  const result = await generatePhantom({ outDir: dir, train: n, test: 0, seed, size: 32 });
  return { file: path.join(dir, 'train.jsonl'), records: result.train };
}

/**
 * ranked.jsonl from phantom records: every record whose family has ≥ 2 other answers gets up to `j`
 * rejected answers (other answers of its family), with made-up decreasing similarities.
 */
export function writeRankedFromPhantom(file: string, records: VqaRecord[], j = 3): number {
  const lines: string[] = [];
  for (const r of records) {
    const others = familyAnswers(r.family as FamilyName).filter((a) => a !== r.answer);
    if (others.length === 0 || r.family === 'description') continue;
    const rejected = others.slice(0, j).map((text, i) => ({ text, replacements: [], similarity: 0.9 - 0.2 * i }));
    lines.push(JSON.stringify({ id: r.id, image: r.image, question: r.question, chosen: r.answer, rejected }));
  }
  fs.writeFileSync(file, lines.map((l) => `${l}\n`).join(''));
  return lines.length;
}
