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

export type QuantActivationMode = 'off' | 'decode' | 'all';

/**
 * Where the native quantized matmul rounds activations to int8 to use AVX-512 VNNI: 'decode' (≤ 8 rows, the default
 * on CPUs with avx512vnni), 'all' or 'off' (float activations everywhere, the reference's arithmetic). With a mode,
 * switches to it; LMFORGE_QUANT_VNNI=off|all sets it at start.
 */
export function quantActivationMode(mode?: QuantActivationMode): QuantActivationMode {
  const a = loadAddon() as unknown as { quantVnni(mode?: string): QuantActivationMode };
  return mode === undefined ? a.quantVnni() : a.quantVnni(mode);
}
