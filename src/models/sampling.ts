// Choosing the next token from a row of logits: greedy, temperature, top-k and nucleus (top-p) sampling,
// seeded. Works on plain arrays so any model can use it.
import type { Rng } from '../core/index.js';

export interface SamplingOptions {
  /** 0 picks the most likely token (greedy); otherwise logits are divided by it. */
  temperature: number;
  /** Keep only the k most likely tokens (0 = all). */
  topK: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = all). */
  topP: number;
}

export function sampleToken(logits: ArrayLike<number>, options: SamplingOptions, rng: Rng): number {
  const V = logits.length;
  if (options.temperature <= 0) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  // Candidates sorted by logit, descending; truncated by top-k.
  let order = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]!);
  if (options.topK > 0 && options.topK < V) order = order.slice(0, options.topK);
  const maxLogit = logits[order[0]!]!;
  const weights = order.map((i) => Math.exp((logits[i]! - maxLogit) / options.temperature));
  let total = weights.reduce((a, b) => a + b, 0);
  if (options.topP < 1) {
    let acc = 0;
    let keep = 0;
    while (keep < weights.length && acc < options.topP * total) acc += weights[keep++]!;
    order = order.slice(0, Math.max(1, keep));
    weights.length = order.length;
    total = weights.reduce((a, b) => a + b, 0);
  }
  let u = rng.uniform() * total;
  for (let i = 0; i < order.length; i++) {
    u -= weights[i]!;
    if (u < 0) return order[i]!;
  }
  return order[order.length - 1]!;
}
