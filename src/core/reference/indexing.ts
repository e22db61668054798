// Reference kernels for embedding lookup, gather and scatter-add, and batched matmul (fp32, and bf16 mixed precision).
import type { FloatArray, Kernels } from '../kernels.js';

type IndexingKernels = Pick<Kernels<FloatArray>, 'embedding' | 'embeddingBackward' | 'gather' | 'scatterAdd' | 'matmul' | 'matmulBf16'>;

function checkIndex(kernel: string, value: number, limit: number, position: number): void {
  if (!(value >= 0 && value < limit)) {
    throw new RangeError(`${kernel}: index ${value} at position ${position} is outside [0, ${limit})`);
  }
}

export const indexingKernels: IndexingKernels = {
  embedding(weight, ids, out, n, C, V) {
    for (let i = 0; i < n; i++) {
      const id = ids[i]!;
      checkIndex('embedding', id, V, i);
      for (let j = 0; j < C; j++) out[i * C + j] = weight[id * C + j]!;
    }
  },

  embeddingBackward(gy, ids, gw, n, C) {
    for (let i = 0; i < n; i++) {
      const id = ids[i]!;
      for (let j = 0; j < C; j++) gw[id * C + j] = gw[id * C + j]! + gy[i * C + j]!;
    }
  },

  gather(x, idx, out, outer, r, k, inner) {
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < k; j++) {
        for (let n = 0; n < inner; n++) {
          const p = (o * k + j) * inner + n;
          const i = idx[p]!;
          checkIndex('gather', i, r, p);
          out[p] = x[(o * r + i) * inner + n]!;
        }
      }
    }
  },

  scatterAdd(src, idx, out, outer, r, k, inner) {
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < k; j++) {
        for (let n = 0; n < inner; n++) {
          const p = (o * k + j) * inner + n;
          const i = idx[p]!;
          checkIndex('scatterAdd', i, r, p);
          const q = (o * r + i) * inner + n;
          out[q] = out[q]! + src[p]!;
        }
      }
    }
  },

  matmul({ a, aOffset, b, bOffset, c, cOffset, batch, M, N, K, transA, transB, aBatchStride, bBatchStride, accumulate }) {
    for (let bi = 0; bi < batch; bi++) {
      const ao = aOffset + bi * aBatchStride;
      const bo = bOffset + bi * bBatchStride;
      const co = cOffset + bi * M * N;
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let p = 0; p < K; p++) {
            const av = transA ? a[ao + p * M + i]! : a[ao + i * K + p]!;
            const bv = transB ? b[bo + j * K + p]! : b[bo + p * N + j]!;
            s += av * bv;
          }
          c[co + i * N + j] = accumulate ? c[co + i * N + j]! + s : s;
        }
      }
    }
  },

  // The oracle of the bf16 GEMM: the fp32 product of bf16-rounded copies of A's and B's matrices.
  matmulBf16(args) {
    const aLen = args.batch === 1 || args.aBatchStride === 0 ? args.M * args.K : (args.batch - 1) * args.aBatchStride + args.M * args.K;
    const bLen = args.batch === 1 || args.bBatchStride === 0 ? args.K * args.N : (args.batch - 1) * args.bBatchStride + args.K * args.N;
    const a = roundToBf16(args.a.subarray(args.aOffset, args.aOffset + aLen));
    const b = roundToBf16(args.b.subarray(args.bOffset, args.bOffset + bLen));
    indexingKernels.matmul({ ...args, a, aOffset: 0, b, bOffset: 0 });
  },
};

/**
 * A copy of x with every value rounded to bf16 (the top 16 bits of its fp32 pattern, round to nearest even; NaN
 * stays NaN), as the AVX512-BF16 conversion does. bf16 keeps fp32's 8-bit exponent, so only precision is lost.
 */
export function roundToBf16<F extends FloatArray>(x: F): F {
  const out = x.slice() as F;
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < out.length; i++) {
    f[0] = out[i]!;
    const bits = u[0]!;
    if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) continue; // NaN
    u[0] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 0) & 0xffff0000;
    out[i] = f[0];
  }
  return out;
}
