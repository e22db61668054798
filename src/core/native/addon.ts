// Loads the native addon (build/Release/lmforge.node, built by `npm install`) and types its non-kernel entry
// points. Not the native kernel backend: that wraps the same addon's kernels behind the Kernels contract.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface CpuInfo {
  avx2: boolean;
  avx512f: boolean;
  threads: number;
  /** The thread policy (native/src/threads.h): adaptive = one thread while other processes hold the cores. */
  adaptiveThreads: boolean;
  /** Whether the process is in a one-thread spell now, and how many spells it has had. */
  soloNow: boolean;
  soloSpells: number;
}

/** The addon's entry points used outside the kernel table. */
export interface NativeAddon {
  cpuInfo(): CpuInfo;
  setThreads(n: number): void;
  /** Runs the kernels on one thread for ms milliseconds (0 ends it), as the thread policy does under contention. */
  threadPolicySolo(ms: number): void;
  /** A private mapping of the whole file (see native/src/mmap.cc); throws an Error naming the path and errno. */
  mmapFile(path: string): ArrayBuffer;
}

/** This file is dist/src/core/native/addon.js once compiled; the addon sits at <repo>/build/Release. */
export const ADDON_PATH = fileURLToPath(new URL('../../../../build/Release/lmforge.node', import.meta.url));

let cached: { addon: NativeAddon } | { error: string } | undefined;

/** The addon, or null with the reason it could not be loaded (see addonLoadError). */
export function tryLoadAddon(): NativeAddon | null {
  if (!cached) {
    try {
      cached = { addon: createRequire(import.meta.url)(ADDON_PATH) as NativeAddon };
    } catch (e) {
      cached = { error: e instanceof Error ? e.message.split('\n')[0]! : String(e) };
    }
  }
  return 'addon' in cached ? cached.addon : null;
}

/** Why the addon did not load (undefined when it did). */
export function addonLoadError(): string | undefined {
  tryLoadAddon();
  return cached && 'error' in cached ? cached.error : undefined;
}

/**
 * The addon; throws with a fix when it is not built. Kernel families type their own entry points
 * (e.g. `loadAddon() as unknown as GemmAddon` in gemm.ts), hence the open record.
 */
export function loadAddon(): NativeAddon & Record<string, unknown> {
  const a = tryLoadAddon();
  if (!a) throw new Error(`native addon not available (${addonLoadError()}); build it with \`npm install\` or \`npx node-gyp rebuild\``);
  return a as NativeAddon & Record<string, unknown>;
}
