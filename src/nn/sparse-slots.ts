// Helpers shared by LSH and Routing attention (lsh-attention.ts, routing-attention.ts): sorting positions into
// slots by group, unit-length rows, and the additive mask that cached decoding attends with. Not the attention
// kernels (core/ops/sparse-attention.ts) and not the hashing or clustering themselves.
import * as lm from '../core/index.js';
import type { Tensor } from '../core/index.js';

/**
 * Stable counting sort of the T positions of one head-round by group: writes the positions ordered by
 * (group, position) into slots[at, at + T) and their groups into sorted[at, at + T). groups[gAt + t] ∈ [0, nGroups).
 */
export function sortByGroup(groups: Int32Array, gAt: number, T: number, nGroups: number, slots: Int32Array, sorted: Int32Array, at: number): void {
  const start = new Int32Array(nGroups + 1);
  for (let t = 0; t < T; t++) start[groups[gAt + t]! + 1]!++;
  for (let g = 0; g < nGroups; g++) start[g + 1]! += start[g]!;
  for (let t = 0; t < T; t++) {
    const g = groups[gAt + t]!;
    const i = at + start[g]!++;
    slots[i] = t;
    sorted[i] = g;
  }
}

/** x / |x| along the last dim, with autograd (|x| floored at 1e-6 so a zero row stays finite). */
export function unitRows(x: Tensor): Tensor {
  return lm.mul(x, lm.rsqrt(lm.addScalar(lm.sum(lm.square(x), x.ndim - 1, true), 1e-12)));
}

/** A contiguous float32 copy of a (B, H, T, D) view's data (no autograd). */
export function denseData(x: Tensor): Float32Array {
  const c = lm.noGrad(() => lm.contiguous(x));
  return (c.data as Float32Array).subarray(c.offset, c.offset + c.size); // a contiguous view may start at an offset
}

/**
 * The additive mask (B, H, Tq, Tk) of a cached pass built from key multiplicities: visit(b, h, t, add) is called
 * for each real query (t < counts[b]) and calls add(j, penalty) once per time the query sees key j (a key seen in
 * two hash rounds counts twice). The mask holds log(count) − penalty where seen and −∞ elsewhere, so one softmax
 * over it equals the log-sum-exp merge of the slots. A padding query sees key 0 (no empty softmax row).
 */
export function multiplicityMask(
  B: number, H: number, Tq: number, Tk: number, counts: readonly number[],
  visit: (b: number, h: number, t: number, add: (j: number, penalty: number) => void) => void,
): Tensor {
  const mask = new Float32Array(B * H * Tq * Tk).fill(-Infinity);
  const mult = new Float32Array(Tk);
  const pen = new Float32Array(Tk);
  const touched: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < Tq; t++) {
        const row = ((b * H + h) * Tq + t) * Tk;
        if (t >= counts[b]!) {
          mask[row] = 0;
          continue;
        }
        visit(b, h, t, (j, penalty) => {
          if (mult[j] === 0) touched.push(j);
          mult[j]!++;
          pen[j] = penalty;
        });
        for (const j of touched) {
          mask[row + j] = Math.log(mult[j]!) - pen[j]!;
          mult[j] = 0;
          pen[j] = 0;
        }
        touched.length = 0;
      }
    }
  }
  return lm.fromArray(mask, [B, H, Tq, Tk]);
}
