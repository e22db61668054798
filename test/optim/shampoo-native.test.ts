// The native inverse-root kernel of Shampoo (native/src/shampoo.cc: Householder + implicit QL in float64) against
// the reference path (inverseRoot's cyclic Jacobi, also float64): random and rank-deficient Gram matrices of several
// sizes, absolute and relative ridges, the 4th-power identity at n = 128, and clear errors on bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import { tryLoadAddon } from '../../src/core/native/addon.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { inverseRoot, inverseRoots } from '../../src/optim/shampoo.js';

loadNativeBackend();

/** S = G·Gᵀ + shift·I for a random n×k G (rank min(n, k) when shift is 0). */
function gram(n: number, k: number, seed: number, shift = 0): Float32Array {
  const rng = new lm.Rng(seed);
  const G = Array.from({ length: n * k }, () => rng.normal());
  const S = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let x = i === j ? shift : 0;
      for (let q = 0; q < k; q++) x += G[i * k + q]! * G[j * k + q]!;
      S[i * n + j] = x;
    }
  }
  return S;
}

test('shampoo inverseRoots: the native kernel matches the Jacobi reference (sizes 0–128, full and low rank, absolute and relative ridge)', () => {
  const cases: [n: number, k: number, eps: number, relative: boolean][] = [
    [0, 1, 1e-4, false], [1, 1, 1e-4, false], [2, 3, 1e-4, true], [7, 2, 1e-3, false], [40, 60, 1e-6, true], [40, 5, 1e-4, true], [128, 300, 1e-6, true], [65, 10, 1e-2, false],
  ];
  const jobs = cases.map(([n, k], i) => ({ S: gram(n, k, 11 + i), n, out: new Float32Array(n * n) }));
  cases.forEach(([, , eps, relative], i) => {
    const j = jobs[i]!;
    inverseRoots([j], eps, 4, relative); // native (the backend is native here)
    const ref = new Float32Array(j.n * j.n);
    inverseRoot(j.S, j.n, eps, 4, ref, relative);
    const scale = ref.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
    for (let e = 0; e < ref.length; e++) assert.ok(Math.abs(j.out[e]! - ref[e]!) <= 1e-4 * scale, `case ${i} (n=${j.n}) [${e}]: ${j.out[e]} vs ${ref[e]}`);
  });
  // Several matrices in one call give what one call each gives.
  const batch = cases.map(([n, k], i) => ({ S: gram(n, k, 11 + i), n, out: new Float32Array(n * n) }));
  inverseRoots(batch, 1e-4, 4, true);
  for (let i = 0; i < batch.length; i++) {
    const one = new Float32Array(batch[i]!.n ** 2);
    inverseRoots([{ S: batch[i]!.S, n: batch[i]!.n, out: one }], 1e-4, 4, true);
    assert.deepEqual(batch[i]!.out, one);
  }
});

test('shampoo inverseRoots (native): X⁴·(S + ε·λ_max·I) is the identity at n = 128 for a rank-20 S', () => {
  const n = 128;
  const S = gram(n, 20, 3);
  const X = new Float32Array(n * n);
  inverseRoots([{ S, n, out: X }], 1e-4, 4, true);
  const mm = (a: ArrayLike<number>, b: ArrayLike<number>): Float64Array => {
    const out = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) { const aik = a[i * n + k]!; for (let j = 0; j < n; j++) out[i * n + j] = out[i * n + j]! + aik * b[k * n + j]!; }
    return out;
  };
  // λ_max from the reference's own path is not exposed; the power iteration finds it to plenty of digits.
  let v = new Float64Array(n).fill(1);
  let lmax = 0;
  for (let it = 0; it < 200; it++) {
    const w = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) w[i] = w[i]! + S[i * n + j]! * v[j]!;
    lmax = Math.hypot(...w);
    v = w.map((x) => x / lmax);
  }
  const A = Float64Array.from(S);
  for (let i = 0; i < n; i++) A[i * n + i] = A[i * n + i]! + 1e-4 * lmax;
  const X2 = mm(X, X);
  const I = mm(mm(X2, X2), A);
  let worst = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) worst = Math.max(worst, Math.abs(I[i * n + j]! - (i === j ? 1 : 0)));
  assert.ok(worst < 5e-3, `max |X⁴A − I| = ${worst}`);
});

test('shampoo inverseRoots (native): NaN in S, short arrays and bad ε are one-line errors naming the argument', () => {
  const addon = tryLoadAddon() as unknown as { shampooInverseRoots(S: Float32Array, dims: Int32Array, eps: number, p: number, relative: boolean, out: Float32Array): void };
  const S = gram(4, 4, 1);
  S[5] = NaN;
  assert.throws(() => inverseRoots([{ S, n: 4, out: new Float32Array(16) }], 1e-4, 4, false), /did not converge/);
  assert.throws(() => addon.shampooInverseRoots(new Float32Array(8), Int32Array.of(3), 1e-4, 4, false, new Float32Array(9)), /S: length 8/);
  assert.throws(() => addon.shampooInverseRoots(new Float32Array(9), Int32Array.of(3), 0, 4, false, new Float32Array(9)), /eps: expected a positive/);
  assert.throws(() => addon.shampooInverseRoots(new Float32Array(9), Float64Array.of(3) as unknown as Int32Array, 1e-4, 4, false, new Float32Array(9)), /dims: expected a Int32Array/);
});
