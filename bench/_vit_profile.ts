// Where a ViT training step's time goes, by native kernel (a development aid beside bench vit): wraps every kernel of the
// native table with a timer and runs the bench's ViT steps. Usage: node dist/bench/_vit_profile.js [steps] [threads]
import * as lm from '../src/core/index.js';
import { loadNativeBackend, nativeKernels } from '../src/core/native/index.js';
import { channelStats, readIdxSplit } from '../src/data/images.js';
import { VIT_DEFAULTS, ViTForImageClassification, type ViTConfig } from '../src/models/vit.js';
import { clipGradNorm } from '../src/optim/clip.js';
import { makeOptimizer, optimSpec } from '../src/optim/config.js';
import { ImageBatcher } from '../src/train/tasks/classification.js';
import { defaultsOf } from '../src/util/config.js';

const steps = Number(process.argv[2] ?? 10);
loadNativeBackend();
lm.setThreads(Number(process.argv[3] ?? 1));
const shape = { image_size: 28, patch_size: 7, n_layer: 4, n_head: 4, n_embd: 96, stem: 'conv' as const, stem_channels: 32 };
const B = 128;
const config: ViTConfig = { ...VIT_DEFAULTS, ...shape };
const model = new ViTForImageClassification(config, 1);
const opt = makeOptimizer(model.namedTrainableParameters(), { ...defaultsOf(optimSpec), lr: 1e-3, beta2: 0.99, weight_decay: 0.05 });
const train = readIdxSplit('/work/shared/data/fashion-mnist', 'train');
const batcher = new ImageBatcher(train, B, channelStats(train), { cropPadding: 2, flip: false }, 1);
const acc = new Map<string, { ms: number; n: number }>();
let timing = false;
const kernels = nativeKernels as unknown as Record<string, (...a: unknown[]) => unknown>;
for (const [name, fn] of Object.entries(kernels)) {
  kernels[name] = (...a: unknown[]): unknown => {
    const t0 = performance.now();
    const r = fn(...a);
    if (timing) {
      let key = name;
      if (name === 'matmul') {
        const m = a[0] as { batch: number; M: number; N: number; K: number; transA: boolean; transB: boolean; accumulate: boolean };
        key += ` b${m.batch} M${m.M} N${m.N} K${m.K} ${m.transA ? 'T' : 'N'}${m.transB ? 'T' : 'N'}${m.accumulate ? ' +=' : ''}`;
      } else if (name === 'binary') {
        key += ` ${String(a[0])} [${(a[4] as number[]).join(', ')}]`;
      } else if (name === 'unary' || name === 'unaryBackward') {
        key += ` ${String(a[0])} n=${String(name === 'unary' ? a[3] : a[5])}`;
      }
      const e = acc.get(key) ?? { ms: 0, n: 0 };
      e.ms += performance.now() - t0;
      e.n++;
      acc.set(key, e);
    }
    return r;
  };
}
let total = 0;
for (let it = 0; it < steps + 2; it++) {
  timing = it >= 2;
  const b = batcher.next();
  const t0 = performance.now();
  lm.tidy(() => {
    const out = model.forward(lm.fromArray(b.pixels, [B, 1, 28, 28]), lm.fromArray(b.labels, [B]), it);
    lm.backward(out.loss!);
    return out.loss!.item();
  });
  opt.setLearningRate(1e-3);
  opt.step(clipGradNorm(opt.params, 1).scale);
  opt.zeroGrad();
  if (timing) total += performance.now() - t0;
}
const rows = [...acc].sort((a, b) => b[1].ms - a[1].ms);
const inK = rows.reduce((s, [, e]) => s + e.ms, 0);
console.log(`${(total / steps).toFixed(1)} ms/step, kernels ${(inK / steps).toFixed(1)} ms, outside kernels ${((total - inK) / steps).toFixed(1)} ms`);
for (const [k, e] of rows) if (e.ms / steps > 0.3) console.log(`${(e.ms / steps).toFixed(2).padStart(7)} ms ${(e.n / steps).toFixed(0).padStart(4)}×  ${k}`);
