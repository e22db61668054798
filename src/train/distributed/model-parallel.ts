// One front for the three model-parallel layouts (tensor, pipeline, expert) as the trainer uses them: the layout a
// config asks for, the rank's share of the model with its loss and gradient finishing, the next-token task over it
// (every rank draws the same batches; expert parallelism then takes its rank's slice), and the full model gathered
// back from the shards for saving. Data parallelism over model-parallel groups is hybrid.ts (this task takes a
// replica's rows); no mixing of tensor, pipeline and expert layouts.
import * as lm from '../../core/index.js';
import type { Tensor } from '../../core/index.js';
import { hash32 } from '../../core/random.js';
import type { RngState } from '../../core/random.js';
import { gptCost } from '../../models/gpt-cost.js';
import { GPT } from '../../models/gpt.js';
import type { Module } from '../../nn/module.js';
import { UserError } from '../../util/errors.js';
import type { LossOutput, StepContext, Task, TaskDistribution } from '../loop.js';
import type { TokenBatch } from '../tasks/next-token.js';
import { BatchSampler, type TokenFile } from '../token-reader.js';
import { clipGradNormParallel, type HeldParam, type ModelComm } from './collectives.js';
import { ExpertParallelGPT, expertRange } from './expert-parallel.js';
import { PipelineParallelGPT, type PipeSchedule } from './pipeline.js';
import { TensorParallelGPT, tensorParallelSpec, type ShardSpec } from './tensor-parallel.js';

/** The model-parallel layout of a run: which one, over how many ranks, and the pipeline's schedule. */
export interface Layout {
  kind: 'tp' | 'pp' | 'ep';
  size: number;
  schedule: PipeSchedule;
  microBatches: number;
}

/** The layout the config's tp / pp / ep keys ask for (null: none, every rank holds the whole model). */
export function layoutOf(c: { tp: number; pp: number; ep: number; pp_schedule: PipeSchedule; pp_micro_batches: number }): Layout | null {
  const asked = (['tp', 'pp', 'ep'] as const).filter((k) => c[k] > 1);
  if (asked.length > 1) throw new UserError(`${asked.map((k) => `--${k}=${c[k]}`).join(' and ')}: one model-parallel layout at a time (combining them is not supported)`);
  const kind = asked[0];
  if (!kind) return null;
  return { kind, size: c[kind], schedule: c.pp_schedule, microBatches: c.pp_micro_batches };
}

/** A rank's share of a GPT under one layout. */
export class ModelParallelGPT {
  readonly tp: TensorParallelGPT | null = null;
  readonly pp: PipelineParallelGPT | null = null;
  readonly ep: ExpertParallelGPT | null = null;
  /** The parameters this rank holds and trains (their names are the full model's). */
  readonly module: Module;

  /** model: the full GPT built with the same config and seed on every rank (this rank's part of it is kept). */
  constructor(readonly model: GPT, readonly comm: ModelComm, readonly layout: Layout) {
    if (comm.size !== layout.size) throw new UserError(`--${layout.kind}=${layout.size} but the job has ${comm.size} processes (launch with mpirun -np ${layout.size})`);
    try {
      if (layout.kind === 'tp') this.tp = new TensorParallelGPT(model, comm);
      else if (layout.kind === 'pp') this.pp = new PipelineParallelGPT(model, comm, { microBatches: layout.microBatches, schedule: layout.schedule });
      else this.ep = new ExpertParallelGPT(model, comm);
    } catch (e) {
      if (e instanceof RangeError) throw new UserError(e.message);
      throw e;
    }
    this.module = this.pp ? this.pp.module : model;
  }

  /** How many ranks hold a full-model parameter (its square counts 1/copies in the global gradient norm). */
  copiesOf(name: string): number {
    const c = this.model.config;
    if (this.layout.kind === 'tp') return tensorParallelSpec(name, c, this.comm).kind === 'whole' ? this.comm.size : 1;
    if (this.layout.kind === 'pp') return name === 'transformer.wte.weight' && c.tie_embeddings && this.comm.size > 1 ? 2 : 1;
    return /\.mlp\.experts\./.test(name) ? 1 : this.comm.size;
  }

  /** Where this rank's tensor of a parameter sits in the full model's. */
  specOf(name: string): ShardSpec {
    if (this.layout.kind === 'tp') return tensorParallelSpec(name, this.model.config, this.comm);
    if (this.layout.kind === 'ep' && /\.mlp\.experts\./.test(name)) {
      const [a, b] = expertRange(this.model.config.moe_experts, this.comm.size, this.comm.rank);
      return { kind: 'rows', a, b };
    }
    return { kind: 'whole' };
  }

  held(): HeldParam[] {
    return this.module.namedParameters().filter(([, p]) => p.requiresGrad).map(([n, p]) => ({ param: p, copies: this.copiesOf(n) }));
  }

  /** One micro-batch's loss (B, T) → the loop's LossOutput; the pipeline runs its own backward. */
  trainLoss(x: Tensor, y: Tensor, seed: number): LossOutput {
    if (this.tp) return this.tp.loss(x, y, seed);
    if (this.pp) {
      const r = this.pp.step(x, y, seed);
      return { loss: lm.scalar(r.loss), aux: Object.fromEntries(Object.entries(r.aux).map(([k, v]) => [k, lm.scalar(v)])), metrics: r.metrics, backwardDone: true };
    }
    const ep = this.ep!;
    const [xs, ys] = [this.slice(x), this.slice(y)];
    ep.setSlice(xs.size);
    const out = this.model.forward(xs, ys, { seed });
    // The loop logs the loss: the mean over the ranks' slices (the whole batch's), as a constant plus this rank's
    // own loss minus its value, so its gradient is the rank's own and its value the batch's.
    const mean = this.meanOver(out.loss!.item());
    return { loss: lm.add(out.loss!, lm.scalar(mean - out.loss!.item())), aux: out.aux, metrics: out.metrics };
  }

  /** The mean loss over (x, y) without gradients (every rank returns the same value). */
  evalLoss(x: Tensor, y: Tensor): number {
    if (this.pp) return this.pp.evalLoss(x, y);
    return lm.noGrad(() => {
      if (this.tp) return this.tp.loss(x, y).loss.item();
      const xs = this.slice(x);
      this.ep!.setSlice(xs.size);
      return this.meanOver(this.model.forward(xs, this.slice(y)).loss!.item());
    });
  }

  finishGradients(): void {
    this.ep?.syncGradients();
  }

  /** Rows of this rank's slice of a (B, T) batch (expert parallelism). */
  private slice(t: Tensor): Tensor {
    const B = t.shape[0]!;
    if (B % this.comm.size !== 0) throw new UserError(`--ep=${this.comm.size}: batch_size ${B} does not divide over the ranks`);
    const b = B / this.comm.size;
    return lm.contiguous(lm.slice(t, 0, this.comm.rank * b, (this.comm.rank + 1) * b));
  }

  private meanOver(v: number): number {
    const buf = new Float32Array([v / this.comm.size]);
    this.comm.allReduce(buf, 'sum');
    return buf[0]!;
  }

  /**
   * The whole model rebuilt from every rank's shards (one all-reduce per parameter: each rank writes its part into
   * zeros, replicated parts divided by their copies); every rank gets it. The caller disposes it.
   */
  gatherFull(): GPT {
    const full = new GPT(this.model.config, 0);
    const mine = new Map(this.module.namedParameters());
    for (const [name, t] of full.namedParameters()) {
      const buf = new Float32Array(t.size);
      const part = mine.get(name);
      if (part) place(buf, t.shape, part.toTypedArray() as Float32Array, part.shape, this.specOf(name));
      this.comm.allReduce(buf, 'sum');
      const copies = this.copiesOf(name);
      if (copies > 1) for (let i = 0; i < buf.length; i++) buf[i]! /= copies;
      (t.data as Float32Array).set(buf, t.offset);
    }
    return full;
  }
}

/** Writes a shard's values (shape `shape`) into a full tensor's buffer (shape `fullShape`) where the spec says. */
export function place(full: Float32Array, fullShape: readonly number[], part: Float32Array, shape: readonly number[], spec: ShardSpec): void {
  if (spec.kind === 'whole') {
    full.set(part);
    return;
  }
  if (spec.kind === 'rows') {
    const row = part.length / shape[0]!;
    full.set(part, spec.a * row);
    return;
  }
  // Columns [a, b) of each of `blocks` blocks of the last axis.
  const n = fullShape[fullShape.length - 1]!;
  const w = n / spec.blocks;
  const k = spec.b - spec.a;
  const rows = full.length / n;
  for (let r = 0; r < rows; r++) {
    for (let blk = 0; blk < spec.blocks; blk++) {
      full.set(part.subarray(r * k * spec.blocks + blk * k, r * k * spec.blocks + (blk + 1) * k), r * n + blk * w + spec.a);
    }
  }
}

/** Next-token pretraining over a model-parallel GPT: the same batches on every rank, as NextTokenTask draws them. */
export class ModelParallelTask implements Task<TokenBatch> {
  readonly itemsPerBatch: number;
  readonly flopsPerItem: number;
  readonly model: Module;
  readonly distribution: TaskDistribution;
  private sampler: BatchSampler;
  private readonly T: number;

  private readonly replica: { index: number; count: number };

  /**
   * replica: with data parallelism over model-parallel groups (hybrid.ts), this group's index among `count`; every
   * group draws the same batches and trains on its rows [index·B/count, (index + 1)·B/count).
   */
  constructor(readonly parallel: ModelParallelGPT, private readonly train: TokenFile, private readonly val: TokenFile, private readonly o: { batchSize: number; evalIters: number; seed: number; replica?: { index: number; count: number } }) {
    const c = parallel.model.config;
    this.T = c.block_size;
    this.replica = o.replica ?? { index: 0, count: 1 };
    if (o.batchSize % this.replica.count !== 0) throw new UserError(`--dp=${this.replica.count}: batch_size ${o.batchSize} does not divide over the data-parallel replicas`);
    this.sampler = new BatchSampler(train, o.batchSize, this.T, o.seed);
    this.itemsPerBatch = (o.batchSize / this.replica.count) * this.T;
    this.flopsPerItem = gptCost(c).flopsPerToken / parallel.comm.size; // this rank's share of the work
    this.model = parallel.module;
    const held = parallel.held();
    this.distribution = {
      finishGradients: () => parallel.finishGradients(),
      clip: (maxNorm, gradScale) => clipGradNormParallel(held, maxNorm, gradScale, parallel.comm),
    };
  }

  private tensors(b: TokenBatch): [Tensor, Tensor] {
    const shape = [this.o.batchSize, this.T];
    return [lm.fromArray(b.x, shape), lm.fromArray(b.y, shape)];
  }

  nextBatch(): TokenBatch {
    return this.sampler.next();
  }

  loss(batch: TokenBatch, ctx: StepContext): LossOutput {
    const [x, y] = this.tensors(batch);
    if (this.replica.count === 1) return this.parallel.trainLoss(x, y, ctx.seed);
    const b = this.o.batchSize / this.replica.count;
    const rows = (t: Tensor): Tensor => lm.contiguous(lm.slice(t, 0, this.replica.index * b, (this.replica.index + 1) * b));
    return this.parallel.trainLoss(rows(x), rows(y), ctx.seed);
  }

  private estimate(file: TokenFile, step: number, split: number): number {
    const sampler = new BatchSampler(file, this.o.batchSize, this.T, hash32((this.o.seed ^ hash32(step)) + split));
    let total = 0;
    this.model.eval();
    for (let i = 0; i < this.o.evalIters; i++) total += lm.tidy(() => this.parallel.evalLoss(...this.tensors(sampler.next())));
    this.model.train();
    return total / this.o.evalIters;
  }

  evaluate(step: number): Record<string, number> {
    return { train_loss: this.estimate(this.train, step, 0), val_loss: this.estimate(this.val, step, 1) };
  }

  state(): Record<string, unknown> {
    return { samplerRng: this.sampler.rngState() };
  }

  loadState(state: Record<string, unknown>, source: string): void {
    const rng = state.samplerRng;
    if (!Array.isArray(rng) || rng.length !== 4) throw new UserError(`${source}: task state has no sampler RNG (samplerRng)`);
    this.sampler = new BatchSampler(this.train, this.o.batchSize, this.T, rng as RngState);
  }
}
