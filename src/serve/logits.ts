// Logits processors: transformations of one row of next-token logits, applied in list order before a token is
// chosen (Hugging Face's order: repetition penalty, temperature, top-k, top-p). Each works in place on a
// Float32Array copy of the row; a removed token's logit becomes −∞. Plus the final choice (greedy or a seeded draw)
// and log-softmax. Not the generator loop (generate.ts).
import type { Rng } from '../core/index.js';

/** What a processor may look at: the row's tokens so far (prompt and generated). */
export interface RowState {
  tokens: readonly number[];
  promptLength: number;
}

export type LogitsProcessor = (logits: Float32Array, row: RowState) => void;

/** Divides by t (t > 0); t = 0 means greedy and is handled by the chooser, not here. */
export function temperature(t: number): LogitsProcessor {
  if (!(t > 0)) throw new RangeError(`temperature: expected a number > 0, got ${t}`);
  return (logits) => {
    if (t === 1) return;
    for (let i = 0; i < logits.length; i++) logits[i] = logits[i]! / t;
  };
}

/** Keeps the k largest logits (ties at the k-th value kept too); k = 0 keeps all. */
export function topK(k: number): LogitsProcessor {
  if (!(Number.isInteger(k) && k >= 0)) throw new RangeError(`top-k: expected an integer ≥ 0, got ${k}`);
  return (logits) => {
    if (k === 0 || k >= logits.length) return;
    const kth = Float32Array.from(logits).sort()[logits.length - k]!;
    for (let i = 0; i < logits.length; i++) if (logits[i]! < kth) logits[i] = -Infinity;
  };
}

/** Nucleus sampling: keeps the smallest set of most likely tokens whose probability reaches p (1 keeps all). */
export function topP(p: number): LogitsProcessor {
  if (!(p > 0 && p <= 1)) throw new RangeError(`top-p: expected a number in (0, 1], got ${p}`);
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

/** CTRL's repetition penalty θ: logits of tokens already in the row are divided by θ if positive, multiplied if not. */
export function repetitionPenalty(theta: number): LogitsProcessor {
  if (!(theta > 0)) throw new RangeError(`repetition penalty: expected a number > 0, got ${theta}`);
  return (logits, row) => {
    if (theta === 1) return;
    for (const t of new Set(row.tokens)) {
      const l = logits[t]!;
      logits[t] = l > 0 ? l / theta : l * theta;
    }
  };
}

/**
 * OpenAI's frequency and presence penalties: logit_j − c_j·frequency − [c_j > 0]·presence, where c_j counts token j
 * among the row's generated tokens (not the prompt). Either may be negative (encouraging repeats); 0 and 0 do nothing.
 */
export function frequencyPresencePenalty(frequency: number, presence: number): LogitsProcessor {
  if (!Number.isFinite(frequency) || !Number.isFinite(presence)) throw new RangeError(`frequency/presence penalty: expected finite numbers, got ${frequency}, ${presence}`);
  return (logits, row) => {
    if (frequency === 0 && presence === 0) return;
    const counts = new Map<number, number>();
    for (let i = row.promptLength; i < row.tokens.length; i++) counts.set(row.tokens[i]!, (counts.get(row.tokens[i]!) ?? 0) + 1);
    for (const [t, c] of counts) logits[t] = logits[t]! - c * frequency - presence;
  };
}

/** Token indices by logit, descending (ties by index). */
function sortedIndices(logits: Float32Array): number[] {
  return Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
}

/** The most likely token (lowest index among ties). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/** A draw from softmax(logits) with one uniform number, walking tokens from the most likely. */
export function sampleFrom(logits: Float32Array, rng: Rng): number {
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

/** log softmax(row)[token], accumulated in float64. */
export function logSoftmaxAt(row: ArrayLike<number>, token: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return row[token]! - max - Math.log(sum);
}

/** The usual sampling settings as a processor list (repetition penalty, temperature, top-k, top-p). */
export function samplingProcessors(o: { temperature: number; topK?: number; topP?: number; repetitionPenalty?: number }): LogitsProcessor[] {
  const out: LogitsProcessor[] = [];
  if (o.repetitionPenalty !== undefined && o.repetitionPenalty !== 1) out.push(repetitionPenalty(o.repetitionPenalty));
  if (o.temperature > 0) out.push(temperature(o.temperature));
  if (o.topK) out.push(topK(o.topK));
  if (o.topP !== undefined && o.topP < 1) out.push(topP(o.topP));
  return out;
}
