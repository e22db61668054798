// Logits processors: transformations of one row of next-token logits, applied in list order before a token is
// chosen (Hugging Face's order: repetition penalty, temperature, top-k, top-p). Each works in place on a
// Float32Array copy of the row; a removed token's logit becomes −∞. Plus the final choice (greedy or a seeded draw)
// and log-softmax. Not the generator loop (generate.ts).
//
// Cost per row: top-k is a radix selection of the k-th largest value (O(V)); top-p and the draw walk the surviving
// tokens from the most likely, in an order made by a stable radix sort on the float bits (O(V), no comparisons), so
// the sums they accumulate are added in exactly the order a full comparison sort gives — the token drawn for a seed
// is the same as with the sort, bit for bit.
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
    const kth = kthLargest(logits, k);
    for (let i = 0; i < logits.length; i++) if (logits[i]! < kth) logits[i] = -Infinity;
  };
}

/** Nucleus sampling: keeps the smallest set of most likely tokens whose probability reaches p (1 keeps all). */
export function topP(p: number): LogitsProcessor {
  if (!(p > 0 && p <= 1)) throw new RangeError(`top-p: expected a number in (0, 1], got ${p}`);
  return (logits) => {
    if (p >= 1) return;
    // Tokens already at −∞ add exp(−∞) = 0 to every sum and stay removed, so only the others are ordered.
    const n = orderLive(logits);
    if (n === 0) return;
    const order = scratch.order;
    const max = logits[order[0]!]!;
    let total = 0;
    for (let j = 0; j < n; j++) total += Math.exp(logits[order[j]!]! - max);
    let acc = 0;
    let keep = 0;
    while (keep < n && acc < p * total) acc += Math.exp(logits[order[keep++]!]! - max);
    for (let j = Math.max(1, keep); j < n; j++) logits[order[j]!] = -Infinity;
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

/**
 * Sort keys of float32 values, largest value first: an unsigned integer that orders as the value descends (a
 * positive float's bits grow with it, a negative one's shrink), −0 taken as +0 so that the two tie as they compare.
 */
function descendingKey(bits: number): number {
  if (bits === 0x80000000) return 0x7fffffff;
  return bits & 0x80000000 ? bits >>> 0 : (0x7fffffff - bits) >>> 0;
}

/** Working arrays reused across rows (generation asks for one row at a time; each thread has its own module). */
const scratch = { order: new Int32Array(0), keys: new Uint32Array(0), tmpOrder: new Int32Array(0), tmpKeys: new Uint32Array(0), weights: new Float64Array(0), byIndex: new Float64Array(0), live: 0, count: new Uint32Array(3 << 11) };

function reserve(V: number): void {
  if (scratch.order.length >= V) return;
  scratch.order = new Int32Array(V);
  scratch.keys = new Uint32Array(V);
  scratch.tmpOrder = new Int32Array(V);
  scratch.tmpKeys = new Uint32Array(V);
  scratch.weights = new Float64Array(V);
  scratch.byIndex = new Float64Array(V);
}

function bitsOf(logits: Float32Array): Uint32Array {
  return new Uint32Array(logits.buffer, logits.byteOffset, logits.length);
}

/**
 * Puts the indices of the tokens not at −∞ into scratch.order[0, n), by logit descending and ties by index (the
 * order of a comparison sort on (−logit, index)); returns n. A least-significant-digit radix sort over 11-bit
 * digits of the keys: stable, so tokens gathered in index order keep it among equal logits.
 */
function orderLive(logits: Float32Array): number {
  const V = logits.length;
  reserve(V);
  const bits = bitsOf(logits);
  let order = scratch.order, keys = scratch.keys, tmpOrder = scratch.tmpOrder, tmpKeys = scratch.tmpKeys;
  // The three digits' counts in the same pass that makes the keys (one read of the row instead of four).
  const count = scratch.count;
  count.fill(0);
  let n = 0;
  for (let i = 0; i < V; i++) {
    if (logits[i] === -Infinity) continue;
    const k = descendingKey(bits[i]!);
    order[n] = i;
    keys[n++] = k;
    count[k & 0x7ff]!++;
    count[2048 + ((k >>> 11) & 0x7ff)]!++;
    count[4096 + (k >>> 22)]!++;
  }
  if (n <= 32) {
    // Insertion sort: fewer steps than three counting passes for a handful of tokens (top-k's survivors).
    for (let j = 1; j < n; j++) {
      const k = keys[j]!, o = order[j]!;
      let m = j - 1;
      for (; m >= 0 && keys[m]! > k; m--) {
        keys[m + 1] = keys[m]!;
        order[m + 1] = order[m]!;
      }
      keys[m + 1] = k;
      order[m + 1] = o;
    }
    return n;
  }
  for (let pass = 0; pass < 3; pass++) {
    const shift = 11 * pass, base = 2048 * pass;
    if (count[base + ((keys[0]! >>> shift) & 0x7ff)] === n) continue; // one digit value throughout: this pass would not move anything
    let sum = 0;
    for (let d = base; d < base + 2048; d++) {
      const c = count[d]!;
      count[d] = sum;
      sum += c;
    }
    for (let j = 0; j < n; j++) {
      const k = keys[j]!;
      const at = count[base + ((k >>> shift) & 0x7ff)]!++;
      tmpKeys[at] = k;
      tmpOrder[at] = order[j]!;
    }
    [order, tmpOrder] = [tmpOrder, order];
    [keys, tmpKeys] = [tmpKeys, keys];
  }
  Object.assign(scratch, { order, keys, tmpOrder, tmpKeys });
  return n;
}

/**
 * The k-th largest logit, counting repeats (1 ≤ k < V): a most-significant-digit radix selection — count the tokens
 * per top digit of their keys, keep only the digit where the k-th falls, repeat on the next digit.
 */
function kthLargest(logits: Float32Array, k: number): number {
  const V = logits.length;
  reserve(V);
  const bits = bitsOf(logits);
  const count = scratch.count;
  let cand = scratch.order, keys = scratch.keys, next = scratch.tmpOrder, nextKeys = scratch.tmpKeys;
  for (let i = 0; i < V; i++) {
    cand[i] = i;
    keys[i] = descendingKey(bits[i]!);
  }
  let n = V;
  let rank = k; // the rank still sought among the candidates, from 1
  for (const [shift, mask] of [[21, 0x7ff], [10, 0x7ff], [0, 0x3ff]] as const) {
    count.fill(0, 0, 2048);
    for (let j = 0; j < n; j++) count[(keys[j]! >>> shift) & mask]!++;
    let d = 0;
    while (rank > count[d]!) rank -= count[d++]!;
    let m = 0;
    for (let j = 0; j < n; j++) {
      if (((keys[j]! >>> shift) & mask) !== d) continue;
      nextKeys[m] = keys[j]!;
      next[m++] = cand[j]!;
    }
    [cand, next] = [next, cand];
    [keys, nextKeys] = [nextKeys, keys];
    n = m;
  }
  Object.assign(scratch, { order: cand, keys, tmpOrder: next, tmpKeys: nextKeys });
  return logits[cand[0]!]!; // every candidate left has the same key: the k-th largest value
}

/** The most likely token (lowest index among ties). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/** A draw from softmax(logits) with one uniform number, walking tokens from the most likely. */
export function sampleFrom(logits: Float32Array, rng: Rng): number {
  const n = orderLive(logits);
  if (n === 0) throw new RangeError('sampling: every token was removed by the logits processors');
  const order = scratch.order;
  const max = logits[order[0]!]!;
  const weights = scratch.weights;
  let total = 0;
  for (let j = 0; j < n; j++) {
    const w = Math.exp(logits[order[j]!]! - max);
    weights[j] = w;
    total += w;
  }
  scratch.live = n;
  let u = rng.uniform() * total;
  for (let j = 0; j < n; j++) {
    u -= weights[j]!;
    if (u < 0) return order[j]!;
  }
  return order[n - 1]!;
}

/** The most likely token of the processed row and log softmax(raw)[token]. */
export function greedyWithLogprob(processed: Float32Array, raw: Float32Array): { token: number; logprob: number } {
  const token = argmax(processed);
  return { token, logprob: logSoftmaxAt(raw, token) };
}

/**
 * A draw from the processed row and log softmax(raw)[token] (the model's own log-probability of it). When the
 * processors left the row as it was (temperature 1 and nothing else, as PPO's rollouts sample), the draw's
 * exponentials are the ones logSoftmaxAt would compute: they are summed again in index order, as it sums them, so
 * the log-probability is the same bit for bit without a second pass of V exponentials.
 */
export function sampleWithLogprob(processed: Float32Array, raw: Float32Array, rng: Rng): { token: number; logprob: number } {
  const token = sampleFrom(processed, rng);
  const V = raw.length;
  const a = bitsOf(processed), b = bitsOf(raw);
  let same = processed.length === V;
  for (let i = 0; same && i < V; i++) same = a[i] === b[i];
  const max = processed[scratch.order[0]!]!;
  if (!same || !Number.isFinite(max)) return { token, logprob: logSoftmaxAt(raw, token) };
  // The draw left exp(l − max) of its n live tokens in scratch.weights, in its order; tokens at −∞ add 0.
  const n = scratch.live;
  const byIndex = scratch.byIndex;
  byIndex.fill(0, 0, V);
  for (let j = 0; j < n; j++) byIndex[scratch.order[j]!] = scratch.weights[j]!;
  let sum = 0;
  for (let i = 0; i < V; i++) sum += byIndex[i]!;
  if (!Number.isFinite(sum)) return { token, logprob: logSoftmaxAt(raw, token) };
  return { token, logprob: raw[token]! - max - Math.log(sum) };
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
