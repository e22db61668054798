// Reference causal attention over gathered, grouped slots (Reformer / Routing attention, see BucketAttentionArgs in
// kernels.ts): plain loops, one query slot at a time, the oracle for native/src/sparse-attention.cc.
// Not the hashing or clustering that picks the slots (nn/lsh-attention.ts, nn/routing-attention.ts).
import type { BucketAttentionArgs, BucketAttentionBackwardArgs, FloatArray, Kernels, StridedArg } from '../kernels.js';

type SparseKernels = Pick<Kernels<FloatArray>, 'bucketAttention' | 'bucketAttentionBackward'>;

function row(arg: StridedArg, b: number, h: number, t: number): number {
  return arg.offset + b * arg.strides[0]! + h * arg.strides[1]! + t * arg.strides[2]!;
}

/** Throws a RangeError naming the bad field (sizes, rounds, window, or a slot outside [0, T)). */
export function checkBucketArgs(kernel: string, a: BucketAttentionArgs<FloatArray>): void {
  const { B, H, T, N, rounds, window } = a;
  if (!(rounds >= 1 && N % rounds === 0)) throw new RangeError(`${kernel}: N = ${N} slots must be a multiple of rounds (${rounds})`);
  if (!(Number.isInteger(window) && window >= 0)) throw new RangeError(`${kernel}: window must be an integer ≥ 0, got ${window}`);
  if (a.slots.length < B * H * N || a.groups.length < B * H * N) throw new RangeError(`${kernel}: slots and groups must hold B·H·N = ${B * H * N} entries`);
  for (let i = 0; i < B * H * N; i++) {
    const p = a.slots[i]!;
    if (!(p >= 0 && p < T)) throw new RangeError(`${kernel}: slot ${i} holds position ${p}, outside [0, ${T})`);
    const L = N / rounds;
    if (i % L !== 0 && (a.groups[i]! < a.groups[i - 1]! || (a.groups[i] === a.groups[i - 1] && p <= a.slots[i - 1]!))) {
      throw new RangeError(`${kernel}: slots/groups entry ${i} breaks the (group, position) order of its round`);
    }
  }
}

/**
 * Visits every query slot of head (b, h) with the key positions it sees: fn(p, keys, pens) where keys lists the
 * positions of the visible key slots (in slot order) and pens[i] the penalty of keys[i] (selfPenalty or 0).
 */
function eachQuery(a: BucketAttentionArgs<FloatArray>, b: number, h: number, fn: (p: number, keys: number[], pens: number[]) => void): void {
  const { slots, groups, H, N, rounds, window, selfPenalty } = a;
  const L = N / rounds;
  const base = (b * H + h) * N;
  for (let n = 0; n < N; n++) {
    const from = Math.max(n - (n % L), n - window);
    const p = slots[base + n]!;
    const g = groups[base + n]!;
    const keys: number[] = [];
    const pens: number[] = [];
    for (let m = from; m <= n; m++) {
      const j = slots[base + m]!;
      if (j > p || groups[base + m] !== g) continue;
      keys.push(j);
      pens.push(j === p ? selfPenalty : 0);
    }
    fn(p, keys, pens);
  }
}

function dot(x: StridedArg<FloatArray>, xo: number, y: StridedArg<FloatArray>, yo: number, D: number): number {
  let s = 0;
  for (let d = 0; d < D; d++) s += x.data[xo + d]! * y.data[yo + d]!;
  return s;
}

export const sparseAttentionKernels: SparseKernels = {
  // Per slot: s_m = scale·q_p·k_m − pen_m, lse_n = log Σ exp(s_m), o_n = Σ exp(s_m − lse_n) v_m; merged per position.
  bucketAttention(a) {
    checkBucketArgs('bucketAttention', a);
    const { q, v, out, lse, B, H, T, D, scale } = a;
    const k = keysOf(a);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let t = 0; t < T; t++) {
          lse[(b * H + h) * T + t] = -Infinity;
          out.data.fill(0, row(out, b, h, t), row(out, b, h, t) + D);
        }
        eachQuery(a, b, h, (p, keys, pens) => {
          const qo = row(q, b, h, p);
          const s = keys.map((j, i) => scale * dot(q, qo, k, row(k, b, h, j), D) - pens[i]!);
          let mx = -Infinity;
          for (const x of s) mx = Math.max(mx, x);
          if (keys.length === 0) return;
          let sum = 0;
          for (const x of s) sum += Math.exp(x - mx);
          const lseN = mx + Math.log(sum);
          const li = (b * H + h) * T + p;
          const prev = lse[li]!;
          const hi = Math.max(prev, lseN);
          const a0 = prev === -Infinity ? 0 : Math.exp(prev - hi);
          const a1 = Math.exp(lseN - hi);
          const merged = hi + Math.log(a0 + a1);
          const keepOld = a0 / (a0 + a1);
          const wNew = a1 / (a0 + a1);
          const oo = row(out, b, h, p);
          for (let d = 0; d < D; d++) {
            let o = 0;
            keys.forEach((j, i) => (o += Math.exp(s[i]! - lseN) * v.data[row(v, b, h, j) + d]!));
            out.data[oo + d] = out.data[oo + d]! * keepOld + o * wNew;
          }
          lse[li] = merged;
        });
      }
    }
  },

  // With P_m = exp(s_m − L_p) (the merged normaliser) and δ_p = gout_p·out_p:
  // dS_m = P_m (gout_p·v_m − δ_p); gq_p += scale·dS_m k_m; gk_m += scale·dS_m q_p; gv_m += P_m gout_p.
  bucketAttentionBackward(a: BucketAttentionBackwardArgs<FloatArray>) {
    checkBucketArgs('bucketAttentionBackward', a);
    const { q, v, out, lse, gout, gq, gv, H, T, D, scale, B } = a;
    const k = keysOf(a);
    // With unit keys the key gradient first lands on k̂ (gkn), then maps to the raw k below.
    const gk = a.unitKeys ? new Float64Array(a.gk.length) : a.gk;
    const flat = (b: number, h: number, t: number): number => ((b * H + h) * T + t) * D;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        eachQuery(a, b, h, (p, keys, pens) => {
          const L = lse[(b * H + h) * T + p]!;
          if (L === -Infinity) return;
          const qo = row(q, b, h, p);
          const go = row(gout, b, h, p);
          const delta = dot(gout, go, out, row(out, b, h, p), D);
          keys.forEach((j, i) => {
            const ko = row(k, b, h, j);
            const vo = row(v, b, h, j);
            const P = Math.exp(scale * dot(q, qo, k, ko, D) - pens[i]! - L);
            const dS = P * (dot(gout, go, v, vo, D) - delta);
            for (let d = 0; d < D; d++) {
              gq[flat(b, h, p) + d] = gq[flat(b, h, p) + d]! + scale * dS * k.data[ko + d]!;
              gk[flat(b, h, j) + d] = gk[flat(b, h, j) + d]! + scale * dS * q.data[qo + d]!;
              gv[flat(b, h, j) + d] = gv[flat(b, h, j) + d]! + P * gout.data[go + d]!;
            }
          });
        });
      }
    }
    if (!a.unitKeys) return;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let t = 0; t < T; t++) {
          const ko = row(a.k, b, h, t);
          let ss = 0;
          for (let d = 0; d < D; d++) ss += a.k.data[ko + d]! ** 2;
          const r = 1 / Math.sqrt(ss + 1e-12);
          let kg = 0;
          for (let d = 0; d < D; d++) kg += a.k.data[ko + d]! * r * gk[flat(b, h, t) + d]!;
          for (let d = 0; d < D; d++) a.gk[flat(b, h, t) + d] = a.gk[flat(b, h, t) + d]! + r * (gk[flat(b, h, t) + d]! - a.k.data[ko + d]! * r * kg);
        }
      }
    }
  },
};

/** The keys the kernel attends with: k itself, or its unit rows (a dense (B, H, T, D) copy) with unitKeys. */
function keysOf(a: BucketAttentionArgs<FloatArray>): StridedArg<FloatArray> {
  if (!a.unitKeys) return a.k;
  const { B, H, T, D } = a;
  const out = new Float64Array(B * H * T * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const ko = row(a.k, b, h, t);
        let ss = 0;
        for (let d = 0; d < D; d++) ss += a.k.data[ko + d]! ** 2;
        const r = 1 / Math.sqrt(ss + 1e-12);
        for (let d = 0; d < D; d++) out[((b * H + h) * T + t) * D + d] = a.k.data[ko + d]! * r;
      }
    }
  }
  return { data: out, offset: 0, strides: [H * T * D, T * D, D] };
}
