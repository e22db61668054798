// Loads lmforge's native addon (build/Release/lmforge.node, built by `npm install` through node-gyp) and types
// the entry points it exports. Not the kernels themselves (native/src/*.cc) nor the Kernels wrappers (gemm.ts, …).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Entry points exported by native/src/*.cc; each validates its arguments and throws a TypeError naming them. */
export interface NativeAddon {
  /** SIMD paths this CPU supports and the OpenMP thread count. */
  cpuInfo(): { avx2: boolean; avx512f: boolean; threads: number };
  /** Sets the OpenMP thread count for later kernels (n ≥ 1). */
  setThreads(n: number): void;
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

/** The package root: the nearest ancestor of this file holding lmforge's package.json (works from src/ and dist/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const parsed: unknown = JSON.parse(readFileSync(manifest, 'utf8'));
      if (typeof parsed === 'object' && parsed !== null && (parsed as { name?: unknown }).name === 'lmforge') return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`core/native/addon: no lmforge package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

let cached: NativeAddon | null = null;

/** The loaded addon (loaded once). Throws with the fix when build/Release/lmforge.node is missing. */
export function nativeAddon(): NativeAddon {
  if (cached) return cached;
  const root = packageRoot();
  const path = join(root, 'build', 'Release', 'lmforge.node');
  if (!existsSync(path)) {
    throw new Error(`core/native/addon: ${path} is missing; run npm install to build the native addon`);
  }
  const require = createRequire(join(root, 'package.json'));
  cached = require(path) as NativeAddon;
  return cached;
}
