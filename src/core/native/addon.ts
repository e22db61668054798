// Loads lmforge's native addon (build/Release/lmforge.node, built by `npm install` through node-gyp) once and
// caches it. Not the typed kernel wrappers: those live beside this file, one per kernel family.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: Record<string, unknown> | null = null;

// The package root is the nearest ancestor of this file holding package.json (src/ when run from source,
// dist/src/ when compiled).
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('lmforge: cannot find the package root (package.json with binding.gyp) above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** The native addon's exports; throws a clear error when it has not been built. */
export function loadAddon(): Record<string, unknown> {
  if (cached) return cached;
  const root = packageRoot();
  const path = join(root, 'build', 'Release', 'lmforge.node');
  if (!existsSync(path)) {
    throw new Error(`lmforge: native addon not found at ${path}; run npm install to build the native addon`);
  }
  const require = createRequire(join(root, 'package.json'));
  cached = require(path) as Record<string, unknown>;
  return cached;
}
