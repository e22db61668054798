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
import { denseData, multiplicityMask, sortByGroup } from './sparse-slots.js';

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

/** Unit-length routing directions (B, Hr, T, D) as flat data: unit(unit(q) + unit(k)) per token (no autograd). */
function routingDirections(q: Tensor, k: Tensor): Float32Array {
  const [B, H, T, D] = q.shape as [number, number, number, number];
  const qd = denseData(q);
  const kd = denseData(k);
  const out = new Float32Array(B * H * T * D);
  for (let r = 0; r < B * H * T; r++) {
    let nq = 0;
    let nk = 0;
    for (let d = 0; d < D; d++) {
      nq += qd[r * D + d]! ** 2;
      nk += kd[r * D + d]! ** 2;
    }
    nq = 1 / Math.sqrt(nq + 1e-12);
    nk = 1 / Math.sqrt(nk + 1e-12);
    let n = 0;
    for (let d = 0; d < D; d++) {
      const x = qd[r * D + d]! * nq + kd[r * D + d]! * nk;
      out[r * D + d] = x;
      n += x * x;
    }
    n = 1 / Math.sqrt(n + 1e-12);
    for (let d = 0; d < D; d++) out[r * D + d]! *= n;
  }
  return out;
}

/**
 * Causal balanced assignment: affinities dirs·μᵀ, then in position order each token takes its best cluster with
 * room (counts (B·Hr, K) carry what earlier passes already placed; they are updated). Returns clusters (B, Hr, T).
 */
function assign(dirs: Float32Array, centroids: Tensor, B: number, Hr: number, T: number, D: number, capacity: number, counts: Int32Array): Int32Array {
  const K = centroids.shape[1]!;
  const aff = lm.noGrad(() =>
    lm.tidy(() => {
      const c = lm.contiguous(lm.transpose(centroids)); // (Hr, D, K)
      const cB = B === 1 ? c : lm.reshape(lm.contiguous(lm.expand(lm.unsqueeze(c, 0), [B, Hr, D, K])), [B * Hr, D, K]);
      return (lm.matmul(lm.fromArray(dirs, [B * Hr, T, D]), cB).data as Float32Array).slice(); // (B·Hr, T, K), a copy that outlives the scope
    }),
  );
  const out = new Int32Array(B * Hr * T);
  for (let bh = 0; bh < B * Hr; bh++) {
    for (let t = 0; t < T; t++) {
      let best = -Infinity;
      let arg = -1;
      const row = (bh * T + t) * K;
      for (let c = 0; c < K; c++) {
        const a = aff[row + c]!;
        if (counts[bh * K + c]! < capacity && (a > best || arg < 0)) {
          best = a;
          arg = c;
        }
      }
      if (arg < 0) throw new RangeError(`routing attention: every cluster is full (${K} × ${capacity} tokens); the sequence is longer than block_size`);
      counts[bh * K + arg]!++;
      out[bh * T + t] = arg;
    }
  }
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
        const c = clusters[(b * Hr + h) * T + t]!;
        n[h * K + c]!++;
        const src = ((b * Hr + h) * T + t) * D;
        for (let d = 0; d < D; d++) sum[(h * K + c) * D + d]! += dirs[src + d]!;
      }
    }
  }
  for (let hc = 0; hc < Hr * K; hc++) {
    if (n[hc] === 0) continue;
    let norm = 0;
    for (let d = 0; d < D; d++) {
      const x = ema * mu[hc * D + d]! + (1 - ema) * (sum[hc * D + d]! / n[hc]!);
      mu[hc * D + d] = x;
      norm += x * x;
    }
    norm = 1 / Math.sqrt(norm + 1e-12);
    for (let d = 0; d < D; d++) mu[hc * D + d]! *= norm;
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
 */
export function routingAttention(q: Tensor, k: Tensor, v: Tensor, centroids: Tensor, s: RoutingSettings, update: boolean): Tensor {
  const [B, H, T, D] = q.shape as [number, number, number, number];
  const Hl = s.localHeads;
  const Hr = H - Hl;
  const K = s.clusters;
  const parts: Tensor[] = [];
  if (Hl > 0) parts.push(lm.attention(lm.slice(q, 1, 0, Hl), lm.slice(k, 1, 0, Hl), lm.slice(v, 1, 0, Hl), { causal: true, window: s.window }));
  if (Hr > 0) {
    const [qr, kr, vr] = [q, k, v].map((t) => (Hl > 0 ? lm.slice(t, 1, Hl, H) : t)) as [Tensor, Tensor, Tensor];
    const dirs = routingDirections(qr, kr);
    const clusters = assign(dirs, centroids, B, Hr, T, D, s.capacity, new Int32Array(B * Hr * K));
    if (update) emaUpdate(centroids, dirs, clusters, B, Hr, T, D, s.ema);
    const slots = new Int32Array(B * Hr * T);
    const groups = new Int32Array(B * Hr * T);
    for (let i = 0; i < B * Hr; i++) sortByGroup(clusters, i * T, T, K, slots, groups, i * T);
    parts.push(lm.bucketAttention(qr, kr, vr, lm.fromArray(slots, [B, Hr, T]), lm.fromArray(groups, [B, Hr, T]), { window: s.capacity - 1 }));
  }
  return parts.length === 1 ? parts[0]! : lm.concat(parts, 1); // (B, H, T, D)
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
      const slice = (t: Tensor): Tensor => lm.slice(lm.permute(t, [0, 2, 1, 3]), 1, Hl, H);
      const dirs = routingDirections(slice(q), slice(k)); // (B, Hr, T, D)
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
