// Child process of bench/gpt.ts: trains one case for a few iterations with lmforge and prints one JSON line
// (median ms/iter, tokens/s, peak RSS). A separate process so that peak memory is this case's alone.
// Usage: node _gpt_worker.js CASE [ITERS] [fp32|bf16]   (bf16: matmuls in bf16 mixed precision)
import * as lm from '../src/core/index.js';
import { loadAddon } from '../src/core/native/addon.js';
import { bf16GemmKernel } from '../src/core/native/gemm.js';
import { loadNativeBackend } from '../src/core/native/index.js';
import { GPT } from '../src/models/gpt.js';
import { clipGradNorm } from '../src/optim/clip.js';
import { makeOptimizer } from '../src/optim/config.js';
import { defaultsOf } from '../src/util/config.js';
import { optimSpec } from '../src/optim/config.js';
import { GPT_CASES } from './_gpt_cases.js';

const name = process.argv[2];
const c = GPT_CASES.find((x) => x.name === name);
if (!c) throw new Error(`unknown case ${name}`);
const iters = Number(process.argv[3] ?? c.iters);
const precision = process.argv[4] ?? 'fp32';
if (precision !== 'fp32' && precision !== 'bf16') throw new Error(`unknown precision ${precision} (fp32 or bf16)`);
loadNativeBackend();
lm.setMatmulPrecision(precision);
const model = new GPT({ vocab_size: c.vocab_size, block_size: c.block_size, n_layer: c.n_layer, n_head: c.n_head, n_embd: c.n_embd, dropout: c.dropout, bias: true });
// The optimizer and clipping exactly as `lmforge train` builds them (AdamW, decay on matrices, clip at 1).
const opt = makeOptimizer(model.namedTrainableParameters(), { ...defaultsOf(optimSpec), lr: 1e-3, beta1: 0.9, beta2: 0.99, weight_decay: 0.1 });
const rng = new lm.Rng(1);
const B = c.batch_size;
const T = c.block_size;
const times: number[] = [];
let loss = 0;
for (let it = 0; it < iters + 2; it++) {
  const x = new Int32Array(B * T);
  const y = new Int32Array(B * T);
  for (let i = 0; i < B * T; i++) {
    x[i] = rng.int(c.vocab_size);
    y[i] = rng.int(c.vocab_size);
  }
  const t0 = performance.now();
  loss = lm.tidy(() => {
    const out = model.forward(lm.fromArray(x, [B, T]), lm.fromArray(y, [B, T]), { seed: it });
    lm.backward(out.loss!);
    return out.loss!.item();
  });
  opt.setLearningRate(1e-3);
  opt.step(clipGradNorm(opt.params, 1).scale);
  opt.zeroGrad();
  if (it >= 2) times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
const ms = times[Math.floor(times.length / 2)]!;
// soloSpells: how often the thread policy went to one thread (native/src/threads.h), 0 on a quiet machine.
console.log(JSON.stringify({ ms, tokensPerS: (B * T) / (ms / 1000), peakRssMiB: process.resourceUsage().maxRSS / 1024, loss, soloSpells: loadAddon().cpuInfo().soloSpells, precision, kernel: precision === 'bf16' ? bf16GemmKernel() : 'fp32' }));
