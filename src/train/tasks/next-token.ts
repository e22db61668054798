// Next-token prediction (pretraining) as a task of the training loop: random windows of a token file as batches
// (nanoGPT's get_batch), cross-entropy of the model's predictions, and evaluation on fixed batches per step
// (a function of seed, step and split) plus, at the end, the loss over the whole val split.
import * as lm from '../../core/index.js';
import { hash32 } from '../../core/random.js';
import type { RngState } from '../../core/random.js';
import { gptCost } from '../../models/gpt-cost.js';
import type { GPT } from '../../models/gpt.js';
import type { LossTerms } from '../../models/head-loss.js';
import { UserError } from '../../util/errors.js';
import type { Comm } from '../distributed/comm.js';
import type { LossOutput, StepContext, Task } from '../loop.js';
import { BatchSampler, type TokenFile } from '../token-reader.js';

export interface NextTokenOptions {
  batchSize: number;
  /** Batches per evaluation estimate. */
  evalIters: number;
  /** Seeds the sampler and the evaluation batches. */
  seed: number;
  /** At the end, also the loss over the whole val split. */
  fullVal: boolean;
  /**
   * Data parallelism: this rank trains on rows [rank·B/size, (rank+1)·B/size) of every global batch of batchSize
   * rows. Every rank draws the same global batches (one sampler, one seed), so the run sees what one process sees.
   * Evaluation batches are dealt round-robin over the ranks and their losses summed over comm.
   */
  comm?: Comm;
  /** Training terms on the output distribution (z-loss, label smoothing); evaluation reports the plain loss. */
  terms?: LossTerms;
}

export interface TokenBatch {
  x: Int32Array;
  y: Int32Array;
}

/** How many consecutive (x, y) windows of T tokens a token file holds (y is x shifted by one). */
export function splitWindows(file: TokenFile, T: number): number {
  return Math.floor((file.count - 1) / T);
}

/**
 * Mean loss over a whole token file cut into consecutive non-overlapping (x, y) windows of block_size, batch_size
 * at a time: the noise-free value the random-window estimate samples (each window position weighs the same).
 */
export function fullSplitLoss(model: GPT, file: TokenFile, batchSize: number, blockSize: number, comm?: Comm): number {
  const T = blockSize;
  const windows = splitWindows(file, T);
  if (windows < 1) throw new UserError(`${file.path}: ${file.count} tokens is too few for one window of block_size ${T}`);
  let total = 0;
  const { rank, size } = comm ?? { rank: 0, size: 1 };
  model.eval();
  lm.noGrad(() => {
    for (let w0 = 0, k = 0; w0 < windows; w0 += batchSize, k++) {
      if (k % size !== rank) continue; // batches dealt round-robin over data-parallel ranks
      const B = Math.min(batchSize, windows - w0);
      const x = Int32Array.from(file.ids.subarray(w0 * T, (w0 + B) * T));
      const y = Int32Array.from(file.ids.subarray(w0 * T + 1, (w0 + B) * T + 1));
      total += B * lm.tidy(() => model.forwardLoss(lm.fromArray(x, [B, T]), lm.fromArray(y, [B, T])).loss.item());
    }
  });
  model.train();
  return sumOverRanks(comm, total) / windows;
}

/** x summed over the ranks of comm (x itself without one). */
function sumOverRanks(comm: Comm | undefined, x: number): number {
  if (!comm || comm.size === 1) return x;
  const buf = new Float64Array([x]);
  comm.allReduce(buf);
  return buf[0]!;
}

export class NextTokenTask implements Task<TokenBatch> {
  readonly itemsPerBatch: number;
  readonly flopsPerItem: number;
  private sampler: BatchSampler;
  private readonly T: number;
  /** Rows of each global batch this rank trains on: [row0, row0 + rows). */
  private readonly row0: number;
  private readonly rows: number;

  constructor(readonly model: GPT, private readonly train: TokenFile, private readonly val: TokenFile, private readonly o: NextTokenOptions) {
    this.T = model.config.block_size;
    this.sampler = new BatchSampler(train, o.batchSize, this.T, o.seed);
    const shard = o.comm ?? { rank: 0, size: 1 };
    if (o.batchSize % shard.size !== 0) throw new UserError(`data.batch_size: ${o.batchSize} rows do not split evenly over dp = ${shard.size} ranks (the global batch must be a multiple of dp)`);
    this.rows = o.batchSize / shard.size;
    this.row0 = shard.rank * this.rows;
    this.itemsPerBatch = this.rows * this.T;
    const c = model.config;
    // A mixture of experts counts the parameters a token uses: k of its E experts.
    // Analytic cost of the config: a shared layer counts at every use, a mixture of experts only its k active experts.
    this.flopsPerItem = gptCost(c).flopsPerToken;
  }

  nextBatch(): TokenBatch {
    const b = this.sampler.next();
    if (this.rows === this.o.batchSize) return b;
    const lo = this.row0 * this.T, hi = (this.row0 + this.rows) * this.T;
    return { x: b.x.slice(lo, hi), y: b.y.slice(lo, hi) };
  }

  loss(batch: TokenBatch, ctx: StepContext): LossOutput {
    const shape = [this.rows, this.T];
    // forwardLoss: with a frozen head (LoRA, QLoRA) the (B, T, V) logits are never held whole.
    const out = this.model.forwardLoss(lm.fromArray(batch.x, shape), lm.fromArray(batch.y, shape), { seed: ctx.seed, terms: this.o.terms });
    return { loss: out.loss, aux: out.aux, metrics: out.metrics };
  }

  /** Mean loss over evalIters batches whose windows depend only on (seed, step, split). */
  private estimate(file: TokenFile, step: number, split: number): number {
    const sampler = new BatchSampler(file, this.o.batchSize, this.T, hash32((this.o.seed ^ hash32(step)) + split));
    const shape = [this.o.batchSize, this.T];
    let total = 0;
    const { rank, size } = this.o.comm ?? { rank: 0, size: 1 };
    this.model.eval();
    lm.noGrad(() => {
      for (let i = 0; i < this.o.evalIters; i++) {
        const { x, y } = sampler.next();
        if (i % size !== rank) continue; // every rank draws every batch, so the batches are the same at any size
        total += lm.tidy(() => this.model.forwardLoss(lm.fromArray(x, shape), lm.fromArray(y, shape)).loss.item());
      }
    });
    this.model.train();
    return sumOverRanks(this.o.comm, total) / this.o.evalIters;
  }

  evaluate(step: number): Record<string, number> {
    return { train_loss: this.estimate(this.train, step, 0), val_loss: this.estimate(this.val, step, 1) };
  }

  finalEvaluate(step: number, log: (line: string) => void): Record<string, number> {
    if (!this.o.fullVal) return {};
    const v = fullSplitLoss(this.model, this.val, this.o.batchSize, this.T, this.o.comm);
    log(`step ${step}: val loss over the whole val split ${v.toFixed(4)} (${splitWindows(this.val, this.T)} windows)`);
    return { val_loss_full: v };
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
