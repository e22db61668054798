// Supervised fine-tuning (SFT) as a task of the training loop: conversations rendered by the chat template (ids and
// a mask that is 1 on assistant tokens), trained with next-token cross-entropy on the masked tokens only (TRL's
// assistant-only / completion-only loss). With packing, rendered examples are concatenated into rows of exactly
// block_size + 1 tokens (TRL's packing: no padding, attention may cross example boundaries); without it each example
// is one row, cut at block_size + 1 and padded. Rows are drawn in a seeded shuffled order, epoch by epoch.
import * as lm from '../../core/index.js';
import { Rng, type RngState } from '../../core/index.js';
import { gptCost } from '../../models/gpt-cost.js';
import type { GPT } from '../../models/gpt.js';
import { UserError } from '../../util/errors.js';
import type { LossOutput, StepContext, Task } from '../loop.js';
import type { TokenBatch } from './next-token.js';

/** A rendered conversation: ids and, per id, 1 when the model is trained to produce it. */
export interface MaskedExample {
  ids: readonly number[];
  mask: readonly number[];
}

/** A training row: inputs x (T) and targets y (T), −1 where no loss is taken. */
interface Row {
  x: Int32Array;
  y: Int32Array;
}

/**
 * Rows of block_size T from examples. Packed: one stream of every example, cut into windows of T + 1 tokens (the
 * last token of a window starts the next); unpacked: one row per example, padded with id 0 and target −1. Rows
 * without a trained target are dropped.
 */
export function buildRows(examples: readonly MaskedExample[], T: number, packing: boolean): Row[] {
  const rows: Row[] = [];
  const push = (ids: ArrayLike<number>, mask: ArrayLike<number>, n: number): void => {
    const x = new Int32Array(T);
    const y = new Int32Array(T).fill(-1);
    let trained = 0;
    for (let t = 0; t < Math.min(n - 1, T); t++) {
      x[t] = ids[t]!;
      if (mask[t + 1]) {
        y[t] = ids[t + 1]!;
        trained++;
      }
    }
    if (n - 1 < T && n >= 1) x[n - 1] = ids[n - 1]!;
    if (trained > 0) rows.push({ x, y });
  };
  if (!packing) {
    for (const e of examples) push(e.ids, e.mask, Math.min(e.ids.length, T + 1));
    return rows;
  }
  const total = examples.reduce((n, e) => n + e.ids.length, 0);
  const ids = new Int32Array(total);
  const mask = new Uint8Array(total);
  let at = 0;
  for (const e of examples) {
    ids.set(e.ids, at);
    mask.set(e.mask, at);
    at += e.ids.length;
  }
  for (let s = 0; s + T + 1 <= total; s += T) push(ids.subarray(s, s + T + 1), mask.subarray(s, s + T + 1), T + 1);
  return rows;
}

export interface SftOptions {
  batchSize: number;
  packing: boolean;
  seed: number;
  /** Validation rows per evaluation (the first ones, fixed). */
  evalRows: number;
}

/** Draws rows in a shuffled order per epoch (Fisher–Yates with a seeded Rng); its state is (rng, epoch order, position). */
class RowSampler {
  private order: number[] = [];
  private pos = 0;
  private rng: Rng;

  constructor(private readonly n: number, seed: number | RngState) {
    this.rng = new Rng(seed);
  }

  next(): number {
    if (this.pos >= this.order.length) {
      this.order = Array.from({ length: this.n }, (_, i) => i);
      for (let i = this.n - 1; i > 0; i--) {
        const j = this.rng.int(i + 1);
        [this.order[i], this.order[j]] = [this.order[j]!, this.order[i]!];
      }
      this.pos = 0;
    }
    return this.order[this.pos++]!;
  }

  state(): Record<string, unknown> {
    return { rng: this.rng.state(), order: this.order, pos: this.pos };
  }

  load(s: Record<string, unknown>, source: string): void {
    const { rng, order, pos } = s as { rng?: unknown; order?: unknown; pos?: unknown };
    if (!Array.isArray(rng) || rng.length !== 4 || !Array.isArray(order) || typeof pos !== 'number') throw new UserError(`${source}: task state has no SFT sampler (rng, order, pos)`);
    this.rng = new Rng(rng as RngState);
    this.order = order as number[];
    this.pos = pos;
  }
}

export class SftTask implements Task<TokenBatch> {
  readonly itemsPerBatch: number;
  readonly flopsPerItem: number;
  readonly rows: Row[];
  readonly valRows: Row[];
  private readonly sampler: RowSampler;
  private readonly T: number;

  constructor(readonly model: GPT, train: readonly MaskedExample[], val: readonly MaskedExample[], private readonly o: SftOptions) {
    this.T = model.config.block_size;
    this.rows = buildRows(train, this.T, o.packing);
    this.valRows = buildRows(val, this.T, o.packing).slice(0, o.evalRows);
    if (this.rows.length === 0) throw new UserError(`SFT data: no training row holds an assistant token (block_size ${this.T})`);
    this.sampler = new RowSampler(this.rows.length, o.seed);
    this.itemsPerBatch = o.batchSize * this.T;
    this.flopsPerItem = gptCost(model.config).flopsPerToken;
  }

  nextBatch(): TokenBatch {
    const B = this.o.batchSize;
    const x = new Int32Array(B * this.T);
    const y = new Int32Array(B * this.T);
    for (let b = 0; b < B; b++) {
      const r = this.rows[this.sampler.next()]!;
      x.set(r.x, b * this.T);
      y.set(r.y, b * this.T);
    }
    return { x, y };
  }

  loss(batch: TokenBatch, ctx: StepContext): LossOutput {
    const shape = [this.o.batchSize, this.T];
    // Mean cross-entropy over the trained (assistant) targets of the micro-batch; −1 targets are skipped.
    const out = this.model.forwardLoss(lm.fromArray(batch.x, shape), lm.fromArray(batch.y, shape), { seed: ctx.seed });
    return { loss: out.loss, aux: out.aux, metrics: out.metrics };
  }

  /** Masked loss over the rows given (assistant tokens only), batch_size rows at a time. */
  maskedLoss(rows: readonly Row[]): number {
    if (rows.length === 0) return NaN;
    let total = 0;
    let count = 0;
    this.model.eval();
    lm.noGrad(() => {
      for (let r0 = 0; r0 < rows.length; r0 += this.o.batchSize) {
        const part = rows.slice(r0, r0 + this.o.batchSize);
        const x = new Int32Array(part.length * this.T);
        const y = new Int32Array(part.length * this.T);
        part.forEach((r, b) => {
          x.set(r.x, b * this.T);
          y.set(r.y, b * this.T);
        });
        let n = 0;
        for (const v of y) if (v !== -1) n++;
        total += n * lm.tidy(() => this.model.forwardLoss(lm.fromArray(x, [part.length, this.T]), lm.fromArray(y, [part.length, this.T])).loss.item());
        count += n;
      }
    });
    this.model.train();
    return total / count;
  }

  evaluate(): Record<string, number> {
    return this.valRows.length ? { val_loss: this.maskedLoss(this.valRows) } : {};
  }

  state(): Record<string, unknown> {
    return { sampler: this.sampler.state() };
  }

  loadState(state: Record<string, unknown>, source: string): void {
    this.sampler.load((state.sampler ?? {}) as Record<string, unknown>, source);
  }
}
