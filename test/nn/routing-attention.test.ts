// Routing attention's functional core (src/nn/routing-attention.ts) against a reference written out plainly here:
// directions unit(unit(q) + unit(k)), the causal balanced assignment (in position order, each token takes the first
// best cluster with room, scanning every cluster), one additive mask per head (a routing head sees the earlier tokens
// of its cluster, a local head its last `window` positions) and dense masked attention; outputs and gradients match
// for one and two batch rows, with the local window wider and narrower than the cluster capacity (one grouped-slot
// kernel call or two) and without local heads. The EMA step is checked against its formula.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import type { Tensor } from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { randomCentroids, routingAttention, routingShape, type RoutingSettings } from '../../src/nn/routing-attention.js';

loadNativeBackend();

function unit(x: number[]): number[] {
  const n = 1 / Math.sqrt(x.reduce((a, b) => a + b * b, 0) + 1e-12);
  return x.map((v) => v * n);
}

/** Clusters (B, Hr, T) of the reference assignment, and the directions (B, Hr, T, D) it used. */
function referenceClusters(q: Float32Array, k: Float32Array, mu: Float32Array, s: RoutingSettings, B: number, T: number): { clusters: Int32Array; dirs: number[][] } {
  const { heads: H, headDim: D, localHeads: Hl, clusters: K, capacity } = s;
  const Hr = H - Hl;
  const clusters = new Int32Array(B * Hr * T);
  const dirs: number[][] = [];
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hr; h++) {
      const counts = new Int32Array(K);
      for (let t = 0; t < T; t++) {
        const at = ((b * H + Hl + h) * T + t) * D;
        const qa = unit(Array.from(q.subarray(at, at + D)));
        const ka = unit(Array.from(k.subarray(at, at + D)));
        const d = unit(qa.map((x, i) => x + ka[i]!));
        dirs.push(d);
        let arg = -1;
        let top = -Infinity;
        for (let c = 0; c < K; c++) {
          const a = d.reduce((acc, x, i) => acc + x * mu[(h * K + c) * D + i]!, 0);
          if (counts[c]! < capacity && (arg < 0 || a > top)) {
            top = a;
            arg = c;
          }
        }
        counts[arg]!++;
        clusters[(b * Hr + h) * T + t] = arg;
      }
    }
  }
  return { clusters, dirs };
}

/** Dense masked attention with the reference mask: the routing output written out the long way. */
function referenceAttention(q: Tensor, k: Tensor, v: Tensor, clusters: Int32Array, s: RoutingSettings): Tensor {
  const [B, H, T] = q.shape as [number, number, number, number];
  const Hl = s.localHeads;
  const Hr = H - Hl;
  const mask = new Float32Array(B * H * T * T).fill(-Infinity);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        for (let j = 0; j <= i; j++) {
          const seen = h < Hl ? i - j < s.window : clusters[(b * Hr + h - Hl) * T + i] === clusters[(b * Hr + h - Hl) * T + j];
          if (seen) mask[((b * H + h) * T + i) * T + j] = 0;
        }
      }
    }
  }
  return lm.attention(q, k, v, { mask: lm.fromArray(mask, [B, H, T, T]) });
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const cases: { name: string; B: number; T: number; localHeads: number; window: number; clusters: number }[] = [
  { name: 'one row, window ≥ capacity (one kernel call)', B: 1, T: 40, localHeads: 1, window: 12, clusters: 5 },
  { name: 'two rows, window < capacity (two kernel calls)', B: 2, T: 37, localHeads: 1, window: 3, clusters: 4 },
  { name: 'two rows, two local heads, √T clusters', B: 2, T: 33, localHeads: 2, window: 64, clusters: 0 },
  { name: 'no local heads', B: 2, T: 29, localHeads: 0, window: 8, clusters: 3 },
];

for (const c of cases) {
  test(`routingAttention matches the dense masked reference, outputs and gradients: ${c.name}`, () => {
    const H = 4;
    const D = 8;
    const shape = routingShape(c.T, c.clusters);
    const s: RoutingSettings = { heads: H, headDim: D, ...shape, localHeads: c.localHeads, window: c.window, ema: 0.9 };
    const rng = new lm.Rng(c.T);
    // (B, T, H, D) projections seen as (B, H, T, D), as the model hands them over.
    const raw = [0, 1, 2].map(() => lm.requireGrad(lm.randn([c.B, c.T, H, D], rng, 1)));
    const heads = (t: Tensor): Tensor => lm.permute(t, [0, 2, 1, 3]);
    const mu = randomCentroids(H - c.localHeads, shape.clusters, D, 5);
    const mu0 = Float32Array.from(mu.data as Float32Array);
    lm.tidy(() => {
      const [q, k, v] = raw.map(heads) as [Tensor, Tensor, Tensor];
      const qd = Float32Array.from(lm.contiguous(q).toTypedArray() as Float32Array);
      const kd = Float32Array.from(lm.contiguous(k).toTypedArray() as Float32Array);
      const { clusters, dirs } = referenceClusters(qd, kd, mu0, s, c.B, c.T);
      const w = lm.randn([c.B, H, c.T, D], rng, 1); // a random cotangent
      const grads = (y: Tensor): Float32Array[] => {
        for (const r of raw) r.grad = null;
        lm.backward(lm.sum(lm.mul(y, w)));
        return raw.map((r) => Float32Array.from(r.grad!.toTypedArray() as Float32Array));
      };
      const want = referenceAttention(q, k, v, clusters, s);
      const wantOut = Float32Array.from(want.toTypedArray() as Float32Array);
      const wantGrads = grads(want);
      // backward() frees the graph it walks (the permutes included): fresh views of the same projections.
      const [q2, k2, v2] = raw.map(heads) as [Tensor, Tensor, Tensor];
      const got = routingAttention(q2, k2, v2, mu, s, true);
      assert.ok(maxDiff(got.toTypedArray() as Float32Array, wantOut) < 1e-5, `output differs by ${maxDiff(got.toTypedArray() as Float32Array, wantOut)}`);
      const gotGrads = grads(got);
      for (const [i, name] of ['q', 'k', 'v'].entries()) {
        const d = maxDiff(gotGrads[i]!, wantGrads[i]!);
        assert.ok(d < 1e-4, `d${name} differs by ${d}`);
      }
      // The EMA step: μ_c ← unit(ema·μ_c + (1 − ema)·mean of the directions routed to c), clusters left empty unchanged.
      const Hr = H - c.localHeads;
      const K = shape.clusters;
      const wantMu = Float32Array.from(mu0);
      for (let h = 0; h < Hr; h++) {
        for (let cl = 0; cl < K; cl++) {
          const members: number[][] = [];
          for (let b = 0; b < c.B; b++) for (let t = 0; t < c.T; t++) if (clusters[(b * Hr + h) * c.T + t] === cl) members.push(dirs[(b * Hr + h) * c.T + t]!);
          if (members.length === 0) continue;
          const at = (h * K + cl) * D;
          const next = unit(Array.from({ length: D }, (_, i) => 0.9 * mu0[at + i]! + 0.1 * members.reduce((a, m) => a + m[i]!, 0) / members.length));
          wantMu.set(next, at);
        }
      }
      assert.ok(maxDiff(mu.data as Float32Array, wantMu) < 1e-5, `centroids differ by ${maxDiff(mu.data as Float32Array, wantMu)}`);
    });
    for (const r of raw) r.dispose();
    mu.dispose();
  });
}

test('routingAttention refuses a sequence longer than its clusters can hold', () => {
  const s: RoutingSettings = { heads: 2, headDim: 4, clusters: 2, capacity: 3, localHeads: 1, window: 4, ema: 0.9 };
  const rng = new lm.Rng(3);
  const mu = randomCentroids(1, 2, 4, 1);
  lm.tidy(() => {
    const x = lm.randn([1, 2, 7, 4], rng, 1);
    assert.throws(() => routingAttention(x, x, x, mu, s, false), /every cluster is full/);
  });
  mu.dispose();
});
