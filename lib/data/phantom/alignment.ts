/**
 * Vision-alignment captions: one record per distinct training scan, "describe the image." → the scene's full
 * short description (describeScene: scan kind, region, lesion count, size, shape and place). They feed the
 * tiny model's pretraining stage (lib/train/ablate.ts, PHANTOM_RECIPE_DEFAULTS.pretrain), the role LLaVA's
 * stage-1 caption alignment and its pretrained CLIP play: a model trained from random weights on VQA +
 * instruction data alone learns the scan's global look but not its lesions (docs/RESULTS-recipe.md §5),
 * because a VQA item asks one attribute and instruction answers lean on text; a caption per scan asks
 * every lesion attribute of every scan, and only the pixels can answer it.
 *
 * The question is an existing template, so the tokenizer's vocabulary (built from everything the phantom
 * benchmark can say) does not change. Only training splits are ever captioned here.
 */
import type { VqaRecord } from '../types';
import { HscrError } from '../../errors';
import { describeScene } from './scene';

export const ALIGNMENT_QUESTION = 'describe the image.';
export const ALIGNMENT_FAMILY = 'alignment';

/** One caption record per distinct image of `records` (first occurrence kept, in order). */
export function alignmentRecords(records: readonly VqaRecord[]): VqaRecord[] {
  const seen = new Set<string>();
  const out: VqaRecord[] = [];
  for (const r of records) {
    if (seen.has(r.image)) continue;
    if (!r.scene) throw new HscrError(`alignment captions need phantom records with a scene; ${r.id} has none`, 'E_DATA', r.id);
    seen.add(r.image);
    out.push({
      id: `align-${r.id}`,
      image: r.image,
      question: ALIGNMENT_QUESTION,
      answer: describeScene(r.scene),
      answer_type: 'open',
      dataset: 'phantom',
      modality: r.scene.modality,
      family: ALIGNMENT_FAMILY,
      scene: r.scene,
    });
  }
  return out;
}
