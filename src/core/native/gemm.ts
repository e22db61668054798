// The native backend's matmul: a typed wrapper over the addon's blocked AVX-512/AVX2/portable GEMM
// (native/src/gemm.cc). Not the composition of the full native backend, which lives beside the other families.
import type { Kernels, MatmulArgs } from '../kernels.js';
import { loadAddon } from './addon.js';

/** The addon's GEMM entry points (native/src/gemm.cc). */
export interface GemmAddon {
  /** C (+)= op(A)·op(B), batched; see MatmulArgs in core/kernels.ts. */
  matmul(
    a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, c: Float32Array, cOffset: number,
    batch: number, M: number, N: number, K: number, transA: boolean, transB: boolean,
    aBatchStride: number, bBatchStride: number, accumulate: boolean,
  ): void;
  /** The GEMM micro-kernel family in use ('avx512' | 'avx2' | 'generic'); with a name, switches to it if supported. */
  gemmIsa(name?: string): string;
  /**
   * Whether GEMM drops to one thread when worker threads have lately been slow to get a core (a busy shared
   * machine); on by default. Sets it and returns the previous setting.
   */
  gemmAdaptiveThreads(on: boolean): boolean;
}

export function gemmAddon(): GemmAddon {
  return loadAddon() as unknown as GemmAddon;
}

/** C (+)= op(A)·op(B) over `batch` matrices, see MatmulArgs; the addon checks every length against the shapes. */
export const nativeMatmul: Kernels<Float32Array>['matmul'] = (args: MatmulArgs<Float32Array>): void => {
  gemmAddon().matmul(
    args.a, args.aOffset, args.b, args.bOffset, args.c, args.cOffset,
    args.batch, args.M, args.N, args.K, args.transA, args.transB,
    args.aBatchStride, args.bBatchStride, args.accumulate,
  );
};
