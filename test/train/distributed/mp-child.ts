// One rank of the model-parallel parity runs (model-parallel.test.ts and bench/distributed.ts launch it under
// mpirun): builds the single-process model and the parallel one from the same seed, and prints one line
// `MP {json}` of their largest differences in logits, loss, gradients and a training run's losses, with the bytes
// this rank sent per step. Test scaffolding only.
import * as lm from '../../../src/core/index.js';
import { Rng, type Tensor } from '../../../src/core/index.js';
import { GPT, type GPTConfig } from '../../../src/models/gpt.js';
import { AdamW } from '../../../src/optim/adamw.js';
import { clipGradNorm } from '../../../src/optim/clip.js';
import { clipGradNormParallel, type ModelComm } from '../../../src/train/distributed/collectives.js';
import { ExpertParallelGPT } from '../../../src/train/distributed/expert-parallel.js';
import { PipelineParallelGPT, type PipeSchedule } from '../../../src/train/distributed/pipeline.js';
import { TensorParallelGPT, shardOf } from '../../../src/train/distributed/tensor-parallel.js';
import { initDistributed } from '../../../src/train/distributed/comm.js';

const [mode, stepsS] = process.argv.slice(2) as [string, string?];
const comm: ModelComm = initDistributed();
const steps = Number(stepsS ?? 3);
lm.setThreads(1);

const cfg: Partial<GPTConfig> = { vocab_size: 64, block_size: 16, n_layer: 2, n_head: 4, n_embd: 32, dropout: 0 };
const B = 4;
const T = 16;
const batches = Array.from({ length: steps }, (_, s) => {
  const rng = new Rng(100 + s);
  const ids = Array.from({ length: B * (T + 1) }, () => rng.int(64));
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

function tp(): Record<string, number> {
  const ref = new GPT(cfg, 7);
  const model = new GPT(cfg, 7);
  const par = new TensorParallelGPT(model, comm);
  const { x, y } = batches[0]!;
  const out = { logits: 0, loss: 0, grad: 0, curve: 0, first: 0, last: 0 };
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
  // A short AdamW run with clipping on both sides, from the same weights.
  const optRef = new AdamW([{ params: ref.namedParameters(), options: {} }], { lr: 3e-3 });
  const opt = new AdamW([{ params: model.namedParameters(), options: {} }], { lr: 3e-3 });
  const held = model.namedParameters().map(([n, p]) => ({ param: p, copies: isSplit(n) ? 1 : comm.size }));
  optRef.zeroGrad();
  opt.zeroGrad();
  for (const { x: bx, y: by } of batches) {
    const a = lm.tidy(() => { const l = ref.forward(bx, by).loss!; lm.backward(l); return l.item(); });
    const b = lm.tidy(() => { const l = par.loss(bx, by).loss; lm.backward(l); return l.item(); });
    out.curve = Math.max(out.curve, Math.abs(a - b));
    if (out.first === 0) out.first = b;
    out.last = b;
    optRef.step(clipGradNorm(optRef.params, 0.05).scale);
    opt.step(clipGradNormParallel(held, 0.05, 1, comm).scale);
    optRef.zeroGrad();
    opt.zeroGrad();
  }
  return out;
}

function pp(schedule: PipeSchedule): Record<string, number> {
  const ref = new GPT(cfg, 7);
  const model = new GPT(cfg, 7);
  const par = new PipelineParallelGPT(model, comm, { microBatches: 2, schedule });
  const { x, y } = batches[0]!;
  const out = { logits: 0, loss: 0, grad: 0, curve: 0, first: 0, last: 0 };
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
  const optRef = new AdamW([{ params: ref.namedParameters(), options: {} }], { lr: 3e-3 });
  const opt = new AdamW([{ params: par.module.namedParameters(), options: {} }], { lr: 3e-3 });
  optRef.zeroGrad();
  opt.zeroGrad();
  for (const { x: bx, y: by } of batches) {
    const a = lm.tidy(() => { const l = ref.forward(bx, by).loss!; lm.backward(l); return l.item(); });
    const b = par.step(bx, by).loss;
    out.curve = Math.max(out.curve, Math.abs(a - b));
    if (out.first === 0) out.first = b;
    out.last = b;
    optRef.step(clipGradNorm(optRef.params, 0.05).scale);
    opt.step(clipGradNormParallel(par.held(), 0.05, 1, comm).scale);
    optRef.zeroGrad();
    opt.zeroGrad();
  }
  return out;
}

function ep(): Record<string, number> {
  const moeCfg: Partial<GPTConfig> = { ...cfg, moe_experts: 4, moe_top_k: 2, moe_capacity_factor: 0 };
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
  const out = { logits: 0, loss: 0, aux: 0, grad: 0, curve: 0, first: 0, last: 0 };
  lm.tidy(() => {
    const r = ref.forward(x, y);
    lm.backward(total(r));
    const o = model.forward(mine(x), mine(y));
    out.logits = maxDiff(o.logits, mine(r.logits));
    out.loss = Math.abs(mean(o.loss!.item()) - r.loss!.item());
    out.aux = Math.abs(mean(o.aux.moe_balance!.item()) - r.aux.moe_balance!.item());
    lm.backward(total(o));
  });
  par.syncGradients();
  const full = new Map(ref.namedParameters());
  const expertSlice = (name: string, g: Tensor): Tensor => (/\.experts\./.test(name) ? lm.slice(g, 0, par.layers[0]!.e0, par.layers[0]!.e1) : g);
  for (const [name, p] of model.namedParameters()) out.grad = Math.max(out.grad, maxDiff(p.grad!, expertSlice(name, full.get(name)!.grad!)));
  const optRef = new AdamW([{ params: ref.namedParameters(), options: {} }], { lr: 3e-3 });
  const opt = new AdamW([{ params: model.namedParameters(), options: {} }], { lr: 3e-3 });
  optRef.zeroGrad();
  opt.zeroGrad();
  for (const { x: bx, y: by } of batches) {
    const a = lm.tidy(() => { const o = ref.forward(bx, by); lm.backward(total(o)); return o.loss!.item(); });
    const b = mean(lm.tidy(() => { const o = model.forward(mine(bx), mine(by)); lm.backward(total(o)); return o.loss!.item(); }));
    par.syncGradients();
    out.curve = Math.max(out.curve, Math.abs(a - b));
    if (out.first === 0) out.first = b;
    out.last = b;
    optRef.step(clipGradNorm(optRef.params, 0.05).scale);
    opt.step(clipGradNormParallel(par.held(), 0.05, 1, comm).scale);
    optRef.zeroGrad();
    opt.zeroGrad();
  }
  return out;
}

function isSplit(name: string): boolean {
  return name === 'transformer.wte.weight' || /\.(c_attn|c_fc)\./.test(name) || /\.c_proj\.weight$/.test(name);
}

const result = mode === 'tp' ? tp() : mode === 'pp-gpipe' ? pp('gpipe') : mode === 'pp-1f1b' ? pp('1f1b') : mode === 'ep' ? ep() : {};
console.log(`MP ${JSON.stringify({ rank: comm.rank, mode, ...result, bytes: comm.bytesSent() })}`);
