// Reference kernels of the grouped matrix products (mixture of experts): plain loops, one group of rows per
// expert. The oracle for native/src/moe.cc; not the routing (src/nn/moe.ts).
import type { FloatArray, IndexArray, Kernels } from '../kernels.js';

type GroupedKernels = Pick<Kernels<FloatArray>, 'groupedMatmul' | 'groupedMatmulGradW'>;

/** Checks the offsets contract (G + 1 entries from 0, never decreasing) and returns S = offsets[G]. */
function rowsOf(kernel: string, offsets: IndexArray, G: number): number {
  if (offsets.length < G + 1) throw new RangeError(`${kernel}: offsets has ${offsets.length} entries, expected G + 1 = ${G + 1}`);
  if (offsets[0] !== 0) throw new RangeError(`${kernel}: offsets[0] is ${offsets[0]}, expected 0`);
  for (let g = 0; g < G; g++) {
    if (offsets[g + 1]! < offsets[g]!) throw new RangeError(`${kernel}: offsets[${g + 1}] = ${offsets[g + 1]} is less than offsets[${g}] = ${offsets[g]}`);
  }
  return offsets[G]!;
}

export const groupedKernels: GroupedKernels = {
  groupedMatmul(x, w, out, offsets, G, K, N, transW, accumulate) {
    rowsOf('groupedMatmul', offsets, G);
    for (let g = 0; g < G; g++) {
      const wg = g * K * N;
      for (let r = offsets[g]!; r < offsets[g + 1]!; r++) {
        for (let j = 0; j < N; j++) {
          let s = 0;
          // W_g (K, N): (k, j) at k·N + j; stored (N, K) when transW: at j·K + k.
          for (let k = 0; k < K; k++) s += x[r * K + k]! * w[wg + (transW ? j * K + k : k * N + j)]!;
          out[r * N + j] = accumulate ? out[r * N + j]! + s : s;
        }
      }
    }
  },
  groupedMatmulGradW(x, gy, gw, offsets, G, K, N, accumulate) {
    rowsOf('groupedMatmulGradW', offsets, G);
    for (let g = 0; g < G; g++) {
      for (let k = 0; k < K; k++) {
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let r = offsets[g]!; r < offsets[g + 1]!; r++) s += x[r * K + k]! * gy[r * N + j]!;
          const at = (g * K + k) * N + j;
          gw[at] = accumulate ? gw[at]! + s : s;
        }
      }
    }
  },
};
