// Reformer's LSH attention (Kitaev et al. 2020), causal: shared QK (keys are the unit-length queries), angular LSH
// h(x) = argmax([xR; −xR]) with a fresh random rotation R per hash round (seeded: new per training call, fixed at
// evaluation), positions sorted by (bucket, position), each query attending to its own bucket, the hash rounds merged
// by log-sum-exp weights, and oneself masked unless nothing else is there (a finite penalty). Causal for real: a
// query sees the last 2·bucket_size − 1 earlier members of its bucket (Reformer's "own chunk and the one before" of
// the sorted order would let a later token move the chunk borders and so change an earlier output). Cached decoding
// reproduces the whole-sequence forward exactly (see forwardCached). Not the QKV projections (attention.ts).
import * as lm from '../core/index.js';
import { hashUniform, Rng, type Tensor } from '../core/index.js';
import type { CachePlan, KVCache } from './kv-cache.js';
import { Module } from './module.js';
import { multiplicityMask, sortByGroup, unitRows } from './sparse-slots.js';

/**
 * Subtracted from a query's score against its own key. exp(−100) is below float32's normal range, so oneself only
 * counts when nothing else is there (with unit keys, other scores trail one's own by at most 2|q|/√D, far below
 * 100 for any sane |q|), while s − 100 keeps ~1e-5 absolute precision in float32 (Reformer's 1e5 would keep 1e-2).
 */
export const LSH_SELF_PENALTY = 100;

export interface LshSettings {
  heads: number;
  headDim: number;
  /** Hash rounds (lsh_n_hashes). */
  nHashes: number;
  /** lsh_bucket_size: the mean bucket size at block_size; a query sees at most 2·bucketSize − 1 earlier members. */
  bucketSize: number;
  /** Buckets per round (even), fixed by block_size so that a position's bucket never depends on the length. */
  nBuckets: number;
  /** Seeds the rotations (evaluation uses it as is; training derives one per call). */
  seed: number;
}

/** Buckets per round for a context: block_size / bucket_size rounded to an even number ≥ 2. */
export function lshBucketCount(blockSize: number, bucketSize: number): number {
  return Math.max(2, 2 * Math.round(blockSize / (2 * bucketSize)));
}

/** The random rotations of one call, (H, D, R·nb/2): N(0, 1) entries from the seed. */
function rotations(s: LshSettings, seed: number): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(s.heads * s.headDim * s.nHashes * (s.nBuckets / 2));
  for (let i = 0; i < out.length; i++) out[i] = rng.normal();
  return out;
}

/**
 * Buckets (B, H, R, T) of the rows of x (B, H, T, D): per round r, argmax over j of [x·R_r; −x·R_r] (no autograd).
 */
export function lshBuckets(x: Tensor, s: LshSettings, seed: number): Int32Array {
  const [B, H, T, D] = x.shape as [number, number, number, number];
  const half = s.nBuckets / 2;
  const R = s.nHashes;
  const X = R * half;
  return lm.noGrad(() =>
    lm.tidy(() => {
      const rot = rotations(s, seed);
      const rotB = new Float32Array(B * rot.length);
      for (let b = 0; b < B; b++) rotB.set(rot, b * rot.length);
      const proj = lm.reshape(lm.matmul(lm.reshape(lm.contiguous(x), [B * H, T, D]), lm.fromArray(rotB, [B * H, D, X])), [B * H, T, R, half]);
      // argmax over [x·R_r; −x·R_r] for every (head, position, round): the largest and the smallest entry by two native
      // reduces over (BH, T, R, half), then the one of larger magnitude (the largest wins ties, as the first half).
      const hi = lm.argmax(proj, 3).data as Int32Array;
      const lo = lm.argmax(lm.neg(proj), 3).data as Int32Array;
      const p = proj.data as Float32Array;
      const buckets = new Int32Array(B * H * R * T);
      for (let bh = 0; bh < B * H; bh++) {
        for (let t = 0; t < T; t++) {
          for (let r = 0; r < R; r++) {
            const i = (bh * T + t) * R + r;
            const at = i * half;
            buckets[(bh * R + r) * T + t] = p[at + hi[i]!]! >= -p[at + lo[i]!]! ? hi[i]! : half + lo[i]!;
          }
        }
      }
      return buckets;
    }),
  );
}

/**
 * LSH attention of (B, H, T, D) queries and values → (B, H, T, D), keys = unit queries; `seed` picks the rotations.
 * The functional core of LshAttention.forward (the long-context benchmark calls it directly).
 */
export function lshAttention(q: Tensor, v: Tensor, s: LshSettings, seed: number): Tensor {
  const [B, H, T] = q.shape as [number, number, number, number];
  const R = s.nHashes;
  const buckets = lshBuckets(q, s, seed); // (B, H, R, T)
  const slots = new Int32Array(B * H * R * T);
  const groups = new Int32Array(B * H * R * T);
  for (let i = 0; i < B * H * R; i++) sortByGroup(buckets, i * T, T, s.nBuckets, slots, groups, i * T);
  // Shared QK: q goes in as the keys too, normalised inside the kernel (its gradient flows back to q twice).
  return lm.bucketAttention(q, q, v, lm.fromArray(slots, [B, H, R * T]), lm.fromArray(groups, [B, H, R * T]), {
    window: 2 * s.bucketSize - 1, rounds: R, selfPenalty: LSH_SELF_PENALTY, unitKeys: true,
  });
}

export class LshAttention extends Module {
  private calls = 0;

  constructor(readonly s: LshSettings) {
    super();
    if (s.nBuckets % 2 !== 0 || s.nBuckets < 2) throw new RangeError(`LshAttention: nBuckets must be even and ≥ 2, got ${s.nBuckets}`);
  }

  /** The rotation seed of a pass: a fresh one per training call, the fixed one at evaluation. */
  private passSeed(): number {
    return this.training ? Math.floor(hashUniform(this.s.seed, ++this.calls) * 2 ** 31) : this.s.seed;
  }

  /** q, k, v (B, H, T, D) after RoPE → (B, H, T, D). k is unused: LSH shares QK (keys are the unit queries). */
  forward(q: Tensor, v: Tensor): Tensor {
    return lshAttention(q, v, this.s, this.passSeed());
  }

  /**
   * Cached decoding, q and v (B, T, H, D) of the pass's new tokens. The cache holds the unit queries as keys and, per
   * position, its bucket in every round (evaluation rotations). A new token at position P attends, in each round, to
   * itself (penalised) and the last 2·bucket_size − 1 cached positions of its bucket; the rounds merge as one softmax
   * over the keys counted with multiplicity: exactly the whole-sequence forward's output at P (in eval mode).
   */
  forwardCached(q: Tensor, v: Tensor, cache: KVCache, layer: number, plan: CachePlan): Tensor {
    const [B, T, H] = q.shape as [number, number, number, number];
    const R = this.s.nHashes;
    const cap = cache.shape.capacity;
    const qh = lm.permute(q, [0, 2, 1, 3]); // (B, H, T, D)
    cache.write(layer, unitRows(q), v, plan);
    const kv = cache.view(layer, plan);
    const fresh = lshBuckets(qh, this.s, this.s.seed); // (B, H, R, T)
    const side = cache.side(layer, 'lsh-buckets', B * H * R * cap); // (B, H, R, capacity)
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let r = 0; r < R; r++) {
          for (let t = 0; t < plan.counts[b]!; t++) side[((b * H + h) * R + r) * cap + plan.starts[b]! + t] = fresh[((b * H + h) * R + r) * T + t]!;
        }
      }
    }
    const W = 2 * this.s.bucketSize - 1;
    const mask = multiplicityMask(B, H, T, plan.keyLength, plan.counts, (b, h, t, add) => {
      const P = plan.starts[b]! + t;
      for (let r = 0; r < R; r++) {
        const at = ((b * H + h) * R + r) * cap;
        const g = side[at + P]!;
        add(P, LSH_SELF_PENALTY);
        let seen = 0;
        for (let j = P - 1; j >= 0 && seen < W; j--) {
          if (side[at + j] === g) {
            add(j, 0);
            seen++;
          }
        }
      }
    });
    return lm.attention(qh, kv.k, kv.v, { mask }); // (B, H, T, D)
  }
}
