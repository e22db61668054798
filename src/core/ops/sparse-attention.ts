// Causal attention over gathered, grouped slots with autograd: the core that Reformer (LSH) and Routing attention
// share (kernel contract: BucketAttentionArgs in kernels.ts). q, k, v are (B, H, T, D), views with a contiguous last
// dim read in place; slots (B, H, N) say which position sits in each slot and groups (B, H, N) its bucket or cluster.
// Not the hashing or clustering that fills the slots (nn/lsh-attention.ts, nn/routing-attention.ts).
import { record } from '../autograd.js';
import type { FloatArray, StridedArg } from '../kernels.js';
import { ShapeError } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { alloc, dense, expectNdim, fdata, idata, kernels, sameDtype } from './util.js';

export interface BucketAttentionOptions {
  /** How many earlier slots of its own group a query slot may see (besides itself). */
  window: number;
  /** The N slots of a head form `rounds` rounds of N/rounds slots (hash rounds); a query never looks across a round. */
  rounds?: number;
  /** Subtracted from the score of a query's own position (Reformer's "unless nothing else"); 0 = none. */
  selfPenalty?: number;
  /** Score scale, 1/√D by default. */
  scale?: number;
  /** Attend with unit keys k/|k|, normalised inside the kernel (Reformer's shared QK passes q as k). */
  unitKeys?: boolean;
}

function headArg(t: Tensor): StridedArg<FloatArray> {
  return { data: fdata('bucketAttention', t), offset: t.offset, strides: [t.strides[0]!, t.strides[1]!, t.strides[2]!] };
}

function lastDimContiguous(t: Tensor): Tensor {
  return t.strides[t.ndim - 1] === 1 || t.shape[t.ndim - 1] === 1 ? t : dense(t);
}

/**
 * Causal attention inside groups of gathered slots → (B, H, T, D). Each slot is a softmax over the last `window`
 * earlier slots of its group (positions ≤ its own) and itself; the slots of one position (one per hash round, or
 * none) merge by log-sum-exp weights (one softmax over their union). A position in no slot gets 0.
 */
export function bucketAttention(q: Tensor, k: Tensor, v: Tensor, slots: Tensor, groups: Tensor, options: BucketAttentionOptions): Tensor {
  for (const [t, n] of [[q, 'q'], [k, 'k'], [v, 'v']] as const) expectNdim('bucketAttention', t, 4, n);
  expectNdim('bucketAttention', slots, 3, 'slots');
  sameDtype('bucketAttention', q, k, v);
  const [B, H, T, D] = q.shape as [number, number, number, number];
  for (const t of [k, v]) {
    if (t.shape.some((d, i) => d !== q.shape[i])) throw new ShapeError(`bucketAttention: q ${q.describe()}, k ${k.describe()}, v ${v.describe()} must share one (B, H, T, D) shape`);
  }
  const N = slots.shape[2]!;
  if (slots.shape[0] !== B || slots.shape[1] !== H) throw new ShapeError(`bucketAttention: slots ${slots.describe()} must be [${B}, ${H}, N]`);
  if (groups.shape.some((d, i) => d !== slots.shape[i]) || groups.ndim !== 3) throw new ShapeError(`bucketAttention: groups ${groups.describe()} must match slots ${slots.describe()}`);
  const window = options.window;
  const rounds = options.rounds ?? 1;
  if (!(Number.isInteger(window) && window >= 0)) throw new RangeError(`bucketAttention: options.window must be an integer ≥ 0, got ${window}`);
  if (!(Number.isInteger(rounds) && rounds >= 1 && N % rounds === 0)) throw new RangeError(`bucketAttention: options.rounds = ${rounds} must be an integer ≥ 1 dividing the ${N} slots`);
  const selfPenalty = options.selfPenalty ?? 0;
  if (!Number.isFinite(selfPenalty) || selfPenalty < 0) throw new RangeError(`bucketAttention: options.selfPenalty must be a finite number ≥ 0, got ${selfPenalty}`);
  const qc = lastDimContiguous(q);
  const kc = lastDimContiguous(k);
  const vc = lastDimContiguous(v);
  const sc = dense(slots);
  const gc = dense(groups);
  const out = alloc([B, H, T, D], q.dtype);
  const lse = alloc([B, H, T], q.dtype);
  const kern = kernels(q);
  const base = {
    q: headArg(qc), k: headArg(kc), v: headArg(vc), out: headArg(out), lse: fdata('bucketAttention', lse),
    slots: idata('bucketAttention', sc), groups: idata('bucketAttention', gc),
    B, H, T, D, N, rounds, window, selfPenalty, scale: options.scale ?? 1 / Math.sqrt(D), unitKeys: options.unitKeys ?? false,
  };
  kern.bucketAttention(base);
  return record('bucketAttention', [q, k, v], out, (g) => {
    const goc = lastDimContiguous(g);
    const gq = alloc(q.shape, q.dtype, true);
    const gk = alloc(k.shape, k.dtype, true);
    const gv = alloc(v.shape, v.dtype, true);
    kern.bucketAttentionBackward({ ...base, gout: headArg(goc), gq: fdata('bucketAttention', gq), gk: fdata('bucketAttention', gk), gv: fdata('bucketAttention', gv) });
    if (goc !== g) goc.dispose();
    return [gq, gk, gv];
  });
}
