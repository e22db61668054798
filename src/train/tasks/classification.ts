// Image classification as a task of the training loop: seeded epoch-order batches of augmented, normalised images,
// cross-entropy of a ViT's class-token logits, evaluation on fixed validation batches, and at the end the accuracy over
// the whole test split. Also the batch helpers that the CLIP and caption tasks share. Not the model (models/vit.ts).
import * as lm from '../../core/index.js';
import { Rng, type RngState, type Tensor } from '../../core/index.js';
import { EpochSampler, fillBatch, NO_AUGMENTATION, type Augmentation, type ImageSet, type Normalization } from '../../data/images.js';
import type { ViTForImageClassification } from '../../models/vit.js';
import { UserError } from '../../util/errors.js';
import type { LossOutput, StepContext, Task } from '../loop.js';

export interface ImageBatch {
  /** (B, C, H, W) normalised pixels. */
  pixels: Float32Array;
  /** Which records of the training set (for tasks that look up more than the label, e.g. captions). */
  indices: Int32Array;
  labels: Int32Array;
}

/** Seeded, resumable batches of augmented images: the sampler's order and the augmentation share one generator. */
export class ImageBatcher {
  private rng: Rng;
  private sampler: EpochSampler;

  constructor(readonly set: ImageSet, readonly batchSize: number, readonly norm: Normalization, readonly aug: Augmentation, seed: number) {
    this.rng = new Rng(seed);
    this.sampler = new EpochSampler(set.n, this.rng);
  }

  get epoch(): number {
    return this.sampler.epoch;
  }

  /** A uniform draw from the batcher's generator (saved with its state): tasks draw their per-image text from it. */
  uniform(): number {
    return this.rng.uniform();
  }

  next(): ImageBatch {
    const indices = this.sampler.next(this.batchSize);
    const { height: H, width: W, channels: C } = this.set;
    const pixels = new Float32Array(this.batchSize * C * H * W);
    fillBatch(this.set, indices, this.norm, this.aug, this.rng, pixels);
    const labels = new Int32Array(this.batchSize);
    for (let b = 0; b < this.batchSize; b++) labels[b] = this.set.labels[indices[b]!]!;
    return { pixels, indices, labels };
  }

  state(): Record<string, unknown> {
    return { rng: this.rng.state(), sampler: this.sampler.state() };
  }

  loadState(state: Record<string, unknown>, source: string): void {
    const rng = state.rng;
    const s = state.sampler as { epoch?: unknown; pos?: unknown; order?: unknown } | undefined;
    if (!Array.isArray(rng) || rng.length !== 4 || !s || typeof s.epoch !== 'number' || typeof s.pos !== 'number' || !Array.isArray(s.order) || s.order.length !== this.set.n) {
      throw new UserError(`${source}: task state has no image sampler (rng, sampler.epoch/pos/order over ${this.set.n} images)`);
    }
    this.rng = new Rng(rng as RngState);
    this.sampler = new EpochSampler(this.set.n, this.rng, { epoch: s.epoch, pos: s.pos, order: s.order as number[] });
  }
}

/** Images [start, end) of a set as a (B, C, H, W) tensor, without augmentation. */
export function imageTensor(set: ImageSet, start: number, end: number, norm: Normalization): Tensor {
  const { height: H, width: W, channels: C } = set;
  const B = end - start;
  const pixels = new Float32Array(B * C * H * W);
  fillBatch(set, Int32Array.from({ length: B }, (_, i) => start + i), norm, NO_AUGMENTATION, null, pixels);
  return lm.fromArray(pixels, [B, C, H, W]);
}

/** Accuracy and mean loss of a classifier over records [0, limit) of a set, batchSize at a time, in eval mode. */
export function classifierAccuracy(model: ViTForImageClassification, set: ImageSet, norm: Normalization, batchSize: number, limit = set.n): { accuracy: number; loss: number } {
  let correct = 0, total = 0;
  const n = Math.min(limit, set.n);
  model.eval();
  lm.noGrad(() => {
    for (let s = 0; s < n; s += batchSize) {
      const e = Math.min(n, s + batchSize);
      lm.tidy(() => {
        const { logits, loss } = model.forward(imageTensor(set, s, e, norm), lm.fromArray(set.labels.slice(s, e), [e - s]));
        total += loss!.item() * (e - s);
        const pred = lm.argmax(logits, 1).data as Int32Array;
        for (let i = 0; i < e - s; i++) if (pred[i] === set.labels[s + i]) correct++;
      });
    }
  });
  model.train();
  return { accuracy: correct / n, loss: total / n };
}

/** What every image task (classification, CLIP, captioning) is built with. */
export interface ImageTaskOptions {
  batchSize: number;
  evalBatchSize: number;
  /** Validation images per evaluation during training (the whole test split is measured at the end). */
  evalImages: number;
  seed: number;
  norm: Normalization;
  aug: Augmentation;
}

export class ClassificationTask implements Task<ImageBatch> {
  readonly itemsPerBatch: number;
  readonly flopsPerItem: number;
  private batcher: ImageBatcher;

  constructor(readonly model: ViTForImageClassification, private readonly train: ImageSet, private readonly val: ImageSet, private readonly test: ImageSet, private readonly o: ImageTaskOptions) {
    this.batcher = new ImageBatcher(train, o.batchSize, o.norm, o.aug, o.seed);
    this.itemsPerBatch = o.batchSize;
    this.flopsPerItem = model.flopsPerImage();
  }

  nextBatch(): ImageBatch {
    return this.batcher.next();
  }

  loss(batch: ImageBatch, ctx: StepContext): LossOutput {
    const { height: H, width: W, channels: C } = this.train;
    const B = batch.labels.length;
    const out = this.model.forward(lm.fromArray(batch.pixels, [B, C, H, W]), lm.fromArray(batch.labels, [B]), ctx.seed);
    const pred = lm.argmax(out.logits, 1).data as Int32Array;
    let correct = 0;
    for (let b = 0; b < B; b++) if (pred[b] === batch.labels[b]) correct++;
    return { loss: out.loss!, metrics: { train_accuracy: correct / B } };
  }

  evaluate(_step: number): Record<string, number> {
    if (this.val.n === 0) return {};
    const r = classifierAccuracy(this.model, this.val, this.o.norm, this.o.evalBatchSize, this.o.evalImages);
    return { val_loss: r.loss, val_accuracy: r.accuracy, epoch: this.batcher.epoch };
  }

  finalEvaluate(step: number, log: (line: string) => void): Record<string, number> {
    const r = classifierAccuracy(this.model, this.test, this.o.norm, this.o.evalBatchSize);
    log(`step ${step}: test accuracy ${r.accuracy.toFixed(4)} (${this.test.n} images), test loss ${r.loss.toFixed(4)}`);
    return { test_accuracy: r.accuracy, test_loss: r.loss };
  }

  state(): Record<string, unknown> {
    return this.batcher.state();
  }

  loadState(state: Record<string, unknown>, source: string): void {
    this.batcher.loadState(state, source);
  }
}
