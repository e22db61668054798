// Typed wrapper of the native quantized matmul (native/src/quant.cc) behind the Kernels contract. Not the kernel
// and not the autograd op: it only passes QuantMatmulArgs to the addon, which checks every length.
import type { Kernels, QuantMatmulArgs } from '../kernels.js';
import { loadAddon } from './addon.js';

interface QuantAddon {
  quantMatmul(
    x: Float32Array, xOffset: number, q: Uint8Array, scales: Float32Array, zeros: Float32Array | null, y: Float32Array,
    M: number, N: number, K: number, bits: number, groupSize: number, trans: boolean,
  ): void;
}

export const nativeQuant: Pick<Kernels<Float32Array>, 'quantMatmul'> = {
  quantMatmul({ x, xOffset, w, y, M, trans }: QuantMatmulArgs<Float32Array>): void {
    (loadAddon() as unknown as QuantAddon).quantMatmul(x, xOffset, w.q, w.scales, w.zeros, y, M, w.N, w.K, w.bits, w.groupSize, trans);
  },
};
