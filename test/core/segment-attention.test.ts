// Document masking (nn/segments.ts through selfAttention's additive mask) on the reference and native backends: a
// packed row of several documents gives each document exactly what attending over it alone gives, forward and
// backward; gradients match central finite differences in float64; native matches reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import { Rng } from '../../src/core/random.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { segmentMask, segmentsAfterEot } from '../../src/nn/segments.js';

const H = 2;
const C = 8;

test('segmentsAfterEot: a new document starts after each end-of-text token, per row', () => {
  const x = Int32Array.from([5, 9, 1, 9, 9, 3, /* row 2 */ 9, 4, 4, 4, 9, 2]);
  assert.deepEqual([...segmentsAfterEot(x, 2, 6, 9)], [0, 0, 1, 1, 2, 3, 0, 1, 1, 1, 1, 2]);
  assert.throws(() => segmentMask(Int32Array.from([0, 0]), 1, 3, 'float32'), /3/);
});

test('a packed row with document masking equals each document attended alone (forward and gradients, both backends)', () => {
  assert.ok(loadNativeBackend().loaded);
  const lens = [5, 1, 11, 7]; // 24 tokens: documents of 5, 1, 11 and 7
  const T = lens.reduce((a, b) => a + b, 0);
  const rng = new Rng(21);
  const qkv = Float32Array.from({ length: 2 * T * 3 * C }, () => rng.normal());
  const gOut = Float32Array.from({ length: 2 * T * C }, () => rng.normal());
  const ids = new Int32Array(2 * T);
  let p = 0;
  lens.forEach((n, d) => { for (let i = 0; i < n; i++) ids[p++] = d; });
  ids.set(ids.subarray(0, T).map((d) => 3 - d), T); // row 2: the same lengths with other ids
  const results: Record<string, { y: number[]; g: number[] }> = {};
  for (const backend of ['reference', 'native'] as const) {
    lm.withBackend(backend, () => lm.tidy(() => {
      const x = lm.requireGrad(lm.fromArray(Float32Array.from(qkv), [2, T, 3 * C]));
      const y = lm.selfAttention(x, H, { mask: segmentMask(ids, 2, T, 'float32') });
      lm.backward(y, lm.fromArray(gOut, [2, T, C]));
      const packed = { y: y.toArray() as number[], g: x.grad!.toArray() as number[] };
      results[backend] = packed;
      for (let b = 0; b < 2; b++) {
        let t0 = 0;
        for (const n of lens) {
          const sub = new Float32Array(n * 3 * C);
          sub.set(qkv.subarray((b * T + t0) * 3 * C, (b * T + t0 + n) * 3 * C));
          const xs = lm.requireGrad(lm.fromArray(sub, [1, n, 3 * C]));
          const ys = lm.selfAttention(xs, H);
          lm.backward(ys, lm.fromArray(gOut.slice((b * T + t0) * C, (b * T + t0 + n) * C), [1, n, C]));
          const ya = ys.toArray() as number[];
          const ga = xs.grad!.toArray() as number[];
          ya.forEach((v, i) => assert.ok(Math.abs(v - packed.y[(b * T + t0) * C + i]!) < 1e-5, `${backend} row ${b} doc at ${t0}: output ${i}`));
          ga.forEach((v, i) => assert.ok(Math.abs(v - packed.g[(b * T + t0) * 3 * C + i]!) < 1e-5, `${backend} row ${b} doc at ${t0}: gradient ${i}`));
          t0 += n;
        }
      }
      // Without the mask the documents see each other: the test can tell.
      const open = lm.selfAttention(lm.fromArray(Float32Array.from(qkv), [2, T, 3 * C]), H).toArray() as number[];
      assert.ok(open.some((v, i) => Math.abs(v - packed.y[i]!) > 1e-3));
    }));
  }
  results.native!.y.forEach((v, i) => assert.ok(Math.abs(v - results.reference!.y[i]!) < 1e-5));
  results.native!.g.forEach((v, i) => assert.ok(Math.abs(v - results.reference!.g[i]!) < 1e-5));
});

test('masked selfAttention gradients match central finite differences (float64, reference)', () => {
  lm.withBackend('reference', () => {
    const T = 7;
    const rng = new Rng(4);
    const x0 = Float64Array.from({ length: T * 3 * C }, () => rng.normal());
    const w = Float64Array.from({ length: T * C }, () => rng.normal());
    const ids = Int32Array.from([0, 0, 0, 1, 1, 2, 2]);
    const f = (v: Float64Array): number => lm.tidy(() => lm.sum(lm.mul(lm.selfAttention(lm.tensor(v, [1, T, 3 * C]), H, { mask: segmentMask(ids, 1, T, 'float64') }), lm.tensor(w, [1, T, C]))).item());
    const analytic = lm.tidy(() => {
      const x = lm.requireGrad(lm.tensor(Float64Array.from(x0), [1, T, 3 * C]));
      lm.backward(lm.sum(lm.mul(lm.selfAttention(x, H, { mask: segmentMask(ids, 1, T, 'float64') }), lm.tensor(w, [1, T, C]))));
      return x.grad!.toArray() as number[];
    });
    const h = 1e-6;
    for (let i = 0; i < x0.length; i++) {
      const p = Float64Array.from(x0), m = Float64Array.from(x0);
      p[i]! += h;
      m[i]! -= h;
      const numeric = (f(p) - f(m)) / (2 * h);
      assert.ok(Math.abs(numeric - analytic[i]!) < 1e-7, `grad[${i}]: autograd ${analytic[i]} vs finite difference ${numeric}`);
    }
  });
});
