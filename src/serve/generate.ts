// Batched autoregressive generation, shared by `lmforge sample`, the evaluation harness, RL rollouts and the
// server: prompts of different lengths decode together through a KV cache with a length per row, each row with
// its own seeded RNG, logits processors applied in order, and the log-probability of every chosen token under the
// model (the raw distribution, before processors — what a full forward pass gives). A row whose context fills
// block_size either stops or continues from the last half block (learned positions cannot slide).
import * as lm from '../core/index.js';
import { Rng } from '../core/index.js';
import type { GPT } from '../models/gpt.js';
import { greedyWithLogprob, logSoftmaxAt, sampleWithLogprob, type LogitsProcessor } from './logits.js';

export interface GenerateOptions {
  /** New tokens per row at most. */
  maxNewTokens: number;
  /** Choose the most likely token after the processors (else draw from their distribution). */
  greedy: boolean;
  processors?: readonly LogitsProcessor[];
  /** Row b draws from Rng(seed + b) (default seed 0), so a row's tokens do not depend on the rows beside it. */
  seed?: number;
  /** The draw from a processed row (default: sampleWithLogprob's; the sampling bench passes the old sort-based one). */
  sampler?: (logits: Float32Array, rng: Rng) => number;
  /** Stop a row when it produces one of these tokens (the token is kept in its output). */
  stopTokens?: readonly number[];
  /** Stop a row once its decoded continuation contains one of these strings (the caller cuts the text). */
  stopStrings?: { strings: readonly string[]; decode: (ids: readonly number[]) => string };
  /** When a row's context reaches block_size: 'slide' (default) re-feeds its last half block, 'stop' ends the row. */
  onFull?: 'slide' | 'stop';
  /** Called with each new token as it is chosen. */
  onToken?: (row: number, token: number, logprob: number) => void;
}

export interface Generation {
  /** The new tokens (without the prompt). */
  tokens: number[];
  /** log p(token | everything before it) under the model, one per new token. */
  logprobs: number[];
  /** Why the row ended: its token budget, a stop token or string, or a full context with onFull 'stop'. */
  finishReason: 'length' | 'stop' | 'context';
}

function withLogprob(token: number, raw: Float32Array): { token: number; logprob: number } {
  return { token, logprob: logSoftmaxAt(raw, token) };
}

export function generate(model: GPT, prompts: readonly (readonly number[])[], options: GenerateOptions): Generation[] {
  const B = prompts.length;
  if (B === 0) return [];
  prompts.forEach((p, b) => {
    if (p.length === 0) throw new RangeError(`generate: prompt ${b} is empty (it must hold at least one token)`);
  });
  const block = model.config.block_size;
  const V = model.config.vocab_size;
  const seed = options.seed ?? 0;
  const rngs = prompts.map((_, b) => new Rng(seed + b));
  const stops = new Set(options.stopTokens ?? []);
  const tokens = prompts.map((p) => [...p]);
  const out: Generation[] = prompts.map(() => ({ tokens: [], logprobs: [], finishReason: 'length' }));
  const active = prompts.map(() => options.maxNewTokens > 0);
  const feeds = prompts.map((p) => p.slice(-block));
  const wasTraining = model.training;
  model.eval();
  const cache = model.newCache(B);
  try {
    while (active.some((a) => a)) {
      for (let b = 0; b < B; b++) {
        if (!active[b] || cache.lengths[b]! + feeds[b]!.length <= block) continue;
        if (options.onFull === 'stop') {
          active[b] = false;
          out[b]!.finishReason = 'context';
        } else {
          cache.lengths[b] = 0;
          feeds[b] = tokens[b]!.slice(-Math.max(1, Math.floor(block / 2)));
        }
      }
      if (!active.some((a) => a)) break;
      const counts = feeds.map((f, b) => (active[b] ? f.length : 0));
      const T = Math.max(...counts);
      const idx = new Int32Array(B * T);
      feeds.forEach((f, b) => {
        if (active[b]) idx.set(f, b * T);
      });
      const rows = lm.tidy(() => model.forward(lm.fromArray(idx, [B, T]), undefined, { cache, counts, last: 1 }).logits.toTypedArray() as Float32Array); // (B, 1, V)
      for (let b = 0; b < B; b++) {
        if (!active[b]) continue;
        const row = rows.subarray(b * V, (b + 1) * V);
        const processed = Float32Array.from(row);
        const state = { tokens: tokens[b]!, promptLength: prompts[b]!.length };
        for (const p of options.processors ?? []) p(processed, state);
        const { token: next, logprob } = options.greedy ? greedyWithLogprob(processed, row)
          : options.sampler ? withLogprob(options.sampler(processed, rngs[b]!), row) : sampleWithLogprob(processed, row, rngs[b]!);
        const g = out[b]!;
        tokens[b]!.push(next);
        g.tokens.push(next);
        g.logprobs.push(logprob);
        options.onToken?.(b, next, logprob);
        feeds[b] = [next];
        if (stops.has(next) || (options.stopStrings && options.stopStrings.strings.some((s) => s !== '' && options.stopStrings!.decode(g.tokens).includes(s)))) {
          g.finishReason = 'stop';
          active[b] = false;
        } else if (g.tokens.length >= options.maxNewTokens) {
          active[b] = false;
        }
      }
    }
  } finally {
    cache.dispose();
    model.train(wasTraining);
  }
  return out;
}
