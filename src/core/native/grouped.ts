// Typed wrapper of the native grouped matrix products (native/src/moe.cc) behind the Kernels contract. Not the
// kernels (the C++ side checks every length and the offsets) and not the autograd op (core/ops/grouped.ts).
import type { IndexArray, Kernels } from '../kernels.js';
import { loadAddon } from './addon.js';

type F = Float32Array;

interface GroupedAddon {
  groupedMatmul(x: F, w: F, out: F, offsets: IndexArray, G: number, K: number, N: number, transW: boolean, accumulate: boolean): void;
  groupedMatmulGradW(x: F, gy: F, gw: F, offsets: IndexArray, G: number, K: number, N: number, accumulate: boolean): void;
}

let addon: GroupedAddon | null = null;
function lib(): GroupedAddon {
  addon ??= loadAddon() as unknown as GroupedAddon;
  return addon;
}

export const nativeGrouped: Pick<Kernels<F>, 'groupedMatmul' | 'groupedMatmulGradW'> = {
  groupedMatmul: (x, w, out, offsets, G, K, N, transW, accumulate) => lib().groupedMatmul(x, w, out, offsets, G, K, N, transW, accumulate),
  groupedMatmulGradW: (x, gy, gw, offsets, G, K, N, accumulate) => lib().groupedMatmulGradW(x, gy, gw, offsets, G, K, N, accumulate),
};
