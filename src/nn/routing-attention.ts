// Routing attention (Roy et al. 2020), causal: a layer's heads split into local heads (sliding window) and routing
// heads. A routing head routes each token by its unit query and key directions averaged (one shared query/key space)
// to one of `clusters` centroids (buffers, mini-batch k-means by EMA in training only), and a token attends to the
// earlier tokens of its cluster and itself. Balanced and causal: each cluster holds at most capacity =
// ⌈block_size / clusters⌉ tokens, and tokens take, in position order, their highest-affinity cluster that still has
// room (the paper's "each cluster takes its top-k tokens" lets a later token evict an earlier one, which would
// change an earlier output). O(T·(clusters + capacity)·D) = O(T^1.5·D) with clusters ≈ √T. Not the projections.
import * as lm from '../core/index.js';
import { Rng, type Tensor } from '../core/index.js';
import type { CachePlan, KVCache } from './kv-cache.js';
import { Module } from './module.js';
import { multiplicityMask, sortByGroup } from './sparse-slots.js';

export interface RoutingSettings {
  heads: number;
  headDim: number;
  /** Centroids per routing head (routing_clusters, 0 resolved to ≈ √block_size). */
  clusters: number;
  /** Tokens a cluster holds at most: ⌈block_size / clusters⌉. */
  capacity: number;
  /** The first localHeads heads attend to a sliding window instead (routing_local_heads). */
  localHeads: number;
  /** Sliding window of the local heads (routing_window). */
  window: number;
  /** EMA decay of the centroids (routing_ema). */
  ema: number;
}

/** ⌈√blockSize⌉ when clusters is 0, else clusters; and the capacity ⌈blockSize / clusters⌉. */
export function routingShape(blockSize: number, clusters: number): { clusters: number; capacity: number } {
  const K = clusters > 0 ? clusters : Math.max(1, Math.round(Math.sqrt(blockSize)));
  return { clusters: K, capacity: Math.ceil(blockSize / K) };
}

/**
 * Unit-length routing directions of heads [h0, H) of (B, H, T, D) q and k, as flat (B, Hr, T, D) data:
 * unit(unit(q) + unit(k)) per token (no autograd). Reads the views through their strides (no contiguous copies).
 */
function routingDirections(q: Tensor, k: Tensor, h0: number): Float32Array {
  const [B, H, T, D] = q.shape as [number, number, number, number];
  const qv = lastDimContiguous(q);
  const kv = lastDimContiguous(k);
  const out = new Float32Array(B * (H - h0) * T * D);
  const qd = qv.data as Float32Array;
  const kd = kv.data as Float32Array;
  const [qB, qH, qT] = qv.strides as [number, number, number];
  const [kB, kH, kT] = kv.strides as [number, number, number];
  let o = 0;
  for (let b = 0; b < B; b++) {
    for (let h = h0; h < H; h++) {
      let qa = qv.offset + b * qB + h * qH;
      let ka = kv.offset + b * kB + h * kH;
      for (let t = 0; t < T; t++, o += D, qa += qT, ka += kT) {
        let nq = 0;
        let nk = 0;
        for (let d = 0; d < D; d++) {
          const x = qd[qa + d]!;
          const y = kd[ka + d]!;
          nq += x * x;
          nk += y * y;
        }
        nq = 1 / Math.sqrt(nq + 1e-12);
        nk = 1 / Math.sqrt(nk + 1e-12);
        let n = 0;
        for (let d = 0; d < D; d++) {
          const x = qd[qa + d]! * nq + kd[ka + d]! * nk;
          out[o + d] = x;
          n += x * x;
        }
        n = 1 / Math.sqrt(n + 1e-12);
        for (let d = 0; d < D; d++) out[o + d]! *= n;
      }
    }
  }
  return out;
}

/** x itself when its last dim is contiguous (rows are read through the other strides), else a contiguous copy. */
function lastDimContiguous(x: Tensor): Tensor {
  return x.strides[3] === 1 || x.shape[3] === 1 ? x : lm.noGrad(() => lm.contiguous(x));
}

/**
 * Causal balanced assignment: affinities dirs·μᵀ, then in position order each token takes its best cluster with
 * room (counts (B·Hr, K) carry what earlier passes already placed; they are updated). Returns clusters (B, Hr, T).
 * Ties go to the lower cluster index. The unconstrained best comes from one native argmax; only a token whose best
 * cluster is full scans the clusters that still have room (kept in a list that shrinks as clusters fill).
 */
function assign(dirs: Float32Array, centroids: Tensor, B: number, Hr: number, T: number, D: number, capacity: number, counts: Int32Array): Int32Array {
  const K = centroids.shape[1]!;
  const out = new Int32Array(B * Hr * T);
  lm.noGrad(() =>
    lm.tidy(() => {
      const muT = lm.transpose(centroids); // (Hr, D, K)
      const open = new Int32Array(K);
      let a: Float32Array = new Float32Array(0);
      let best: Int32Array = new Int32Array(0);
      for (let bh = 0; bh < B * Hr; bh++) {
        if (bh % Hr === 0) {
          // One batch row at a time: (Hr, T, D)·(Hr, D, K), batch dims alike (no broadcasting).
          const b = bh / Hr;
          const rows = B === 1 ? dirs : dirs.slice(b * Hr * T * D, (b + 1) * Hr * T * D);
          const aff = lm.matmul(lm.fromArray(rows, [Hr, T, D]), muT); // (Hr, T, K)
          a = aff.data as Float32Array;
          best = lm.argmax(aff, 2).data as Int32Array; // (Hr, T)
        }
        const cnt = counts.subarray(bh * K, (bh + 1) * K);
        let nOpen = 0;
        for (let c = 0; c < K; c++) if (cnt[c]! < capacity) open[nOpen++] = c;
        for (let t = 0; t < T; t++) {
          const i = bh * T + t;
          const r = (bh % Hr) * T + t; // row of this batch row's affinities
          let arg = best[r]!;
          if (cnt[arg]! >= capacity) {
            if (nOpen === 0) throw new RangeError(`routing attention: every cluster is full (${K} × ${capacity} tokens); the sequence is longer than block_size`);
            const row = r * K;
            arg = -1;
            let top = -Infinity;
            for (let j = 0; j < nOpen; j++) {
              const c = open[j]!;
              const x = a[row + c]!;
              if (arg < 0 || x > top || (x === top && c < arg)) {
                top = x === x ? x : -Infinity; // NaN ranks lowest
                arg = c;
              }
            }
          }
          if (++cnt[arg]! === capacity) {
            let j = 0;
            while (open[j] !== arg) j++;
            open[j] = open[--nOpen]!;
          }
          out[i] = arg;
        }
      }
    }),
  );
  return out;
}

/** Mini-batch k-means step: μ_c ← unit(ema·μ_c + (1 − ema)·mean of the directions routed to c) (no autograd). */
function emaUpdate(centroids: Tensor, dirs: Float32Array, clusters: Int32Array, B: number, Hr: number, T: number, D: number, ema: number): void {
  const K = centroids.shape[1]!;
  const mu = centroids.data as Float32Array;
  const sum = new Float64Array(Hr * K * D);
  const n = new Int32Array(Hr * K);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hr; h++) {
      for (let t = 0; t < T; t++) {
        const r = (b * Hr + h) * T + t;
        const hc = h * K + clusters[r]!;
        n[hc]!++;
        const dst = hc * D;
        const src = r * D;
        for (let d = 0; d < D; d++) sum[dst + d]! += dirs[src + d]!;
      }
    }
  }
  for (let hc = 0; hc < Hr * K; hc++) {
    const m = n[hc]!;
    if (m === 0) continue;
    const at = hc * D;
    let norm = 0;
    for (let d = 0; d < D; d++) {
      const x = ema * mu[at + d]! + (1 - ema) * (sum[at + d]! / m);
      mu[at + d] = x;
      norm += x * x;
    }
    norm = 1 / Math.sqrt(norm + 1e-12);
    for (let d = 0; d < D; d++) mu[at + d]! *= norm;
  }
}

/** Unit-length random centroids (Hr, K, D). */
export function randomCentroids(Hr: number, K: number, D: number, seed: number): Tensor {
  const rng = new Rng(seed);
  const mu = new Float32Array(Hr * K * D);
  for (let i = 0; i < Hr * K; i++) {
    let n = 0;
    for (let d = 0; d < D; d++) n += (mu[i * D + d] = rng.normal()) ** 2;
    for (let d = 0; d < D; d++) mu[i * D + d]! /= Math.sqrt(n);
  }
  return lm.fromArray(mu, [Hr, K, D]);
}

/**
 * Routing attention of (B, H, T, D) q, k, v → (B, H, T, D): heads [0, localHeads) local, the rest routed by
 * `centroids` (Hr, K, D); with update, the centroids take one EMA step. The functional core of RoutingAttention
 * (the long-context benchmark calls it directly).
 * Both kinds of head run in the grouped slot kernel: a routing head's slots are its positions sorted by cluster
 * (a query sees the earlier members of its cluster: window capacity − 1), a local head's are its positions in order,
 * one group (window − 1 earlier positions). When window ≥ capacity one window serves both (a cluster never holds more
 * than capacity), so all heads go in one call over q, k, v as they are: no head slices, copies or concatenation.
 */
export function routingAttention(q: Tensor, k: Tensor, v: Tensor, centroids: Tensor, s: RoutingSettings, update: boolean): Tensor {
  const [B, H, T, D] = q.shape as [number, number, number, number];
  const Hl = s.localHeads;
  const Hr = H - Hl;
  const K = s.clusters;
  const slots = new Int32Array(B * H * T); // (B, H, T) positions in (group, position) order per head
  const groups = new Int32Array(B * H * T); // (B, H, T) their groups; 0 for a local head
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hl; h++) for (let t = 0, at = (b * H + h) * T; t < T; t++) slots[at + t] = t;
  }
  if (Hr > 0) {
    const dirs = routingDirections(q, k, Hl); // (B, Hr, T, D)
    const clusters = assign(dirs, centroids, B, Hr, T, D, s.capacity, new Int32Array(B * Hr * K));
    if (update) emaUpdate(centroids, dirs, clusters, B, Hr, T, D, s.ema);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < Hr; h++) sortByGroup(clusters, (b * Hr + h) * T, T, K, slots, groups, (b * H + Hl + h) * T);
    }
  }
  const slotTensors = (h0: number, h1: number): [Tensor, Tensor] => {
    const pick = (x: Int32Array): Tensor => {
      if (h0 === 0 && h1 === H) return lm.fromArray(x, [B, H, T]);
      const y = new Int32Array(B * (h1 - h0) * T);
      for (let b = 0; b < B; b++) y.set(x.subarray((b * H + h0) * T, (b * H + h1) * T), b * (h1 - h0) * T);
      return lm.fromArray(y, [B, h1 - h0, T]);
    };
    return [pick(slots), pick(groups)];
  };
  if (Hl === 0 || Hr === 0 || s.window >= s.capacity) {
    const [sl, gr] = slotTensors(0, H);
    return lm.bucketAttention(q, k, v, sl, gr, { window: Hl > 0 ? s.window - 1 : s.capacity - 1 }); // (B, H, T, D)
  }
  const heads = (t: Tensor, h0: number, h1: number): Tensor => lm.slice(t, 1, h0, h1);
  const [sl, gl] = slotTensors(0, Hl);
  const [sr, gr] = slotTensors(Hl, H);
  const local = lm.bucketAttention(heads(q, 0, Hl), heads(k, 0, Hl), heads(v, 0, Hl), sl, gl, { window: s.window - 1 });
  const routed = lm.bucketAttention(heads(q, Hl, H), heads(k, Hl, H), heads(v, Hl, H), sr, gr, { window: s.capacity - 1 });
  return lm.concat([local, routed], 1); // (B, H, T, D)
}

export class RoutingAttention extends Module {
  /** (H − localHeads, clusters, D) unit centroids of the routing heads. */
  readonly centroids: Tensor;

  constructor(readonly s: RoutingSettings, seed: number) {
    super();
    if (!(s.localHeads >= 0 && s.localHeads <= s.heads)) throw new RangeError(`RoutingAttention: routing_local_heads = ${s.localHeads}, expected 0..${s.heads}`);
    this.centroids = this.buffer('centroids', randomCentroids(s.heads - s.localHeads, s.clusters, s.headDim, seed));
  }

  /** q, k, v (B, H, T, D) after RoPE → (B, H, T, D); the centroids learn (EMA) in training mode only. */
  forward(q: Tensor, k: Tensor, v: Tensor): Tensor {
    return routingAttention(q, k, v, this.centroids, this.s, this.training);
  }

  /**
   * Cached decoding, q, k, v (B, T, H, D) of the pass's new tokens. The cache keeps each position's cluster per
   * routing head; a new token takes its best cluster with room given the cached positions' clusters (the same
   * position-order rule as the whole-sequence forward) and attends to the cached tokens of its cluster and itself;
   * a local head attends to its last `window` positions. In eval mode (no EMA step) this is exactly the
   * whole-sequence forward's output at each new position.
   */
  forwardCached(q: Tensor, k: Tensor, v: Tensor, cache: KVCache, layer: number, plan: CachePlan): Tensor {
    const [B, T, H, D] = q.shape as [number, number, number, number];
    const Hl = this.s.localHeads;
    const Hr = H - Hl;
    const K = this.s.clusters;
    const cap = cache.shape.capacity;
    cache.write(layer, k, v, plan);
    const kv = cache.view(layer, plan);
    const qh = lm.permute(q, [0, 2, 1, 3]); // (B, H, T, D)
    const side = cache.side(layer, 'routing-clusters', B * Math.max(Hr, 1) * cap); // (B, Hr, capacity)
    if (Hr > 0) {
      // Each row's earlier clusters fill the counts; then the new tokens are placed one by one, row by row.
      const dirs = routingDirections(lm.permute(q, [0, 2, 1, 3]), lm.permute(k, [0, 2, 1, 3]), Hl); // (B, Hr, T, D)
      for (let b = 0; b < B; b++) {
        const counts = new Int32Array(Hr * K);
        for (let h = 0; h < Hr; h++) for (let j = 0; j < plan.starts[b]!; j++) counts[h * K + side[(b * Hr + h) * cap + j]!]!++;
        const n = plan.counts[b]!;
        if (n === 0) continue;
        const rowDirs = new Float32Array(Hr * n * D);
        for (let h = 0; h < Hr; h++) rowDirs.set(dirs.subarray(((b * Hr + h) * T) * D, ((b * Hr + h) * T + n) * D), h * n * D);
        const got = assign(rowDirs, this.centroids, 1, Hr, n, D, this.s.capacity, counts);
        for (let h = 0; h < Hr; h++) for (let t = 0; t < n; t++) side[(b * Hr + h) * cap + plan.starts[b]! + t] = got[h * n + t]!;
      }
    }
    const mask = multiplicityMask(B, H, T, plan.keyLength, plan.counts, (b, h, t, add) => {
      const P = plan.starts[b]! + t;
      if (h < Hl) {
        for (let j = Math.max(0, P - this.s.window + 1); j <= P; j++) add(j, 0);
        return;
      }
      const at = (b * Hr + h - Hl) * cap;
      const g = side[at + P]!;
      for (let j = 0; j <= P; j++) if (side[at + j] === g) add(j, 0);
    });
    return lm.attention(qh, kv.k, kv.v, { mask }); // (B, H, T, D)
  }
}
