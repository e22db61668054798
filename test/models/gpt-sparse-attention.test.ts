// Routing and LSH attention inside GPT: causality for every attention variant (a later token never changes an
// earlier logit), cached decoding (one token at a time and in chunks, learned positions and RoPE) against the
// whole-sequence forward, the centroids' EMA (training only, saved as buffers), training steps, and config errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { GPT, type GPTConfig } from '../../src/models/gpt.js';
import { lshBuckets } from '../../src/nn/lsh-attention.js';
import { RoutingAttention } from '../../src/nn/routing-attention.js';

loadNativeBackend();

const base: Partial<GPTConfig> = { vocab_size: 40, block_size: 32, n_layer: 2, n_head: 4, n_embd: 32, bias: true };
const variants: Record<string, Partial<GPTConfig>> = {
  dense: {},
  local: { attention_window: 5 },
  routing: { attention: 'routing', routing_window: 4, routing_local_heads: 1 },
  lsh: { attention: 'lsh', lsh_bucket_size: 2, lsh_n_hashes: 2 },
  'routing (rope, clusters 3, layer 1 only, layer 0 local)': { attention: 'routing', routing_clusters: 3, sparse_layers: '1', attention_window: 6, position: 'rope' },
  'lsh (rope, 3 rounds)': { attention: 'lsh', lsh_bucket_size: 3, lsh_n_hashes: 3, position: 'rope' },
};

function tokens(n: number, seed: number): number[] {
  const rng = new lm.Rng(seed);
  return Array.from({ length: n }, () => Math.floor(rng.uniform() * 40));
}

function fullLogits(model: GPT, ids: number[]): Float32Array {
  return lm.tidy(() => lm.noGrad(() => Float32Array.from(model.forward(lm.tensor(ids, [1, ids.length], 'int32')).logits.toTypedArray() as Float32Array)));
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

for (const [name, extra] of Object.entries(variants)) {
  test(`${name}: changing a later token never changes an earlier logit`, () => {
    const model = new GPT({ ...base, ...extra }, 3).eval();
    const ids = tokens(28, 1);
    const a = fullLogits(model, ids);
    for (const at of [5, 17, 27]) {
      const changed = [...ids];
      changed[at] = (changed[at]! + 7) % 40;
      const b = fullLogits(model, changed);
      const V = 40;
      assert.ok(maxDiff(a.subarray(0, at * V), b.subarray(0, at * V)) < 1e-5, `position < ${at} changed`);
      assert.ok(maxDiff(a.subarray(at * V), b.subarray(at * V)) > 1e-4, `changing position ${at} changed nothing after it`);
    }
    model.dispose();
  });

  test(`${name}: cached decoding reproduces the whole-sequence logits (one token at a time and in chunks)`, () => {
    const model = new GPT({ ...base, ...extra }, 5).eval();
    const ids = tokens(30, 2);
    const want = fullLogits(model, ids);
    const V = 40;
    for (const step of [1, 4]) {
      const cache = model.newCache(1);
      for (let at = 0; at < ids.length; at += step) {
        const piece = ids.slice(at, at + step);
        const got = lm.tidy(() => Float32Array.from(model.forwardCachedLast(lm.tensor(piece, [1, piece.length], 'int32'), cache, piece.length).toTypedArray() as Float32Array));
        const d = maxDiff(got, want.subarray(at * V, (at + piece.length) * V));
        assert.ok(d < 2e-4, `step ${step}, positions ${at}..${at + piece.length - 1}: max |diff| ${d}`);
      }
      cache.dispose();
    }
    model.dispose();
  });
}

test('cached decoding of ragged rows matches each row decoded alone (routing and lsh)', () => {
  for (const extra of [variants.routing!, variants.lsh!]) {
    const model = new GPT({ ...base, ...extra }, 9).eval();
    const rows = [tokens(12, 3), tokens(12, 4)];
    const cache = model.newCache(2);
    const prompt = lm.tensor([...rows[0]!.slice(0, 6), ...rows[1]!.slice(0, 6)], [2, 6], 'int32');
    lm.tidy(() => model.forward(prompt, undefined, { cache, counts: [6, 3], last: 1 }));
    const got = lm.tidy(() => model.forward(lm.tensor([rows[0]![6]!, 0, rows[1]![3]!, rows[1]![4]!], [2, 2], 'int32'), undefined, { cache, counts: [1, 2], last: 1 }).logits.toArray());
    const V = 40;
    const want0 = fullLogits(model, rows[0]!.slice(0, 7)).subarray(6 * V);
    const want1 = fullLogits(model, rows[1]!.slice(0, 5)).subarray(4 * V);
    assert.ok(maxDiff(got.slice(0, V), want0) < 2e-4, 'row 0');
    assert.ok(maxDiff(got.slice(V), want1) < 2e-4, 'row 1');
    cache.dispose();
    model.dispose();
  }
});

test('routing centroids are buffers that move by EMA in training only; training steps lower the loss', () => {
  const model = new GPT({ ...base, ...variants.routing!, routing_ema: 0.9 }, 11);
  const names = model.namedBuffers().map(([n]) => n);
  assert.ok(names.includes('transformer.h.0.attn.routing.centroids'), names.join(', '));
  const routing = (model.transformer.h.items[0]!.attn.sparse as RoutingAttention);
  const before = Float32Array.from(routing.centroids.data as Float32Array);
  const ids = tokens(29, 6);
  const x = lm.tensor(ids.slice(0, 28), [1, 28], 'int32');
  const y = lm.tensor(ids.slice(1), [1, 28], 'int32');
  model.eval();
  lm.tidy(() => lm.noGrad(() => model.forward(x, y)));
  assert.equal(maxDiff(before, routing.centroids.data as Float32Array), 0, 'eval moved the centroids');
  model.train();
  const losses: number[] = [];
  for (let s = 0; s < 12; s++) {
    lm.tidy(() => {
      const { loss } = model.forward(x, y);
      losses.push(loss!.item());
      lm.backward(loss!);
      for (const p of model.parameters()) {
        if (!p.grad) continue;
        const d = p.data as Float32Array;
        const g = p.grad.data as Float32Array;
        for (let i = 0; i < d.length; i++) d[i]! -= 0.05 * g[i]!;
        p.grad.dispose();
        p.grad = null;
      }
    });
  }
  assert.ok(maxDiff(before, routing.centroids.data as Float32Array) > 1e-4, 'training did not move the centroids');
  assert.ok(losses.every(Number.isFinite) && losses[losses.length - 1]! < losses[0]!, `losses ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  model.dispose();
});

test('bad sparse attention settings are refused naming the field', () => {
  assert.throws(() => new GPT({ ...base, attention: 'routing', routing_local_heads: 5 }), /routing_local_heads/);
  assert.throws(() => new GPT({ ...base, attention: 'lsh', sparse_layers: '0,7' }), /sparse_layers/);
  assert.throws(() => new GPT({ ...base, attention: 'routing', routing_clusters: 64 }), /routing_clusters/);
});

test('LSH buckets are argmax([xR; −xR]) of the seeded rotations, worked out entry by entry', () => {
  const [B, T, H, D, half] = [2, 60, 3, 16, 5];
  const s = { heads: H, headDim: D, nHashes: 2, bucketSize: 8, nBuckets: 2 * half, seed: 1 };
  const x = lm.randn([B, H, T, D], new lm.Rng(3), 1);
  const got = lshBuckets(x, s, 5); // (B, H, R, T)
  // The rotations (H, D, R·half) are drawn from the call's seed in this order (lsh-attention.ts rotations()).
  const rng = new lm.Rng(5);
  const rot = Float64Array.from({ length: H * D * 2 * half }, () => rng.normal());
  const xd = lm.contiguous(x).toArray();
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        for (let r = 0; r < 2; r++) {
          let best = -Infinity;
          let arg = 0;
          for (let j = 0; j < half; j++) {
            let v = 0;
            for (let d = 0; d < D; d++) v += xd[((b * H + h) * T + t) * D + d]! * rot[(h * D + d) * 2 * half + r * half + j]!;
            if (v > best) [best, arg] = [v, j];
            if (-v > best) [best, arg] = [-v, half + j];
          }
          assert.equal(got[((b * H + h) * 2 + r) * T + t], arg, `b ${b} h ${h} t ${t} round ${r}`);
        }
      }
    }
  }
});
