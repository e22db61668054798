// The native backend: the C++ kernel families composed into one table. The `Kernels<Float32Array>` type makes a
// missing kernel a compile error. loadNativeBackend() installs it as the active backend when the addon is built.
import { registerNative, nativeAvailable } from '../backend.js';
import type { Kernels } from '../kernels.js';
import { addonLoadError, tryLoadAddon } from './addon.js';
import { nativeAttention } from './attention.js';
import { nativeMatmul, nativeMatmulBf16 } from './gemm.js';
import { nativeGrouped } from './grouped.js';
import { nativeMisc } from './misc.js';
import { nativeQuant } from './quant.js';
import { nativeSparseAttention } from './sparse-attention.js';

export const nativeKernels: Kernels<Float32Array> = {
  ...nativeMisc,
  ...nativeAttention,
  ...nativeGrouped,
  ...nativeQuant,
  ...nativeSparseAttention,
  matmul: nativeMatmul,
  matmulBf16: nativeMatmulBf16,
};

/**
 * Makes the native kernels the active backend for float32 (unless LMFORGE_BACKEND=reference). Returns false,
 * leaving the reference backend active, when the addon is not built; `reason` says why.
 */
export function loadNativeBackend(): { loaded: boolean; reason?: string } {
  if (nativeAvailable()) return { loaded: true };
  const addon = tryLoadAddon();
  if (!addon) return { loaded: false, reason: addonLoadError() };
  // LMFORGE_THREAD_POLICY=fixed keeps every region on all threads (native/src/threads.h), e.g. to time kernels alone.
  if (process.env.LMFORGE_THREAD_POLICY === 'fixed') (addon as unknown as { gemmAdaptiveThreads(on: boolean): boolean }).gemmAdaptiveThreads(false);
  registerNative(nativeKernels);
  return { loaded: true };
}

/**
 * For command-line entry points: loads the native backend, or warns on stderr that the (much slower) reference
 * backend will run, with the reason and the fix.
 */
export function useNativeBackendOrWarn(): void {
  const r = loadNativeBackend();
  if (!r.loaded) {
    process.stderr.write(`warning: native kernels not loaded (${r.reason ?? 'unknown reason'}); running on the slow reference backend. Build them with \`npm install\`.\n`);
  }
}
