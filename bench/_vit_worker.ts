// Child process of bench/vit.ts: trains the ViT of configs/vision/vit-fashion-mnist.yaml on real Fashion-MNIST
// batches (augmented as the recipe does) for a few iterations with lmforge and prints one JSON line: median ms/iter,
// images/s, median CPU ms/iter (user + system over all threads: the figure that load from other processes
// disturbs least) and peak RSS. Batch preparation is outside the timed region, as it is on the PyTorch side.
// Usage: node _vit_worker.js DATA_DIR ITERS SHAPE_JSON [THREADS] [fp32|bf16]   (bf16: matmuls in bf16 mixed precision)
import * as lm from '../src/core/index.js';
import { loadNativeBackend } from '../src/core/native/index.js';
import type { ViTConfig } from '../src/models/vit.js';
import { vitBench, vitStep } from './_vit_step.js';

const [dataDir, itersArg, shapeJSON, threadsArg, precision = 'fp32'] = process.argv.slice(2);
const iters = Number(itersArg);
const shape = JSON.parse(shapeJSON!) as Partial<ViTConfig> & { batch_size: number };
if (precision !== 'fp32' && precision !== 'bf16') throw new Error(`unknown precision ${precision} (fp32 or bf16)`);
loadNativeBackend();
if (threadsArg !== undefined) lm.setThreads(Number(threadsArg));
lm.setMatmulPrecision(precision);
const bench = vitBench(shape, shape.batch_size, dataDir!);
const B = shape.batch_size;
const times: number[] = [];
const cpuTimes: number[] = [];
let loss = 0;
for (let it = 0; it < iters + 2; it++) {
  const b = bench.batcher.next();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  loss = vitStep(bench, b, it);
  const c = process.cpuUsage(c0);
  if (it >= 2) {
    times.push(performance.now() - t0);
    cpuTimes.push((c.user + c.system) / 1000);
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = median(times);
console.log(JSON.stringify({ ms, tokensPerS: B / (ms / 1000), cpuMs: median(cpuTimes), peakRssMiB: process.resourceUsage().maxRSS / 1024, loss, precision }));
