// Adversarial debiasing (Zhang, Lemoine & Mitchell 2018; Ganin & Lempitsky's gradient reversal) as a wrapper of the
// next-token task: a small adversary reads each row's mean hidden state and predicts the protected attribute — the
// gender of the window's text, from the counterfactual-augmentation swap lists (male words vs female words; rows
// with neither or a tie are skipped) — and its cross-entropy is added to the objective through a gradient-reversal
// layer of weight λ: the adversary learns to predict gender, the language model learns to make that impossible.
// Off by default (debias.adversary_weight = 0). Not the language-model loss itself (next-token.ts).
import * as lm from '../../core/index.js';
import type { Tensor } from '../../core/index.js';
import { DEFAULT_GENDER_PAIRS } from '../../data/cda.js';
import type { GPT } from '../../models/gpt.js';
import { gradientReversal } from '../../nn/gradient-reversal.js';
import { Linear } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import type { LossOutput, StepContext, Task } from '../loop.js';
import type { NextTokenTask, TokenBatch } from './next-token.js';

/** Label of a text: 0 = male words outnumber female ones, 1 = the reverse, −1 = neither (ignored by the loss). */
export function genderLabel(text: string): number {
  let male = 0, female = 0;
  for (const w of text.toLowerCase().match(/[a-z]+/g) ?? []) {
    if (MALE.has(w)) male++;
    else if (FEMALE.has(w)) female++;
  }
  return male > female ? 0 : female > male ? 1 : -1;
}

const MALE = new Set(['he', 'him', 'his', ...DEFAULT_GENDER_PAIRS.map(([m]) => m)]);
const FEMALE = new Set(['she', 'her', 'hers', ...DEFAULT_GENDER_PAIRS.map(([, f]) => f)]);

/** A two-layer classifier of pooled hidden states: (B, C) → (B, 2) logits. */
export class GenderAdversary extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(C: number, H: number, seed: number) {
    super();
    const rng = new lm.Rng(seed ^ 0x6a09e667);
    this.fc1 = this.child('fc1', new Linear(C, H, { bias: true, rng, std: 1 / Math.sqrt(C) }));
    this.fc2 = this.child('fc2', new Linear(H, 2, { bias: true, rng, std: 1 / Math.sqrt(H) }));
  }

  forward(x: Tensor): Tensor {
    return this.fc2.forward(lm.tanh(this.fc1.forward(x))); // (B, C) → (B, H) → (B, 2)
  }
}

/**
 * The adversary's loss on hidden states (B, T, C) with per-row labels: the mean over T, reversed with weight λ, then
 * the adversary's cross-entropy over the labelled rows (null when none is labelled). Also its accuracy on them.
 */
export function adversaryLoss(adversary: GenderAdversary, hidden: Tensor, labels: Int32Array, lambda: number): { loss: Tensor; accuracy: number; rows: number } | null {
  const rows = labels.reduce((n, y) => n + (y >= 0 ? 1 : 0), 0);
  if (rows === 0) return null;
  const pooled = lm.mean(hidden, 1); // (B, T, C) → (B, C)
  const logits = adversary.forward(gradientReversal(pooled, lambda)); // (B, 2)
  const loss = lm.crossEntropy(logits, lm.fromArray(labels, [labels.length]), { ignoreIndex: -1 });
  const l = logits.toArray();
  let right = 0;
  labels.forEach((y, i) => {
    if (y >= 0 && (l[2 * i + 1]! > l[2 * i]! ? 1 : 0) === y) right++;
  });
  return { loss, accuracy: right / rows, rows };
}

/** The model and its adversary as one module, so the optimizer and the checkpoints hold both. */
class WithAdversary extends Module {
  constructor(readonly gpt: GPT, readonly adversary: GenderAdversary) {
    super();
    this.child('gpt', gpt);
    this.child('adversary', adversary);
  }
}

export interface DebiasOptions {
  /** λ of the gradient reversal. */
  weight: number;
  /** Hidden width of the adversary. */
  hidden: number;
  seed: number;
  /** Token ids → text (the run's tokenizer), for the labels. */
  decode: (ids: ArrayLike<number>) => string;
}

/** Next-token prediction plus the adversary's reversed loss, logged as aux `adversary` and metric `adversary_acc`. */
export class DebiasedNextTokenTask implements Task<TokenBatch> {
  readonly model: Module;
  readonly adversary: GenderAdversary;

  constructor(private readonly inner: NextTokenTask, private readonly o: DebiasOptions) {
    const gpt = inner.model;
    this.adversary = new GenderAdversary(gpt.config.n_embd, o.hidden, o.seed);
    this.model = new WithAdversary(gpt, this.adversary);
  }

  get itemsPerBatch(): number {
    return this.inner.itemsPerBatch;
  }

  get flopsPerItem(): number {
    return this.inner.flopsPerItem;
  }

  nextBatch(): TokenBatch {
    return this.inner.nextBatch();
  }

  loss(batch: TokenBatch, ctx: StepContext): LossOutput {
    const gpt = this.inner.model;
    const T = gpt.config.block_size;
    const B = batch.x.length / T;
    const out = gpt.forwardLoss(lm.fromArray(batch.x, [B, T]), lm.fromArray(batch.y, [B, T]), { seed: ctx.seed });
    const labels = Int32Array.from({ length: B }, (_, b) => genderLabel(this.o.decode(batch.x.subarray(b * T, (b + 1) * T))));
    const adv = adversaryLoss(this.adversary, out.hidden, labels, this.o.weight);
    const aux = { ...out.aux, ...(adv ? { adversary: adv.loss } : {}) };
    const metrics = { ...out.metrics, ...(adv ? { adversary_acc: adv.accuracy, adversary_rows: adv.rows } : {}) };
    return { loss: out.loss, aux, metrics };
  }

  evaluate(step: number): Record<string, number> {
    return this.inner.evaluate(step);
  }

  finalEvaluate(step: number, log: (line: string) => void): Record<string, number> {
    return this.inner.finalEvaluate(step, log);
  }

  state(): Record<string, unknown> {
    return this.inner.state();
  }

  loadState(state: Record<string, unknown>, source: string): void {
    this.inner.loadState(state, source);
  }
}
