// The image tasks of `lmforge eval`: accuracy of a ViT classifier, zero-shot (held-out prompt templates) and
// linear-probe accuracy of a CLIP model, caption and answer accuracy of an image-conditioned decoder, each on the test
// split of an IDX directory (or image folder) with the normalisation saved with the model. Here beside the tasks whose
// evaluation functions it reuses, because the eval layer does not read image data or train probes (DESIGN.md's layers).
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DECODER_KINDS } from '../data/captions.js';
import { readIdxSplit, readImageFolder, subset, type ImageSet } from '../data/images.js';
import { imageModelType, loadCLIP, loadDecoder } from '../models/clip-io.js';
import { loadViT } from '../models/vit-io.js';
import { UserError } from '../util/errors.js';
import { answerAccuracy } from './tasks/caption.js';
import { classifierAccuracy } from './tasks/classification.js';
import { probeAccuracy, zeroShotAccuracy } from './tasks/clip.js';

export const IMAGE_TASKS = ['image-accuracy', 'zero-shot', 'linear-probe', 'caption', 'vqa'] as const;
export type ImageTask = (typeof IMAGE_TASKS)[number];

export function isImageTask(name: string): name is ImageTask {
  return (IMAGE_TASKS as readonly string[]).includes(name);
}

export interface ImageEvalResult {
  task: ImageTask;
  metrics: Record<string, number>;
  n: number;
  seconds: number;
}

function readSplit(dir: string, split: 'train' | 'test', classNames: string[]): ImageSet {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`--data ${dir}: not a directory (an MNIST-style IDX directory or an image folder with train/ and test/)`);
  return existsSync(join(dir, split)) ? readImageFolder(join(dir, split)) : readIdxSplit(dir, split, classNames);
}

/** Scores one image task of the model in `modelDir` on the test images of `dataDir` (the first `limit` of them). */
export function evaluateImageTask(task: ImageTask, modelDir: string, dataDir: string, options: { limit?: number; batchSize?: number; trainImages?: number } = {}): ImageEvalResult {
  const started = performance.now();
  const type = imageModelType(modelDir);
  const want: Record<ImageTask, string> = { 'image-accuracy': 'vit', 'zero-shot': 'lmforge-clip', 'linear-probe': 'lmforge-clip', caption: 'lmforge-caption', vqa: 'lmforge-caption' };
  if (type !== want[task]) throw new UserError(`--tasks ${task}: needs a ${want[task]} model directory (config.json model_type), but ${modelDir} holds ${type ?? 'no image model'}`);
  const bs = options.batchSize ?? 500;
  const done = (metrics: Record<string, number>, n: number): ImageEvalResult => ({ task, metrics, n, seconds: (performance.now() - started) / 1000 });
  const cut = (s: ImageSet): ImageSet => (options.limit !== undefined && options.limit < s.n ? subset(s, 0, options.limit) : s);
  if (type === 'vit') {
    const { model, classNames, normalization: norm } = loadViT(modelDir);
    try {
      const test = cut(readSplit(dataDir, 'test', classNames));
      const r = classifierAccuracy(model, test, norm, bs);
      return done({ accuracy: r.accuracy, loss: r.loss }, test.n);
    } finally {
      model.dispose();
    }
  }
  if (type === 'lmforge-clip') {
    const { model, config } = loadCLIP(modelDir);
    try {
      const test = cut(readSplit(dataDir, 'test', config.class_names));
      if (task === 'zero-shot') return done({ zero_shot_accuracy: zeroShotAccuracy(model, test, config.normalization, bs) }, test.n);
      const all = readSplit(dataDir, 'train', config.class_names);
      const train = subset(all, 0, Math.min(all.n, options.trainImages ?? all.n));
      return done({ linear_probe_accuracy: probeAccuracy(model, train, test, config.normalization, bs) }, test.n);
    } finally {
      model.dispose();
    }
  }
  const { model, config } = loadDecoder(modelDir);
  try {
    const test = cut(readSplit(dataDir, 'test', config.class_names));
    const kinds = task === 'caption' ? [0] : DECODER_KINDS.map((_, k) => k).slice(1);
    const metrics: Record<string, number> = {};
    for (const k of kinds) metrics[`${DECODER_KINDS[k]}_accuracy`] = answerAccuracy(model, test, config.normalization, k, bs).accuracy;
    return done(metrics, test.n);
  } finally {
    model.dispose();
  }
}
