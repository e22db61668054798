// The native backend's matmul: a typed wrapper over the addon's blocked AVX-512/AVX2/portable GEMM
// (native/src/gemm.cc) and its bf16 sibling (native/src/gemm_bf16.cc). Not the composition of the full native
// backend, which lives beside the other families.
import { getBackend } from '../backend.js';
import type { Kernels, MatmulArgs } from '../kernels.js';
import { loadAddon, tryLoadAddon } from './addon.js';

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
  /** C (+)= op(A)·op(B) from bf16-rounded A and B with fp32 accumulation; the arguments of `matmul`. */
  matmulBf16(
    a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, c: Float32Array, cOffset: number,
    batch: number, M: number, N: number, K: number, transA: boolean, transB: boolean,
    aBatchStride: number, bBatchStride: number, accumulate: boolean,
  ): void;
  /** The bf16 GEMM kernel in use; with a name, switches to one this CPU runs (or throws). */
  gemmBf16Kernel(name?: Bf16GemmKernel): Bf16GemmKernel;
  /** The bf16 GEMM kernels this CPU runs, fastest first, always ending with the 'fp32' fallback. */
  gemmBf16Kernels(): Bf16GemmKernel[];
}

/**
 * The bf16 GEMM's kernels: AMX-BF16 tiles (Sapphire Rapids and later Xeons), AVX512-BF16 vdpbf16ps (Zen 4/5,
 * recent Xeons), or 'fp32' — no bf16 instructions, so `nativeMatmulBf16` runs the fp32 GEMM (exact fp32 results).
 * The environment variable LMFORGE_BF16_GEMM picks one at start-up (e.g. =fp32 to force the fallback).
 */
export type Bf16GemmKernel = 'amx' | 'avx512bf16' | 'fp32';

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

/**
 * C (+)= op(A)·op(B) in bf16 mixed precision, the MatmulArgs contract of `nativeMatmul`: A and B stay fp32 in
 * memory and are rounded to bf16 (nearest even) while packed, products are exact and accumulate in fp32, C is fp32.
 * Relative to the fp32 GEMM each product carries up to ~2⁻⁸ relative error. Without bf16 instructions
 * (`bf16GemmKernel() === 'fp32'`) this is the fp32 GEMM.
 */
export const nativeMatmulBf16: Kernels<Float32Array>['matmul'] = (args: MatmulArgs<Float32Array>): void => {
  gemmAddon().matmulBf16(
    args.a, args.aOffset, args.b, args.bOffset, args.c, args.cOffset,
    args.batch, args.M, args.N, args.K, args.transA, args.transB,
    args.aBatchStride, args.bBatchStride, args.accumulate,
  );
};

/** Which kernel `nativeMatmulBf16` runs on this CPU ('fp32' when it has no bf16 instructions). */
export function bf16GemmKernel(): Bf16GemmKernel {
  return gemmAddon().gemmBf16Kernel();
}

/**
 * The one line a run with bf16 matmuls logs at its start: which kernel runs them, or that they fall back to fp32
 * (a CPU without AVX512-BF16 or AMX, or LMFORGE_BF16_GEMM=fp32) or are emulated (the reference backend). `fallback`
 * is true when the run gets no bf16 speed-up.
 */
export function bf16PrecisionNote(): { line: string; fallback: boolean } {
  if (!tryLoadAddon() || getBackend() !== 'native') {
    return { line: 'precision bf16: the reference backend rounds matmul operands to bf16 in TypeScript (an emulation, no speed-up)', fallback: true };
  }
  const k = bf16GemmKernel();
  if (k === 'fp32') return { line: 'precision bf16: this CPU has no AVX512-BF16 or AMX-BF16 instructions (or LMFORGE_BF16_GEMM=fp32): matmuls fall back to fp32', fallback: true };
  return { line: `precision bf16: matmuls on the ${k === 'amx' ? 'AMX-BF16' : 'AVX512-BF16'} kernel with fp32 accumulation; weights, gradients, optimizer state and norms/softmax/loss stay fp32`, fallback: false };
}
