// Memory-mapped file reading through the native addon, with a plain read as the fallback when the addon is not
// built. Not a parser: callers interpret the bytes. Mapped buffers are unmapped when garbage-collected.
import { readFileSync } from 'node:fs';
import { UserError } from '../../util/errors.js';
import { tryLoadAddon } from './addon.js';

export interface MappedFile {
  bytes: Uint8Array;
  /** 'mmap' when the file is mapped, 'read' when it was read into memory (no addon). */
  mode: 'mmap' | 'read';
}

/** Maps `path` read-only-to-the-file (private pages). A missing or unreadable file is a UserError naming it. */
export function mapFile(path: string, options: { allowFallback?: boolean } = {}): MappedFile {
  const addon = tryLoadAddon();
  if (addon) {
    try {
      return { bytes: new Uint8Array(addon.mmapFile(path)), mode: 'mmap' };
    } catch (e) {
      // The native message names the path and the errno ("cannot open '<path>': No such file ... (ENOENT)").
      throw new UserError((e instanceof Error ? e.message : String(e)).replace(/^mmapFile: /, ''));
    }
  }
  if (options.allowFallback === false) throw new Error('mapFile: the native addon is not built, and fallback was refused');
  try {
    return { bytes: readFileSync(path), mode: 'read' };
  } catch (e) {
    throw new UserError(`cannot read '${path}': ${e instanceof Error ? e.message : String(e)}`);
  }
}
