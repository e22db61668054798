// A batched left operand times a 2-D right operand runs as one GEMM over the folded rows, also when the left
// operand's matrices are not packed one after another (a slice along the rows, a transposed view, a broadcast):
// those are copied dense first. Checked against plain loops in float64, forward and gradients, on every backend.
import { test } from 'node:test';
import * as lm from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { assertClose } from './harness.js';

const backends: lm.BackendName[] = loadNativeBackend().loaded ? ['reference', 'native'] : ['reference'];
const [B, T, K, N] = [3, 5, 7, 6];

/** out[r, n] = Σ_k a[r, k]·w[k, n] (+ b[n]) over rows given as arrays. */
function rowsTimes(rows: number[][], w: number[], b: number[] | null): number[] {
  return rows.flatMap((row) => Array.from({ length: N }, (_, n) => row.reduce((acc, v, k) => acc + v * w[k * N + n]!, b ? b[n]! : 0)));
}

for (const backend of backends) {
  test(`matmul and linear (${backend}): a row slice, a transposed view and a broadcast left operand fold into one GEMM`, () => lm.withBackend(backend, () => {
    const rng = new lm.Rng(3);
    lm.tidy(() => {
      const full = lm.randn([B, T + 1, K], rng, 1);
      const w = lm.randn([K, N], rng, 1);
      const bias = lm.randn([N], rng, 1);
      for (const t of [full, w, bias]) t.requiresGrad = true;
      const fullArr = full.toArray(), wArr = w.toArray(), bArr = bias.toArray();
      // Rows 1..T of each batch matrix: the slice a ViT takes to drop its class token.
      const sliced = lm.slice(full, 1, 1);
      const rows: number[][] = [];
      for (let b = 0; b < B; b++) for (let t = 1; t <= T; t++) rows.push(fullArr.slice((b * (T + 1) + t) * K, (b * (T + 1) + t + 1) * K));
      const y = lm.linear(sliced, w, bias);
      assertClose(y.toArray(), rowsTimes(rows, wArr, bArr), 1e-5, 1e-5, `${backend} linear of a slice`);
      const z = lm.matmul(sliced, w);
      assertClose(z.toArray(), rowsTimes(rows, wArr, null), 1e-5, 1e-5, `${backend} matmul of a slice`);
      // Gradients of Σ g ⊙ y: dx rows = g·Wᵀ (zero for the sliced-off rows), dW = Σ x_rᵀ g_r, db = Σ g_r.
      const g = lm.randn(y.shape, rng, 1);
      const gArr = g.toArray();
      lm.backward(lm.sum(lm.mul(y, g)));
      const dx = new Array<number>(B * (T + 1) * K).fill(0);
      const dw = new Array<number>(K * N).fill(0);
      const db = new Array<number>(N).fill(0);
      rows.forEach((row, r) => {
        const b = Math.floor(r / T), t = (r % T) + 1;
        for (let n = 0; n < N; n++) {
          const gv = gArr[r * N + n]!;
          db[n] = db[n]! + gv;
          for (let k = 0; k < K; k++) {
            const xi = (b * (T + 1) + t) * K + k;
            dx[xi] = dx[xi]! + gv * wArr[k * N + n]!;
            dw[k * N + n] = dw[k * N + n]! + row[k]! * gv;
          }
        }
      });
      assertClose(full.grad!.toArray(), dx, 1e-5, 1e-5, `${backend} dx through the slice`);
      assertClose(w.grad!.toArray(), dw, 1e-5, 1e-5, `${backend} dW`);
      assertClose(bias.grad!.toArray(), db, 1e-5, 1e-5, `${backend} db`);
      // A transposed view (B, T, K) of a (B, K, T) tensor, and a broadcast (1 → B) left operand.
      const kt = lm.randn([B, K, T], rng, 1);
      const ktArr = kt.toArray();
      const tRows: number[][] = [];
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) tRows.push(Array.from({ length: K }, (_, k) => ktArr[(b * K + k) * T + t]!));
      assertClose(lm.matmul(lm.transpose(kt), w).toArray(), rowsTimes(tRows, wArr, null), 1e-5, 1e-5, `${backend} matmul of a transposed view`);
      const one = lm.randn([1, T, K], rng, 1);
      const oneArr = one.toArray();
      const oneRows = Array.from({ length: T }, (_, t) => oneArr.slice(t * K, (t + 1) * K));
      const bRows = Array.from({ length: B }, () => oneRows).flat();
      assertClose(lm.matmul(lm.expand(one, [B, T, K]), w).toArray(), rowsTimes(bRows, wArr, null), 1e-5, 1e-5, `${backend} matmul of a broadcast`);
    });
  }));
}
