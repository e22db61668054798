// The ViT training setup and step that bench/_vit_worker.ts times and bench/_vit_profile.ts breaks down by kernel:
// the recipe's model and AdamW, real Fashion-MNIST batches augmented as the recipe does.
import * as lm from '../src/core/index.js';
import { channelStats, readIdxSplit } from '../src/data/images.js';
import { VIT_DEFAULTS, ViTForImageClassification, type ViTConfig } from '../src/models/vit.js';
import { clipGradNorm } from '../src/optim/clip.js';
import { makeOptimizer, optimSpec } from '../src/optim/config.js';
import type { Optimizer } from '../src/optim/optimizer.js';
import { ImageBatcher } from '../src/train/tasks/classification.js';
import { defaultsOf } from '../src/util/config.js';

export interface VitBench {
  model: ViTForImageClassification;
  opt: Optimizer;
  batcher: ImageBatcher;
  batchSize: number;
}

export function vitBench(shape: Partial<ViTConfig>, batchSize: number, dataDir: string): VitBench {
  const config: ViTConfig = { ...VIT_DEFAULTS, ...shape };
  const model = new ViTForImageClassification(config, 1);
  const opt = makeOptimizer(model.namedTrainableParameters(), { ...defaultsOf(optimSpec), lr: 1e-3, beta2: 0.99, weight_decay: 0.05 });
  const train = readIdxSplit(dataDir, 'train');
  const batcher = new ImageBatcher(train, batchSize, channelStats(train), { cropPadding: 2, flip: false }, 1);
  return { model, opt, batcher, batchSize };
}

/** One training step on a prepared batch (forward, backward, clip at 1, AdamW); returns the loss. */
export function vitStep(v: VitBench, b: { pixels: Float32Array; labels: Int32Array }, it: number): number {
  const B = v.batchSize;
  const loss = lm.tidy(() => {
    const out = v.model.forward(lm.fromArray(b.pixels, [B, 1, 28, 28]), lm.fromArray(b.labels, [B]), it);
    lm.backward(out.loss!);
    return out.loss!.item();
  });
  v.opt.setLearningRate(1e-3);
  v.opt.step(clipGradNorm(v.opt.params, 1).scale);
  v.opt.zeroGrad();
  return loss;
}
