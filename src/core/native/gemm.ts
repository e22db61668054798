// The native backend's matmul: a typed wrapper over the addon's blocked AVX-512/AVX2/portable GEMM
// (native/src/gemm.cc). Not the composition of the full native backend, which lives beside the other families.
import type { Kernels, MatmulArgs } from '../kernels.js';
import { nativeAddon } from './addon.js';

/** C (+)= op(A)·op(B) over `batch` matrices, see MatmulArgs; the addon checks every length against the shapes. */
export const nativeMatmul: Kernels<Float32Array>['matmul'] = (args: MatmulArgs<Float32Array>): void => {
  nativeAddon().matmul(
    args.a, args.aOffset, args.b, args.bOffset, args.c, args.cOffset,
    args.batch, args.M, args.N, args.K, args.transA, args.transB,
    args.aBatchStride, args.bBatchStride, args.accumulate,
  );
};
