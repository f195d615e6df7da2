/**
 * The paper's Figure 4 on the phantom instruction test split: for each answer, log p(correct answer) −
 * log p(the same answer with one attribute swapped) under a model, summed over the answer's tokens. A model
 * that reads the image puts the correct answer above its one-attribute swap (gap > 0); its distribution per
 * modality, before (SFT) and after preference training, shows whether alignment widened the gap.
 * The swap of each record is fixed by the record's id (swap.ts), so every model is measured on the same pairs.
 */
import { HscrError } from '../errors';
import type { VqaRecord } from '../data/types';
import { Rng } from '../data/prng';
import { batchOf, disposeBundle, loadModelBundle } from '../model/bundle';
import type { VisionLanguageModel } from '../model/vlm';
import { attributeSwaps } from './swap';
import { percentile } from './bootstrap';

export interface GapItem {
  id: string;
  modality: string;
  swapped: string;
  gap: number;
}

export interface GapSummary {
  n: number;
  mean: number;
  median: number;
  q25: number;
  q75: number;
  /** Share of items with gap > 0 (the correct answer is the likelier one). */
  positive: number;
}

/** Stable per-id seed for the swap. */
function idSeed(id: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(id, 'utf8')) h = Math.imul(h ^ byte, 0x01000193);
  return h >>> 0;
}

/** The swap of each record (records without a scene, or with nothing to swap, are left out). */
export function figure4Pairs(records: VqaRecord[]): { record: VqaRecord; swapped: string }[] {
  return records.flatMap((r) => {
    if (!r.scene) return [];
    const s = attributeSwaps(r.answer, r.scene, new Rng(idSeed(r.id)), 1)[0];
    return s ? [{ record: r, swapped: s.text }] : [];
  });
}

export interface Figure4Options {
  adapterDir?: string;
  loadAdapter?: (model: VisionLanguageModel, adapterDir: string) => Promise<void>;
  batchSize?: number;
}

/** log p(correct) − log p(swapped) per record, under the model (with its adapter). */
export async function figure4Gaps(modelDir: string, records: VqaRecord[], o: Figure4Options = {}): Promise<GapItem[]> {
  const pairs = figure4Pairs(records);
  const bundle = await loadModelBundle(modelDir);
  try {
    if (o.adapterDir) {
      if (!o.loadAdapter) throw new HscrError('figure4Gaps: an adapter needs loadAdapter', 'E_ARG', o.adapterDir);
      await o.loadAdapter(bundle.model, o.adapterDir);
    }
    const size = o.batchSize ?? 16;
    const out: GapItem[] = [];
    for (let i = 0; i < pairs.length; i += size) {
      const chunk = pairs.slice(i, i + size);
      const rows = chunk.flatMap(({ record, swapped }) => [record, { ...record, answer: swapped }]);
      const batch = await batchOf(bundle, rows);
      try {
        const r = await bundle.model.logprobs(batch, { perturb: 'none' });
        chunk.forEach(({ record, swapped }, k) => out.push({ id: record.id, modality: record.scene?.modality ?? 'unknown', swapped, gap: r.sums[2 * k] - r.sums[2 * k + 1] }));
      } finally {
        batch.pixels.dispose();
      }
    }
    return out;
  } finally {
    disposeBundle(bundle);
  }
}

export function summarizeGaps(gaps: number[]): GapSummary {
  const s = [...gaps].sort((a, b) => a - b);
  return {
    n: s.length,
    mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length),
    median: percentile(s, 0.5),
    q25: percentile(s, 0.25),
    q75: percentile(s, 0.75),
    positive: s.filter((g) => g > 0).length / Math.max(1, s.length),
  };
}

/** Per modality and overall. */
export function gapsByModality(items: GapItem[]): Record<string, GapSummary> {
  const groups = new Map<string, number[]>();
  for (const it of items) {
    if (!groups.has(it.modality)) groups.set(it.modality, []);
    groups.get(it.modality)!.push(it.gap);
  }
  const out: Record<string, GapSummary> = {};
  for (const [m, g] of [...groups].sort(([a], [b]) => a.localeCompare(b))) out[m] = summarizeGaps(g);
  out.overall = summarizeGaps(items.map((i) => i.gap));
  return out;
}
