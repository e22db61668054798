// Reference kernels for embedding lookup, gather and scatter-add, and batched matmul.
import type { FloatArray, Kernels } from '../kernels.js';

type IndexingKernels = Pick<Kernels<FloatArray>, 'embedding' | 'embeddingBackward' | 'gather' | 'scatterAdd' | 'matmul'>;

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
};
