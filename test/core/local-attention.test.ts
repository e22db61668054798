// Sliding-window (local) attention through the autograd ops, on the reference and native backends: causality (a
// future token never changes an earlier output), locality (a key more than `window` positions back never changes
// an output), w ≥ T equal to dense, and option validation. Kernel parity and finite differences live in
// native-attention.test.ts, op-cases.ts (gradcheck, parity); this file is not a kernel test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import { Rng } from '../../src/core/random.js';
import type { Tensor } from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';

const BACKENDS = ['reference', 'native'] as const;
const T = 150;
const H = 2;
const C = 16;

function randomQkv(seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: T * 3 * C }, () => rng.normal());
}

/** selfAttention over (1, T, 3C) → rows of (T, C), as plain arrays. */
function rows(qkv: Float32Array, window: number): number[][] {
  return lm.tidy(() => {
    const y = lm.selfAttention(lm.fromArray(qkv, [1, T, 3 * C]), H, { window });
    const flat = y.toArray() as number[];
    return Array.from({ length: T }, (_, t) => flat.slice(t * C, (t + 1) * C));
  });
}

/** The same qkv with position t's q, k and v (or only its k and v) replaced by fresh values. */
function perturb(qkv: Float32Array, t: number, part: 'all' | 'kv', seed: number): Float32Array {
  const rng = new Rng(seed);
  const out = Float32Array.from(qkv);
  for (let c = part === 'all' ? 0 : C; c < 3 * C; c++) out[t * 3 * C + c] = rng.normal() * 3;
  return out;
}

test('causality: changing a future token never changes an earlier output (dense and local)', () => {
  assert.ok(loadNativeBackend().loaded);
  for (const backend of BACKENDS) {
    lm.withBackend(backend, () => {
      for (const window of [0, 1, 7, 40, 200]) {
        const qkv = randomQkv(window + 1);
        const base = rows(qkv, window);
        for (const t0 of [0, 63, 64, 90, T - 1]) {
          const got = rows(perturb(qkv, t0, 'all', t0), window);
          for (let t = 0; t < t0; t++) assert.deepEqual(got[t], base[t], `${backend} window ${window}: row ${t} moved when token ${t0} changed`);
          assert.notDeepEqual(got[t0], base[t0], `${backend} window ${window}: row ${t0} sees itself`);
        }
      }
    });
  }
});

test('locality: changing a key and value more than `window` positions back never changes the output', () => {
  for (const backend of BACKENDS) {
    lm.withBackend(backend, () => {
      for (const window of [1, 5, 20, 64, 100]) {
        const qkv = randomQkv(window + 50);
        const base = rows(qkv, window);
        const j = 30;
        const got = rows(perturb(qkv, j, 'kv', 7), window);
        for (let t = 0; t < T; t++) {
          const sees = t >= j && t < j + window;
          if (sees) assert.notDeepEqual(got[t], base[t], `${backend} window ${window}: row ${t} sees key ${j}`);
          else assert.deepEqual(got[t], base[t], `${backend} window ${window}: row ${t} must not see key ${j}`);
        }
      }
      // Decoding at a cache offset: 4 queries at positions 96..99 over 100 keys, window 10: keys ≤ 86 are out of reach.
      lm.tidy(() => {
        const rng = new Rng(9);
        const r = (n: number): number[] => Array.from({ length: n }, () => rng.normal());
        const q = lm.tensor(r(1 * 2 * 4 * 8), [1, 2, 4, 8]);
        const kData = r(1 * 2 * 100 * 8);
        const vData = r(1 * 2 * 100 * 8);
        const run = (kd: number[], vd: number[]): Tensor => lm.attention(q, lm.tensor(kd, [1, 2, 100, 8]), lm.tensor(vd, [1, 2, 100, 8]), { causal: true, window: 10 });
        const base2 = run(kData, vData).toArray();
        const k2 = [...kData];
        const v2 = [...vData];
        for (let h = 0; h < 2; h++) for (let d = 0; d < 8; d++) {
          k2[(h * 100 + 86) * 8 + d] = 5;
          v2[(h * 100 + 86) * 8 + d] = -5;
        }
        assert.deepEqual(run(k2, v2).toArray(), base2, `${backend}: key 86 is outside every window`);
        for (let h = 0; h < 2; h++) for (let d = 0; d < 8; d++) v2[(h * 100 + 87) * 8 + d] = -5;
        assert.notDeepEqual(run(k2, v2).toArray(), base2, `${backend}: key 87 is inside query 0's window`);
      });
    });
  }
});

test('a window ≥ T computes exactly the dense causal attention, outputs and gradients', () => {
  for (const backend of BACKENDS) {
    lm.withBackend(backend, () => lm.tidy(() => {
      const qkv = lm.requireGrad(lm.fromArray(randomQkv(3), [1, T, 3 * C]));
      const run = (window: number): number[][] => {
        qkv.grad?.dispose();
        qkv.grad = null;
        const y = lm.selfAttention(qkv, H, { window });
        lm.backward(lm.sum(lm.mul(y, y)));
        return [y.toArray() as number[], qkv.grad!.toArray() as number[]];
      };
      const dense = run(0);
      assert.deepEqual(run(T), dense, backend);
      assert.deepEqual(run(10 * T), dense, backend);
      assert.notDeepEqual(run(T - 1)[0], dense[0], backend);
    }));
  }
});

test('bad windows throw a RangeError naming the option', () => {
  lm.tidy(() => {
    const qkv = lm.zeros([1, 4, 3 * C]);
    const x = lm.zeros([1, 2, 4, 8]);
    for (const bad of [-1, 1.5, Number.NaN, Infinity]) {
      assert.throws(() => lm.selfAttention(qkv, H, { window: bad }), (e: unknown) => e instanceof RangeError && /selfAttention: options\.window must be an integer/.test(e.message));
      assert.throws(() => lm.attention(x, x, x, { causal: true, window: bad }), (e: unknown) => e instanceof RangeError && /attention: options\.window/.test(e.message));
    }
    assert.throws(() => lm.attention(x, x, x, { window: 2 }), (e: unknown) => e instanceof RangeError && /window = 2 needs causal/.test(e.message));
    assert.throws(() => lm.selfAttention(qkv, H, { causal: false, window: 2 }), (e: unknown) => e instanceof RangeError && /needs causal/.test(e.message));
    assert.doesNotThrow(() => lm.attention(x, x, x, { window: 0 }));
  });
});
