// Best-effort registration of what a command just made (a finished run, an evaluation report): a registry that
// cannot be opened or written prints one warning line and never fails the command whose work is already on disk.
import { Registry, registryPath } from '../registry/registry.js';
import { describeError } from '../util/errors.js';

/** Runs `f` on the registry (--registry flag, $LMFORGE_REGISTRY or the default); false (with a warning) on failure. */
export function registerQuietly(flag: string | undefined, what: string, f: (reg: Registry) => string): boolean {
  let reg: Registry | null = null;
  try {
    reg = Registry.open(registryPath(flag));
    const line = f(reg);
    if (line) process.stderr.write(`registry: ${line}\n`);
    return true;
  } catch (e) {
    process.stderr.write(`warning: ${what} not recorded in the registry (${describeError(e)}); lmforge registry register/rebuild can record it later\n`);
    return false;
  } finally {
    reg?.close();
  }
}
