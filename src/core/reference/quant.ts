// Reference kernel of the weight-only quantized matmul (QuantWeight in core/kernels.ts): each weight is decoded
// with the same formula the native kernel uses, then multiplied in plain loops. Slow and obvious: the oracle.
// Not quantization itself (models/quantize.ts) and not the autograd op (ops/quant.ts).
import type { FloatArray, Kernels, QuantWeight } from '../kernels.js';

/** The value of W[n, k] (float64 arithmetic on the stored float32 scale and zero). */
export function dequantAt(w: QuantWeight, n: number, k: number): number {
  if (w.bits === 8) {
    const b = w.q[n * w.K + k]!;
    return w.scales[n]! * (b >= 128 ? b - 256 : b);
  }
  // 4-bit: 32 k per 16 bytes; k = 32b + i in the low nibble of byte i, 32b + 16 + i in the high nibble.
  const blk = k >> 5;
  const i = k & 31;
  const byte = w.q[(n * w.K) / 2 + blk * 16 + (i & 15)]!;
  const q = i < 16 ? byte & 15 : byte >> 4;
  const g = n * (w.K / w.groupSize) + Math.floor(k / w.groupSize);
  return w.scales[g]! * (q - w.zeros![g]!);
}

export const quantKernels: Pick<Kernels<FloatArray>, 'quantMatmul'> = {
  quantMatmul({ x, xOffset, w, y, M, trans }) {
    const { N, K } = w;
    const row = new Float64Array(K);
    if (!trans) {
      // y (M, N) = x (M, K)·Wᵀ
      for (let n = 0; n < N; n++) {
        for (let k = 0; k < K; k++) row[k] = dequantAt(w, n, k);
        for (let m = 0; m < M; m++) {
          let s = 0;
          const xo = xOffset + m * K;
          for (let k = 0; k < K; k++) s += x[xo + k]! * row[k]!;
          y[m * N + n] = s;
        }
      }
      return;
    }
    // y (M, K) = x (M, N)·W
    y.fill(0, 0, M * K);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < K; k++) row[k] = dequantAt(w, n, k);
      for (let m = 0; m < M; m++) {
        const g = x[xOffset + m * N + n]!;
        if (g === 0) continue;
        const yo = m * K;
        for (let k = 0; k < K; k++) y[yo + k] = y[yo + k]! + g * row[k]!;
      }
    }
  },
};
