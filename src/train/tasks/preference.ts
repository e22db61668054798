// Preference pairs as tasks of the training loop: the reward model (a GPT with a scalar head, scored at the last
// token of prompt + reply, Bradley–Terry loss) and DPO (the policy's summed log-probabilities of each reply — for
// IPO averaged per reply token — against a frozen reference's, computed once before training and cached). A
// micro-batch is B pairs laid out as 2B rows (the B chosen rows, then the B rejected rows), padded to the longest.
import * as lm from '../../core/index.js';
import { Rng, type RngState, type Tensor } from '../../core/index.js';
import { gptCost } from '../../models/gpt-cost.js';
import type { GPT } from '../../models/gpt.js';
import { sequenceLogprobs, type ScalarModel } from '../../models/heads.js';
import { UserError } from '../../util/errors.js';
import type { LossOutput, StepContext, Task } from '../loop.js';
import { dpoLoss, rewardLoss, type DpoOptions } from './align-losses.js';

/** A tokenized pair: the rendered prompt (ending in the assistant header) and the two rendered replies. */
export interface TokenPair {
  prompt: readonly number[];
  chosen: readonly number[];
  rejected: readonly number[];
}

/** A (prompt, reply) sequence cut to T tokens: the reply to maxReply tokens, the prompt from its left to the rest. */
export function fitSequence(prompt: readonly number[], reply: readonly number[], T: number, maxReply: number): { ids: number[]; replyStart: number } {
  const r = reply.slice(0, Math.min(maxReply, T - 1));
  const p = prompt.slice(Math.max(0, prompt.length - (T - r.length)));
  return { ids: [...p, ...r], replyStart: p.length };
}

/** Rows of (prompt, reply) sequences padded to their longest: x (N, T'), targets y (reply tokens only), last index per row. */
export interface SequenceBatch {
  x: Int32Array;
  y: Int32Array;
  last: number[];
  rows: number;
  T: number;
  /** Reply tokens per row. */
  replyTokens: number[];
}

export function sequenceBatch(seqs: readonly { ids: readonly number[]; replyStart: number }[]): SequenceBatch {
  const T = Math.max(1, ...seqs.map((s) => s.ids.length));
  const N = seqs.length;
  const x = new Int32Array(N * T);
  const y = new Int32Array(N * T).fill(-1);
  const last: number[] = [];
  const replyTokens: number[] = [];
  seqs.forEach((s, b) => {
    x.set(s.ids, b * T);
    // The target at t is token t + 1: reply tokens sit at [replyStart, len), predicted from t = replyStart − 1 on.
    for (let t = Math.max(s.replyStart, 1); t < s.ids.length; t++) y[b * T + t - 1] = s.ids[t]!;
    last.push(Math.max(s.ids.length - 1, 0));
    replyTokens.push(replyTokenCount(s));
  });
  return { x, y, last, rows: N, T, replyTokens };
}

/** The reply tokens of a sequence that are scored (a reply token at position 0 has nothing before it to predict it). */
export function replyTokenCount(s: { ids: readonly number[]; replyStart: number }): number {
  return s.ids.length - Math.max(s.replyStart, 1);
}

/** 2B rows of B pairs: chosen rows first, then rejected. */
export function pairBatch(pairs: readonly TokenPair[], T: number, maxReply: number): SequenceBatch {
  return sequenceBatch([...pairs.map((p) => fitSequence(p.prompt, p.chosen, T, maxReply)), ...pairs.map((p) => fitSequence(p.prompt, p.rejected, T, maxReply))]);
}

/** Summed reply log-probabilities of every row (no autograd), batchRows rows at a time. */
export function replyLogprobs(model: GPT, seqs: readonly { ids: readonly number[]; replyStart: number }[], batchRows: number): Float64Array {
  const out = new Float64Array(seqs.length);
  const was = model.training;
  model.eval();
  lm.noGrad(() => {
    for (let i = 0; i < seqs.length; i += batchRows) {
      const b = sequenceBatch(seqs.slice(i, i + batchRows));
      const v = lm.tidy(() => sequenceLogprobs(model.forward(lm.fromArray(b.x, [b.rows, b.T])).logits, lm.fromArray(b.y, [b.rows, b.T])).toTypedArray());
      out.set(v, i);
    }
  });
  model.train(was);
  return out;
}

/** Pair indices in a shuffled order per epoch; state for exact resume. */
class PairSampler {
  private order: number[] = [];
  private pos = 0;
  private rng: Rng;

  constructor(private readonly n: number, seed: number | RngState) {
    this.rng = new Rng(seed);
  }

  take(k: number): number[] {
    const out: number[] = [];
    while (out.length < k) {
      if (this.pos >= this.order.length) {
        this.order = Array.from({ length: this.n }, (_, i) => i);
        for (let i = this.n - 1; i > 0; i--) {
          const j = this.rng.int(i + 1);
          [this.order[i], this.order[j]] = [this.order[j]!, this.order[i]!];
        }
        this.pos = 0;
      }
      out.push(this.order[this.pos++]!);
    }
    return out;
  }

  state(): Record<string, unknown> {
    return { rng: this.rng.state(), order: this.order, pos: this.pos };
  }

  load(s: Record<string, unknown>, source: string): void {
    const { rng, order, pos } = s as { rng?: unknown; order?: unknown; pos?: unknown };
    if (!Array.isArray(rng) || rng.length !== 4 || !Array.isArray(order) || typeof pos !== 'number') throw new UserError(`${source}: task state has no pair sampler (rng, order, pos)`);
    this.rng = new Rng(rng as RngState);
    this.order = order as number[];
    this.pos = pos;
  }
}

export interface PairTaskOptions {
  batchSize: number;
  maxReplyTokens: number;
  seed: number;
}

interface PairBatchOf {
  idx: number[];
  batch: SequenceBatch;
}

abstract class PairTask implements Task<PairBatchOf> {
  abstract readonly model: ScalarModel | GPT;
  readonly itemsPerBatch: number;
  readonly flopsPerItem: number;
  protected readonly sampler: PairSampler;

  constructor(protected readonly pairs: readonly TokenPair[], protected readonly o: PairTaskOptions, protected readonly T: number, flopsPerToken: number) {
    if (pairs.length === 0) throw new UserError('preference data: no training pairs');
    this.sampler = new PairSampler(pairs.length, o.seed);
    // Items are pairs; FLOPs per pair ≈ two rows of the block.
    this.itemsPerBatch = o.batchSize;
    this.flopsPerItem = 2 * T * flopsPerToken;
  }

  nextBatch(): PairBatchOf {
    const idx = this.sampler.take(this.o.batchSize);
    return { idx, batch: pairBatch(idx.map((i) => this.pairs[i]!), this.T, this.o.maxReplyTokens) };
  }

  abstract loss(b: PairBatchOf, ctx: StepContext): LossOutput;

  state(): Record<string, unknown> {
    return { sampler: this.sampler.state() };
  }

  loadState(state: Record<string, unknown>, source: string): void {
    this.sampler.load((state.sampler ?? {}) as Record<string, unknown>, source);
  }
}

/** Chosen (first B) and rejected (last B) halves of a (2B) tensor. */
function halves(t: Tensor): [Tensor, Tensor] {
  const B = t.shape[0]! / 2;
  return [lm.slice(t, 0, 0, B), lm.slice(t, 0, B, 2 * B)];
}

export interface RewardTaskOptions extends PairTaskOptions {
  centerCoef: number;
}

export class RewardTask extends PairTask {
  constructor(readonly model: ScalarModel, pairs: readonly TokenPair[], private readonly ro: RewardTaskOptions) {
    super(pairs, ro, model.body.config.block_size, gptCost(model.body.config).flopsPerToken);
  }

  loss({ batch: b }: PairBatchOf, ctx: StepContext): LossOutput {
    const scores = this.model.scores(lm.fromArray(b.x, [b.rows, b.T]), b.last, ctx.seed); // (2B)
    const [rc, rr] = halves(scores);
    const { loss, metrics } = rewardLoss(rc, rr, { centerCoef: this.ro.centerCoef });
    return { loss, metrics };
  }
}

export interface DpoTaskOptions extends PairTaskOptions, DpoOptions {}

export class DpoTask extends PairTask {
  /** Reference log-probabilities per pair index, computed once (then frozen): chosen and rejected. */
  constructor(readonly model: GPT, pairs: readonly TokenPair[], private readonly refChosen: Float64Array, private readonly refRejected: Float64Array, private readonly dpo: DpoTaskOptions) {
    super(pairs, dpo, model.config.block_size, gptCost(model.config).flopsPerToken);
    if (refChosen.length !== pairs.length || refRejected.length !== pairs.length) throw new Error('DpoTask: one reference log-probability per pair and side');
  }

  loss({ idx, batch: b }: PairBatchOf, ctx: StepContext): LossOutput {
    const logits = this.model.forward(lm.fromArray(b.x, [b.rows, b.T]), undefined, { seed: ctx.seed }).logits; // (2B, T, V)
    const [pc, pr] = halves(sequenceLogprobs(logits, lm.fromArray(b.y, [b.rows, b.T])));
    const refC = lm.tensor(idx.map((i) => this.refChosen[i]!));
    const refR = lm.tensor(idx.map((i) => this.refRejected[i]!));
    const B = idx.length;
    const { loss, metrics } = dpoLoss(pc, pr, refC, refR, this.dpo, { chosen: b.replyTokens.slice(0, B), rejected: b.replyTokens.slice(B) });
    return { loss, metrics };
  }
}
