// Loads lmforge's native addon (build/Release/lmforge.node, built by `npm install` through node-gyp) once.
// Not the typed kernel wrappers: those live beside this file, one per kernel family (attention.ts, …).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** This file is dist/src/core/native/addon.js once compiled; the package root is four levels up. */
const ADDON_PATH = fileURLToPath(new URL('../../../../build/Release/lmforge.node', import.meta.url));

let cached: Record<string, unknown> | null = null;

/** The addon's exports, loaded on first use; throws with the fix when the addon has not been built. */
export function loadAddon(): Record<string, unknown> {
  if (cached) return cached;
  if (!existsSync(ADDON_PATH)) {
    throw new Error(`core/native/addon: ${ADDON_PATH} is missing; run npm install to build the native addon`);
  }
  cached = createRequire(import.meta.url)(ADDON_PATH) as Record<string, unknown>;
  return cached;
}
