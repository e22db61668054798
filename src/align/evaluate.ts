// Held-out figures shared by the alignment stages: tokenized preference pairs of a split, the Wilson 95% interval
// of an accuracy, reward-model scores of (prompt, reply) pairs, replies sampled through the batched generator and
// the KL of a policy to its reference estimated on its own samples: KL ≈ mean over prompts of
// Σ_t (log π(y_t) − log π_ref(y_t)), y ~ π (the per-response sum TRL's objective/kl reports).
import * as lm from '../core/index.js';
import { readPreferences, splitPairs, type Message, type PreferencePair } from '../data/chat.js';
import type { GPT } from '../models/gpt.js';
import type { ScalarModel } from '../models/heads.js';
import { generate } from '../serve/generate.js';
import { samplingProcessors } from '../serve/logits.js';
import { renderChat, renderReply, type ChatIds } from '../tokenizers/chat-template.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { fitSequence, replyLogprobs, sequenceBatch, type TokenPair } from '../train/tasks/preference.js';
import { UserError } from '../util/errors.js';
import { wilson } from '../util/intervals.js';

export function meanStd(xs: readonly number[]): { mean: number; std: number } {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / Math.max(n, 1);
  const v = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(n - 1, 1);
  return { mean, std: Math.sqrt(v) };
}

/** Pairs of a preference file's part, and their tokenization under the chat template. */
export function preferencePairs(path: string, part: 'train' | 'heldout', limit = 0): PreferencePair[] {
  if (path === '') throw new UserError('data.preferences: set it to a preference JSONL file (e.g. ../shared/data/hh-rlhf/harmless-base_test_0-1811.jsonl.gz)');
  const all = splitPairs(readPreferences(path), part).filter((p) => p.chosen !== p.rejected);
  return limit > 0 ? all.slice(0, limit) : all;
}

export function tokenizePair(tok: Tokenizer, ids: ChatIds, p: PreferencePair): TokenPair {
  return { prompt: promptIds(tok, ids, p.prompt), chosen: renderReply(tok, ids, p.chosen), rejected: renderReply(tok, ids, p.rejected) };
}

/** A conversation so far, rendered with the assistant header to continue from. */
export function promptIds(tok: Tokenizer, ids: ChatIds, prompt: readonly Message[]): number[] {
  return renderChat(tok, ids, prompt, { generationPrompt: true }).ids;
}

/** Scores of (prompt, reply) sequences by a reward model (no autograd), batchRows at a time. */
export function scoreSequences(rm: ScalarModel, seqs: readonly { ids: readonly number[]; replyStart: number }[], batchRows: number): number[] {
  const out: number[] = [];
  const was = rm.training;
  rm.eval();
  lm.noGrad(() => {
    for (let i = 0; i < seqs.length; i += batchRows) {
      const b = sequenceBatch(seqs.slice(i, i + batchRows));
      out.push(...lm.tidy(() => Array.from(rm.scores(lm.fromArray(b.x, [b.rows, b.T]), b.last).toTypedArray())));
    }
  });
  rm.train(was);
  return out;
}

export interface PairAccuracy {
  n: number;
  accuracy: number;
  ci95: [number, number];
  meanMargin: number;
}

/** The reward model's accuracy (score of chosen > rejected) on pairs, with its Wilson interval. */
export function rewardAccuracy(rm: ScalarModel, pairs: readonly TokenPair[], maxReply: number, batchRows: number): PairAccuracy {
  const T = rm.body.config.block_size;
  const c = scoreSequences(rm, pairs.map((p) => fitSequence(p.prompt, p.chosen, T, maxReply)), batchRows);
  const r = scoreSequences(rm, pairs.map((p) => fitSequence(p.prompt, p.rejected, T, maxReply)), batchRows);
  let k = 0;
  let margin = 0;
  c.forEach((v, i) => {
    if (v > r[i]!) k++;
    margin += v - r[i]!;
  });
  return { n: pairs.length, accuracy: k / pairs.length, ci95: wilson(k, pairs.length), meanMargin: margin / pairs.length };
}

/** Reply log-probabilities of both sides of pairs under a model. */
export function pairLogprobs(model: GPT, pairs: readonly TokenPair[], maxReply: number, batchRows: number): { chosen: Float64Array; rejected: Float64Array } {
  const T = model.config.block_size;
  return {
    chosen: replyLogprobs(model, pairs.map((p) => fitSequence(p.prompt, p.chosen, T, maxReply)), batchRows),
    rejected: replyLogprobs(model, pairs.map((p) => fitSequence(p.prompt, p.rejected, T, maxReply)), batchRows),
  };
}

export interface SampleOptions {
  maxNewTokens: number;
  temperature: number;
  topK: number;
  seed: number;
}

/** Replies to rendered prompts through the batched generator (stopping at <|end|>, which is kept); prompts are cut from the left so prompt + reply fit block_size. */
export function sampleReplies(model: GPT, ids: ChatIds, prompts: readonly (readonly number[])[], o: SampleOptions, batch = 32): { prompt: number[]; reply: number[]; logprobs: number[] }[] {
  const T = model.config.block_size;
  const room = Math.max(1, T - o.maxNewTokens);
  const cut = prompts.map((p) => p.slice(Math.max(0, p.length - room)));
  const out: { prompt: number[]; reply: number[]; logprobs: number[] }[] = [];
  for (let i = 0; i < cut.length; i += batch) {
    const part = cut.slice(i, i + batch);
    const gens = generate(model, part, { maxNewTokens: o.maxNewTokens, greedy: o.temperature === 0, processors: samplingProcessors({ temperature: o.temperature, topK: o.topK }), seed: o.seed + i, stopTokens: [ids.end], onFull: 'stop' });
    gens.forEach((g, j) => out.push({ prompt: part[j]!, reply: g.tokens, logprobs: g.logprobs }));
  }
  return out;
}

/** KL(π ‖ π_ref) per response, estimated on samples of π: Σ_t log π(y_t) − log π_ref(y_t), both by full forward passes. */
export function klOnSamples(policy: GPT, ref: GPT, samples: readonly { prompt: readonly number[]; reply: readonly number[] }[], batchRows: number): { mean: number; perResponse: number[] } {
  const seqs = samples.map((s) => ({ ids: [...s.prompt, ...s.reply], replyStart: s.prompt.length }));
  const lp = replyLogprobs(policy, seqs, batchRows);
  const lr = replyLogprobs(ref, seqs, batchRows);
  const per = Array.from(lp, (v, i) => v - lr[i]!);
  return { mean: per.reduce((a, b) => a + b, 0) / Math.max(per.length, 1), perResponse: per };
}
