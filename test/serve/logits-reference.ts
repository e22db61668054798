// The logits processors and the draw as they were before the radix selection (git c721bda, src/serve/logits.ts):
// a full comparison sort of the vocabulary per sampled token. Kept verbatim as the oracle the property test holds
// the fast ones to, and as the "before" side of `npm run bench -- sampling`. Not used by src/.
import type { Rng } from '../../src/core/index.js';
import type { LogitsProcessor } from '../../src/serve/logits.js';

export function topKSorted(k: number): LogitsProcessor {
  return (logits) => {
    if (k === 0 || k >= logits.length) return;
    const kth = Float32Array.from(logits).sort()[logits.length - k]!;
    for (let i = 0; i < logits.length; i++) if (logits[i]! < kth) logits[i] = -Infinity;
  };
}

export function topPSorted(p: number): LogitsProcessor {
  return (logits) => {
    if (p >= 1) return;
    const order = sortedIndices(logits);
    const max = logits[order[0]!]!;
    let total = 0;
    for (const i of order) total += Math.exp(logits[i]! - max);
    let acc = 0;
    let keep = 0;
    while (keep < order.length && acc < p * total) acc += Math.exp(logits[order[keep++]!]! - max);
    for (let j = Math.max(1, keep); j < order.length; j++) logits[order[j]!] = -Infinity;
  };
}

/** Token indices by logit, descending (ties by index). */
function sortedIndices(logits: Float32Array): number[] {
  return Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
}

export function sampleFromSorted(logits: Float32Array, rng: Rng): number {
  const order = sortedIndices(logits).filter((i) => logits[i] !== -Infinity);
  if (order.length === 0) throw new RangeError('sampling: every token was removed by the logits processors');
  const max = logits[order[0]!]!;
  const w = order.map((i) => Math.exp(logits[i]! - max));
  let u = rng.uniform() * w.reduce((a, b) => a + b, 0);
  for (let j = 0; j < order.length; j++) {
    u -= w[j]!;
    if (u < 0) return order[j]!;
  }
  return order[order.length - 1]!;
}
