// Heads over a GPT's final hidden states for alignment: the scalar head of a reward model (one score per sequence,
// read at its last real token) and of PPO's value function (one value per position), plus the per-token
// log-probabilities of given targets that SFT, DPO and PPO share. Not the losses (train/tasks/align-losses.ts).
import * as lm from '../core/index.js';
import { Rng, type Tensor } from '../core/index.js';
import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import type { GPT } from './gpt.js';

/** A Linear C → 1 (Hugging Face's `score` of GPT2ForSequenceClassification, with a bias). */
export class ScalarHead extends Module {
  readonly score: Linear;

  constructor(C: number, seed = 0) {
    super();
    // Small init (std 1/√(C+1), TRL's value-head choice scaled down) so the first scores are near zero.
    this.score = this.child('score', new Linear(C, 1, { bias: true, rng: new Rng(seed), std: 1 / Math.sqrt(C + 1) / 10 }));
  }

  /** One value per position: hidden (B, T, C) → (B, T). */
  perToken(hidden: Tensor): Tensor {
    const [B, T] = hidden.shape as [number, number, number];
    return lm.reshape(this.score.forward(hidden), [B, T]);
  }

  /** One value per row, at position last[b]: hidden (B, T, C) → (B). */
  atPositions(hidden: Tensor, last: readonly number[]): Tensor {
    return this.perRow(gatherRows(hidden, last));
  }

  /** (B, C) → (B). */
  perRow(rows: Tensor): Tensor {
    return lm.reshape(this.score.forward(rows), [rows.shape[0]!]);
  }
}

/** Rows hidden[b, last[b], :] of hidden (B, T, C) → (B, C), differentiable (embedding's scatter backward). */
export function gatherRows(hidden: Tensor, last: readonly number[]): Tensor {
  const [B, T, C] = hidden.shape as [number, number, number];
  const rows = lm.tensor(last.map((t, b) => b * T + t), [B], 'int32');
  return lm.embedding(lm.reshape(hidden, [B * T, C]), rows); // (B, C)
}

/** A GPT and a scalar head on its final hidden states: a reward model (score of the last token) or a value model. */
export class ScalarModel extends Module {
  readonly body: GPT;
  readonly head: ScalarHead;

  constructor(body: GPT, seed = 0) {
    super();
    this.body = this.child('body', body);
    this.head = this.child('head', new ScalarHead(body.config.n_embd, seed));
  }

  /** Scores of rows x (B, T) at positions last[b] → (B). */
  scores(x: Tensor, last: readonly number[], seed = 0): Tensor {
    const { hidden } = this.body.forward(x, undefined, { seed });
    return this.head.atPositions(hidden, last);
  }
}

/**
 * log p(y[b,t] | x[b, ≤t]) for every target ≠ −1, 0 elsewhere: logits (B, T, V), targets (B, T) int32 → (B, T).
 * Cross-entropy's fused log-softmax, negated.
 */
export function tokenLogprobs(logits: Tensor, targets: Tensor): Tensor {
  return lm.neg(lm.crossEntropy(logits, targets, { ignoreIndex: -1, reduction: 'none' }));
}

/** Σ_t log p over each row's targets ≠ −1: (B, T, V), (B, T) → (B). */
export function sequenceLogprobs(logits: Tensor, targets: Tensor): Tensor {
  return lm.sum(tokenLogprobs(logits, targets), 1);
}
