// Backend selection: which kernel table runs an op. The native table (C++ addon) serves float32/int32 when it
// is built; the reference table serves float64 always and everything when native is off or unavailable.
// LMFORGE_BACKEND=reference forces the reference backend (useful for debugging a suspected kernel bug).
import type { DType } from './dtype.js';
import type { FloatArray, Kernels } from './kernels.js';
import { referenceKernels } from './reference/index.js';
import { tryLoadAddon } from './native/addon.js';

export type BackendName = 'native' | 'reference';

let nativeKernels: Kernels<Float32Array> | null = null;
let active: BackendName = 'reference';

/** Installs the native kernel table (done once by core/native/index.ts when the addon loads). */
export function registerNative(kernels: Kernels<Float32Array>): void {
  nativeKernels = kernels;
  if (process.env.LMFORGE_BACKEND !== 'reference') active = 'native';
}

export function nativeAvailable(): boolean {
  return nativeKernels !== null;
}

export function getBackend(): BackendName {
  return active;
}

export function setBackend(name: BackendName): void {
  if (name === 'native' && !nativeKernels) throw new Error('setBackend: the native addon is not loaded (run npm install to build it)');
  active = name;
}

/** Runs fn with `name` as the active backend, restoring the previous one after. */
export function withBackend<T>(name: BackendName, fn: () => T): T {
  const prev = active;
  setBackend(name);
  try {
    return fn();
  } finally {
    active = prev;
  }
}

/**
 * The kernels for a dtype. float64 always goes to the reference backend. The cast is sound because a
 * float32 tensor's arrays are Float32Array, which is all the native table is ever handed.
 */
export function kernelsFor(dtype: DType): Kernels<FloatArray> {
  if (active === 'native' && nativeKernels && dtype !== 'float64') return nativeKernels as unknown as Kernels<FloatArray>;
  return referenceKernels;
}

/** Sets the native kernels' thread count (no effect on the reference backend). */
export function setThreads(n: number): void {
  tryLoadAddon()?.setThreads(n);
}
