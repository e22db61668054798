// Next-token pretraining with the training-process switches of issue 14: rows packed from whole documents
// (packing.ts) or random windows, document masking (segment ids → block-diagonal causal attention), sequence-length
// warmup with the batch scaled to keep tokens per step constant (curriculum.ts), ordering by difficulty, and
// temperature mixing of several token sources with the planned and realised shares logged. Evaluation is
// NextTokenTask's (fixed block_size windows of each source's val split). Every draw comes from state that
// checkpoints save — the row RNG, each packed stream's position and epoch RNG, the micro-batch count — so a resumed
// run continues bit for bit. One process only (no data or model parallelism).
import * as lm from '../../core/index.js';
import { Rng, type RngState } from '../../core/random.js';
import type { GPT } from '../../models/gpt.js';
import type { LossTerms } from '../../models/head-loss.js';
import { segmentsAfterEot } from '../../nn/segments.js';
import { UserError } from '../../util/errors.js';
import { seqLenAt, type SeqWarmup } from '../curriculum.js';
import type { LossOutput, StepContext, Task } from '../loop.js';
import { PackedStream, type DocumentOrder, type Documents, type PackedState } from '../packing.js';
import type { TokenFile } from '../token-reader.js';
import { NextTokenTask, type TokenBatch } from './next-token.js';

/** One training source: its token files, and its documents when rows are packed. */
export interface CurriculumSource {
  name: string;
  train: TokenFile;
  val: TokenFile;
  /** Documents of train and their order per epoch (needed when packed). */
  docs: Documents | null;
  order: DocumentOrder;
  /** Sampling probability (the mix plan's share; 1 for a single source). */
  share: number;
}

export interface CurriculumOptions {
  batchSize: number;
  evalIters: number;
  seed: number;
  fullVal: boolean;
  /** Micro-batches per optimizer step (to know the step of each micro-batch). */
  accumulation: number;
  packed: boolean;
  /** Packed: chunks are shuffled within windows of this many (0 = the whole epoch). */
  shuffleWindow: number;
  /** The end-of-text id for document masking (null = no masking). */
  docMaskEot: number | null;
  warmup: SeqWarmup;
  terms: LossTerms;
}

export interface CurriculumBatch extends TokenBatch {
  rows: number;
  T: number;
  segments: Int32Array | null;
}

export class CurriculumTask implements Task<CurriculumBatch> {
  readonly itemsPerBatch: number;
  readonly flopsPerItem: number;
  private readonly blockSize: number;
  private rng: Rng;
  private streams: (PackedStream | null)[];
  private drawn = 0;
  /** Tokens drawn from each source so far (the realised mix). */
  private tokens: number[];
  private readonly evals: NextTokenTask[];

  constructor(readonly model: GPT, private readonly sources: CurriculumSource[], private readonly o: CurriculumOptions) {
    if (sources.length === 0) throw new Error('CurriculumTask: no source');
    this.blockSize = model.config.block_size;
    this.itemsPerBatch = o.batchSize * this.blockSize;
    this.rng = new Rng(o.seed);
    this.streams = sources.map((s, i) => (o.packed ? new PackedStream(s.train, s.docs!, s.order, this.blockSize, o.shuffleWindow, o.seed + 7919 * (i + 1)) : null));
    this.tokens = sources.map(() => 0);
    // Evaluation as plain pretraining does it, per source (the first is the run's val_loss).
    this.evals = sources.map((s) => new NextTokenTask(model, s.train, s.val, { batchSize: o.batchSize, evalIters: o.evalIters, seed: o.seed, fullVal: o.fullVal }));
    this.flopsPerItem = this.evals[0]!.flopsPerItem;
    for (const s of sources) {
      if (!o.packed && s.train.count < this.blockSize + 1) throw new UserError(`${s.train.path}: ${s.train.count} tokens is too few for block_size ${this.blockSize}`);
    }
  }

  /** The step the next micro-batch belongs to. */
  private get step(): number {
    return Math.floor(this.drawn / this.o.accumulation);
  }

  /** The source of one row: source i with probability share_i (one uniform draw per row when there are several). */
  private pickSource(): number {
    if (this.sources.length === 1) return 0;
    const u = this.rng.uniform();
    let acc = 0;
    for (let i = 0; i < this.sources.length; i++) {
      acc += this.sources[i]!.share;
      if (u < acc) return i;
    }
    return this.sources.length - 1;
  }

  nextBatch(): CurriculumBatch {
    // T divides block_size, so rows·T = batch_size·block_size: every micro-batch holds the same tokens.
    const T = seqLenAt(this.step, this.o.warmup, this.blockSize, this.blockSize);
    const rows = this.itemsPerBatch / T;
    const x = new Int32Array(rows * T);
    const y = new Int32Array(rows * T);
    if (this.o.packed) {
      // batch_size chunks of block_size + 1 stream tokens, each cut into block_size / T rows.
      const chunk = new Int32Array(this.blockSize + 1);
      const per = this.blockSize / T;
      for (let c = 0; c < this.o.batchSize; c++) {
        const i = this.pickSource();
        this.streams[i]!.nextChunk(chunk);
        for (let k = 0; k < per; k++) {
          x.set(chunk.subarray(k * T, k * T + T), (c * per + k) * T);
          y.set(chunk.subarray(k * T + 1, k * T + T + 1), (c * per + k) * T);
        }
        this.tokens[i]! += this.blockSize;
      }
    } else {
      for (let r = 0; r < rows; r++) {
        const i = this.pickSource();
        const ids = this.sources[i]!.train.ids;
        const at = this.rng.int(ids.length - T);
        for (let t = 0; t < T; t++) {
          x[r * T + t] = ids[at + t]!;
          y[r * T + t] = ids[at + t + 1]!;
        }
        this.tokens[i]! += T;
      }
    }
    this.drawn++;
    const segments = this.o.docMaskEot === null ? null : segmentsAfterEot(x, rows, T, this.o.docMaskEot);
    return { x, y, rows, T, segments };
  }

  loss(batch: CurriculumBatch, ctx: StepContext): LossOutput {
    const shape = [batch.rows, batch.T];
    const out = this.model.forwardLoss(lm.fromArray(batch.x, shape), lm.fromArray(batch.y, shape), { seed: ctx.seed, terms: this.o.terms, segments: batch.segments ?? undefined });
    const metrics: Record<string, number> = { ...out.metrics, seq_len: batch.T, batch_rows: batch.rows };
    if (this.sources.length > 1) {
      const total = this.tokens.reduce((a, b) => a + b, 0);
      this.sources.forEach((s, i) => {
        metrics[`mix_plan_${s.name}`] = s.share;
        metrics[`mix_real_${s.name}`] = this.tokens[i]! / total;
      });
    }
    if (this.o.packed) metrics.epoch = this.streams[0]!.epoch;
    return { loss: out.loss, aux: out.aux, metrics };
  }

  evaluate(step: number): Record<string, number> {
    const out = this.evals[0]!.evaluate(step);
    if (this.sources.length > 1) this.sources.forEach((s, i) => (out[`val_loss_${s.name}`] = i === 0 ? out.val_loss! : this.evals[i]!.evaluate(step).val_loss!));
    return out;
  }

  finalEvaluate(step: number, log: (line: string) => void): Record<string, number> {
    return this.evals[0]!.finalEvaluate(step, log);
  }

  state(): Record<string, unknown> {
    return { curriculum: 1, rng: this.rng.state(), drawn: this.drawn, tokens: [...this.tokens], streams: this.streams.map((s) => s?.state() ?? null) };
  }

  loadState(state: Record<string, unknown>, source: string): void {
    const rng = state.rng;
    const streams = state.streams;
    const tokens = state.tokens;
    if (state.curriculum !== 1 || !Array.isArray(rng) || rng.length !== 4 || typeof state.drawn !== 'number' || !Array.isArray(streams) || streams.length !== this.sources.length || !Array.isArray(tokens) || tokens.length !== this.sources.length) {
      throw new UserError(`${source}: task state is not this run's curriculum sampler state (was the checkpoint written with other batching, curriculum or mix settings?)`);
    }
    this.rng = new Rng(rng as RngState);
    this.drawn = state.drawn;
    this.tokens = (tokens as number[]).slice();
    this.streams = this.sources.map((s, i) => {
      const st = streams[i] as PackedState | null;
      if (!this.o.packed) return null;
      if (!st) throw new UserError(`${source}: task state has no packed stream for source ${s.name}`);
      return new PackedStream(s.train, s.docs!, s.order, this.blockSize, this.o.shuffleWindow, st);
    });
  }
}
