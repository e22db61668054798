// CLIP training as a task of the loop: batches of augmented images, each with a caption drawn from the training
// templates (class name or synonym, class and image attributes), the symmetric InfoNCE loss; evaluation by zero-shot
// accuracy with the held-out prompt templates, and at the end zero-shot accuracy over the test split and a linear
// probe on the frozen image features. Also the evaluation functions `lmforge eval` reuses. Not the model (models/clip.ts).
import * as lm from '../../core/index.js';
import { trainCaption, zeroShotPrompts } from '../../data/captions.js';
import type { ImageSet, Normalization } from '../../data/images.js';
import type { CLIPModel } from '../../models/clip.js';
import type { LossOutput, StepContext, Task } from '../loop.js';
import { linearProbe } from '../linear-probe.js';
import { ImageBatcher, imageTensor, type ImageBatch, type ImageTaskOptions } from './classification.js';

export interface CaptionedBatch extends ImageBatch {
  captions: string[];
}

/** Zero-shot accuracy over images [0, limit): the class whose prompt-ensemble embedding is nearest (cosine). */
export function zeroShotAccuracy(model: CLIPModel, set: ImageSet, norm: Normalization, batchSize: number, limit = set.n): number {
  const n = Math.min(limit, set.n);
  let correct = 0;
  model.eval();
  lm.noGrad(() => lm.tidy(() => {
    const classifier = model.zeroShotClassifier(set.classNames.map((_, k) => zeroShotPrompts(k))); // (K, E)
    for (let s = 0; s < n; s += batchSize) {
      const e = Math.min(n, s + batchSize);
      lm.tidy(() => {
        const scores = lm.matmul(model.encodeImage(imageTensor(set, s, e, norm)), lm.transpose(classifier)); // (B, K)
        const pred = lm.argmax(scores, 1).data as Int32Array;
        for (let i = 0; i < e - s; i++) if (pred[i] === set.labels[s + i]) correct++;
      });
    }
  }));
  model.train();
  return correct / n;
}

/** The image tower's pooled features (before projection) of every image of a set, (N, C) row-major. */
export function imageFeatures(model: CLIPModel, set: ImageSet, norm: Normalization, batchSize: number): Float32Array {
  const C = model.visionConfig.n_embd;
  const out = new Float32Array(set.n * C);
  model.eval();
  lm.noGrad(() => {
    for (let s = 0; s < set.n; s += batchSize) {
      const e = Math.min(set.n, s + batchSize);
      lm.tidy(() => out.set(lm.contiguous(model.imageFeatures(imageTensor(set, s, e, norm))).toArray(), s * C));
    }
  });
  model.train();
  return out;
}

/** Linear-probe accuracy on the test split of logistic regression over the frozen training features. */
export function probeAccuracy(model: CLIPModel, train: ImageSet, test: ImageSet, norm: Normalization, batchSize: number): number {
  const C = model.visionConfig.n_embd;
  const r = linearProbe(imageFeatures(model, train, norm, batchSize), train.labels, imageFeatures(model, test, norm, batchSize), test.labels, C, train.classNames.length);
  return r.testAccuracy;
}

export class ClipTask implements Task<CaptionedBatch> {
  readonly itemsPerBatch: number;
  readonly flopsPerItem = 0;
  private batcher: ImageBatcher;

  constructor(readonly model: CLIPModel, private readonly train: ImageSet, private readonly val: ImageSet, private readonly test: ImageSet, private readonly o: ImageTaskOptions) {
    this.batcher = new ImageBatcher(train, o.batchSize, o.norm, o.aug, o.seed);
    this.itemsPerBatch = o.batchSize;
  }

  nextBatch(): CaptionedBatch {
    const b = this.batcher.next();
    const captions = Array.from(b.indices, (i) => trainCaption(this.train, i, () => this.batcher.uniform()));
    return { ...b, captions };
  }

  loss(batch: CaptionedBatch, ctx: StepContext): LossOutput {
    const { height: H, width: W, channels: C } = this.train;
    const B = batch.labels.length;
    const out = this.model.forward(lm.fromArray(batch.pixels, [B, C, H, W]), batch.captions, ctx.seed);
    return { loss: out.loss, metrics: { logit_scale: out.scale } };
  }

  evaluate(_step: number): Record<string, number> {
    if (this.val.n === 0) return {};
    return { val_zero_shot: zeroShotAccuracy(this.model, this.val, this.o.norm, this.o.evalBatchSize, this.o.evalImages), logit_scale: this.model.scale().item(), epoch: this.batcher.epoch };
  }

  finalEvaluate(step: number, log: (line: string) => void): Record<string, number> {
    const zs = zeroShotAccuracy(this.model, this.test, this.o.norm, this.o.evalBatchSize);
    log(`step ${step}: zero-shot test accuracy ${zs.toFixed(4)} (${this.test.n} images, held-out prompt templates)`);
    const probe = probeAccuracy(this.model, this.train, this.test, this.o.norm, this.o.evalBatchSize);
    log(`step ${step}: linear probe test accuracy ${probe.toFixed(4)} (logistic regression on frozen image features of ${this.train.n} training images)`);
    return { test_zero_shot: zs, test_linear_probe: probe };
  }

  state(): Record<string, unknown> {
    return this.batcher.state();
  }

  loadState(state: Record<string, unknown>, source: string): void {
    this.batcher.loadState(state, source);
  }
}
