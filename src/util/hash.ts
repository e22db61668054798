// SHA-256 of files and values for provenance: a file streamed in 4 MiB chunks (no whole-file copy in memory), and
// a canonical hash of a JSON value (keys sorted) so that equal configs hash equally. Not a content-addressed store.
import { closeSync, openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fsUserError } from './fs.js';

/** Hex SHA-256 of a file's bytes. */
export function sha256File(path: string): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(4 << 20);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw fsUserError(e, path, 'read the file');
  }
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** A JSON value with every object's keys sorted (the canonical form that stableHash hashes). */
export function canonicalJSON(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}

/** Hex SHA-256 of a string or of a JSON value's canonical form. */
export function sha256Of(value: unknown): string {
  return createHash('sha256').update(typeof value === 'string' ? value : canonicalJSON(value)).digest('hex');
}
