// One rank of the model-parallel parity runs (model-parallel.test.ts and bench/distributed.ts launch it under
// mpirun): builds the single-process model and the parallel one from the same seed, and prints one line
// `MP {json}` with their largest differences in logits, loss and gradients at step 0 and over a training run's
// losses (AdamW with clipping on both sides), and the bytes this rank sent per training step beside the figure
// the layout's formula predicts. Usage: mp-child.js all|MODE[,MODE…] STEPS (modes tp, tp-variant, pp-gpipe, pp-1f1b, ep) [DATA_DIR|-] [small|deep|recipe].
// Without DATA_DIR, batches are random tokens. Test and benchmark scaffolding only.
import { join } from 'node:path';
import * as lm from '../../../src/core/index.js';
import { Rng, type Tensor } from '../../../src/core/index.js';
import { useNativeBackendOrWarn } from '../../../src/core/native/index.js';
import { GPT, type GPTConfig } from '../../../src/models/gpt.js';
import { clipGradNorm } from '../../../src/optim/clip.js';
import { makeOptimizer, optimSpec } from '../../../src/optim/config.js';
import type { Optimizer } from '../../../src/optim/optimizer.js';
import { clipGradNormParallel, type HeldParam, type ModelComm } from '../../../src/train/distributed/collectives.js';
import { initDistributed } from '../../../src/train/distributed/comm.js';
import { ExpertParallelGPT, expertParallelBytesPerStep } from '../../../src/train/distributed/expert-parallel.js';
import { PipelineParallelGPT, pipelineBytesPerStep, type PipeSchedule } from '../../../src/train/distributed/pipeline.js';
import { TensorParallelGPT, shardOf, tensorParallelBytesPerStep } from '../../../src/train/distributed/tensor-parallel.js';
import { BatchSampler, openTokenFile } from '../../../src/train/token-reader.js';
import { defaultsOf } from '../../../src/util/config.js';

const [mode, stepsS, dataDir, shape] = process.argv.slice(2) as [string, string?, string?, string?];
const comm: ModelComm = initDistributed();
const steps = Number(stepsS ?? 3);
// The native kernels, as `lmforge train` uses them: without this call every matmul ran on the reference (pure
// JavaScript) backend, ~75% of the child's time and 50-step runs of tens of minutes on shared cores.
useNativeBackendOrWarn();
lm.setThreads(1);

// The CPU recipe's shape (configs/shakespeare-char-cpu.yaml, vocabulary padded to 66 so it splits in two), or a
// small one for the tests (2 layers; 'deep': 4, for pipelines of 3 and 4 stages).
const recipe = shape === 'recipe';
// 'tp-variant' checks the other block options under TP: RoPE, RMSNorm, SwiGLU, no biases.
const variant: Partial<GPTConfig> = { position: 'rope', norm: 'rmsnorm', mlp: 'swiglu', mlp_hidden: 64, bias: false };
const V = recipe ? 66 : 64;
const cfg: Partial<GPTConfig> = recipe
  ? { vocab_size: V, block_size: 64, n_layer: 4, n_head: 4, n_embd: 128, dropout: 0, bias: false }
  : { vocab_size: V, block_size: 16, n_layer: shape === 'deep' ? 4 : 2, n_head: 4, n_embd: 32, dropout: 0 };
const moeCfg: Partial<GPTConfig> = { ...cfg, moe_experts: 4, moe_top_k: 2, moe_capacity_factor: 0, moe_second_policy: 'all' };
const B = recipe ? 12 : 4;
const T = cfg.block_size!;
const C = cfg.n_embd!;
const sampler = dataDir && dataDir !== '-' ? new BatchSampler(openTokenFile(join(dataDir, 'train.bin')), B, T, 1337) : null;
const rng = new Rng(100);
const batches = Array.from({ length: Math.max(steps, 1) }, () => {
  if (sampler) {
    const { x, y } = sampler.next();
    return { x: lm.keep(lm.fromArray(x, [B, T])), y: lm.keep(lm.fromArray(y, [B, T])) };
  }
  const ids = Array.from({ length: B * (T + 1) }, () => rng.int(V));
  const x = ids.filter((_, i) => i % (T + 1) !== T);
  const y = ids.filter((_, i) => i % (T + 1) !== 0);
  return { x: lm.keep(lm.tensor(x, [B, T], 'int32')), y: lm.keep(lm.tensor(y, [B, T], 'int32')) };
});

const maxDiff = (a: Tensor, b: Tensor): number => {
  const x = a.toTypedArray();
  const y = b.toTypedArray();
  if (x.length !== y.length) throw new Error(`shape mismatch ${a.describe()} vs ${b.describe()}`);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
};

/** The recipe's AdamW (decay on matrices), as lmforge train makes it. */
const optimizer = (params: [string, Tensor][]): Optimizer => makeOptimizer(params, { ...defaultsOf(optimSpec), lr: 1e-3, weight_decay: 0.1, beta2: 0.99 });
const CLIP = 1.0;

interface Figures { logits: number; loss: number; grad: number; curve: number; first: number; last: number; bytes_per_step: number; bytes_theory: number }

/** Trains both sides for `steps` steps from the same weights; returns the largest loss difference and the bytes per step. */
function curve(refStep: (x: Tensor, y: Tensor) => number, parStep: (x: Tensor, y: Tensor) => number, ref: Optimizer, par: Optimizer, held: HeldParam[], out: Figures): void {
  ref.zeroGrad();
  par.zeroGrad();
  const b0 = comm.bytesSent();
  for (const { x, y } of batches.slice(0, steps)) {
    const a = refStep(x, y);
    const b = parStep(x, y);
    out.curve = Math.max(out.curve, Math.abs(a - b));
    if (out.first === 0) out.first = b;
    out.last = b;
    ref.step(clipGradNorm(ref.params, CLIP).scale);
    par.step(clipGradNormParallel(held, CLIP, 1, comm).scale);
    ref.zeroGrad();
    par.zeroGrad();
  }
  out.bytes_per_step = (comm.bytesSent() - b0) / Math.max(steps, 1);
}

const blank = (): Figures => ({ logits: 0, loss: 0, grad: 0, curve: 0, first: 0, last: 0, bytes_per_step: 0, bytes_theory: 0 });
const refLoss = (ref: GPT) => (x: Tensor, y: Tensor): number => lm.tidy(() => {
  const o = ref.forward(x, y);
  lm.backward(Object.values(o.aux).reduce((a, t) => lm.add(a, t), o.loss!));
  return o.loss!.item();
});

function tp(extra: Partial<GPTConfig> = {}): Figures {
  const ref = new GPT({ ...cfg, ...extra }, 7);
  const model = new GPT({ ...cfg, ...extra }, 7);
  const par = new TensorParallelGPT(model, comm);
  const { x, y } = batches[0]!;
  const out = blank();
  lm.tidy(() => {
    const r = ref.forward(x, y);
    lm.backward(r.loss!);
    out.logits = maxDiff(par.logits(x), lm.slice(r.logits, 2, par.v0, par.v1));
    const l = par.loss(x, y).loss;
    out.loss = Math.abs(l.item() - r.loss!.item());
    lm.backward(l);
  });
  const full = new Map(ref.namedParameters());
  for (const [name, p] of model.namedParameters()) out.grad = Math.max(out.grad, maxDiff(p.grad!, shardOf(name, full.get(name)!.grad!, model.config, comm)));
  const split = (n: string): boolean => shardOf(n, full.get(n)!, model.config, comm) !== full.get(n);
  const held = model.namedParameters().map(([n, p]) => ({ param: p, copies: split(n) ? 1 : comm.size }));
  const parStep = (bx: Tensor, by: Tensor): number => lm.tidy(() => {
    const l = par.loss(bx, by).loss;
    lm.backward(l);
    return l.item();
  });
  curve(refLoss(ref), parStep, optimizer(ref.namedParameters()), optimizer(model.namedParameters()), held, out);
  out.bytes_theory = tensorParallelBytesPerStep({ nLayer: cfg.n_layer!, B, T, C, size: comm.size });
  return out;
}

function pp(schedule: PipeSchedule): Figures {
  const ref = new GPT(cfg, 7);
  const model = new GPT(cfg, 7);
  const par = new PipelineParallelGPT(model, comm, { microBatches: recipe ? 4 : 2, schedule });
  const { x, y } = batches[0]!;
  const out = blank();
  lm.tidy(() => {
    const r = ref.forward(x, y);
    lm.backward(r.loss!);
    const e = par.evaluate(x, y);
    if (e.logits) out.logits = maxDiff(e.logits, r.logits);
    e.logits?.dispose();
    out.loss = Math.abs(par.step(x, y).loss - r.loss!.item());
  });
  const full = new Map(ref.namedParameters());
  for (const [name, p] of par.module.namedParameters()) out.grad = Math.max(out.grad, maxDiff(p.grad!, full.get(name)!.grad!));
  curve(refLoss(ref), (bx, by) => par.step(bx, by).loss, optimizer(ref.namedParameters()), optimizer(par.module.namedParameters()), par.held(), out);
  out.bytes_theory = pipelineBytesPerStep({ p: comm.size, s: comm.rank, B, T, C, V, tied: true });
  return out;
}

function ep(): Figures {
  const ref = new GPT(moeCfg, 7);
  const model = new GPT(moeCfg, 7);
  const par = new ExpertParallelGPT(model, comm);
  const Bl = B / comm.size;
  const mine = (t: Tensor): Tensor => lm.contiguous(lm.slice(t, 0, comm.rank * Bl, (comm.rank + 1) * Bl));
  par.setSlice(Bl * T);
  const mean = (v: number): number => {
    const b = new Float32Array([v / comm.size]);
    comm.allReduce(b, 'sum');
    return b[0]!;
  };
  const total = (o: { loss?: Tensor; aux: Record<string, Tensor> }): Tensor => Object.values(o.aux).reduce((a, t) => lm.add(a, t), o.loss!);
  const { x, y } = batches[0]!;
  const out = blank();
  lm.tidy(() => {
    const r = ref.forward(x, y);
    lm.backward(total(r));
    const o = model.forward(mine(x), mine(y));
    out.logits = maxDiff(o.logits, mine(r.logits));
    out.loss = Math.max(Math.abs(mean(o.loss!.item()) - r.loss!.item()), Math.abs(mean(o.aux.moe_balance!.item()) - r.aux.moe_balance!.item()));
    lm.backward(total(o));
  });
  par.syncGradients();
  const full = new Map(ref.namedParameters());
  const expertSlice = (name: string, g: Tensor): Tensor => (/\.experts\./.test(name) ? lm.slice(g, 0, par.layers[0]!.e0, par.layers[0]!.e1) : g);
  for (const [name, p] of model.namedParameters()) out.grad = Math.max(out.grad, maxDiff(p.grad!, expertSlice(name, full.get(name)!.grad!)));
  const parStep = (bx: Tensor, by: Tensor): number => {
    const l = lm.tidy(() => {
      const o = model.forward(mine(bx), mine(by));
      lm.backward(total(o));
      return o.loss!.item();
    });
    par.syncGradients();
    return mean(l);
  };
  const held = par.held();
  curve(refLoss(ref), parStep, optimizer(ref.namedParameters()), optimizer(model.namedParameters()), held, out);
  const replicated = held.filter((h) => h.copies > 1).reduce((n, h) => n + h.param.size, 0);
  out.bytes_theory = expertParallelBytesPerStep({ moeLayers: cfg.n_layer!, E: 4, N: Bl * T, k: 2, C, p: comm.size, replicated });
  return out;
}

const runs: Record<string, () => Figures> = { tp: () => tp(), 'tp-variant': () => tp(variant), 'pp-gpipe': () => pp('gpipe'), 'pp-1f1b': () => pp('1f1b'), ep };
// 'all': the four layouts the bench reports; otherwise a comma-separated list of modes.
const modes = mode === 'all' ? ['tp', 'pp-gpipe', 'pp-1f1b', 'ep'] : mode.split(',');
for (const m of modes) {
  const run = runs[m];
  if (!run) throw new Error(`mp-child: unknown mode ${m} (tp, tp-variant, pp-gpipe, pp-1f1b, ep or all)`);
  console.log(`MP ${JSON.stringify({ rank: comm.rank, size: comm.size, mode: m, ...run() })}`);
}
