// Atomic file writes: data goes to a temp file in the target's directory, is fsynced, renamed over the target,
// and the directory is fsynced, so a reader (or a crash at any moment) sees the old file or the new one, never a
// half-written one. Not a lock: concurrent writers to one path race, and the last rename wins.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fsUserError } from './fs.js';

/** A temp path beside `path` (same directory, so rename stays on one filesystem). Starts with '.' and ends in '.tmp'. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** fsync a directory so a rename inside it is durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A file being written in parts; nothing appears at `path` until commit(). */
export class AtomicWriter {
  readonly path: string;
  readonly tempPath: string;
  private fd: number | null;
  private written = 0;

  constructor(path: string) {
    this.path = path;
    this.tempPath = tempPathFor(path);
    try {
      this.fd = openSync(this.tempPath, 'wx', 0o644);
    } catch (e) {
      throw fsUserError(e, path, 'write the file'); // a missing or read-only directory, no space: the target's name, not the temp's
    }
  }

  /** Bytes written so far. */
  get size(): number {
    return this.written;
  }

  write(data: Uint8Array | string): void {
    if (this.fd === null) throw new Error(`AtomicWriter(${this.path}): write after commit or abort`);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    try {
      while (off < bytes.byteLength) off += writeSync(this.fd, bytes, off, bytes.byteLength - off);
    } catch (e) {
      throw fsUserError(e, this.path, 'write the file'); // ENOSPC, EIO, quota
    }
    this.written += bytes.byteLength;
  }

  /** Overwrites bytes already written at `position` (e.g. a header whose counts are known only at the end). */
  patch(position: number, data: Uint8Array): void {
    if (this.fd === null) throw new Error(`AtomicWriter(${this.path}): patch after commit or abort`);
    if (position + data.byteLength > this.written) throw new RangeError(`AtomicWriter(${this.path}): patch past the written end`);
    let off = 0;
    while (off < data.byteLength) off += writeSync(this.fd, data, off, data.byteLength - off, position + off);
  }

  /** fsync, rename into place, fsync the directory. */
  commit(): void {
    if (this.fd === null) throw new Error(`AtomicWriter(${this.path}): commit after commit or abort`);
    const fd = this.fd;
    this.fd = null;
    try {
      fsyncSync(fd);
      closeSync(fd);
      renameSync(this.tempPath, this.path);
    } catch (e) {
      rmSync(this.tempPath, { force: true });
      throw fsUserError(e, this.path, 'write the file'); // e.g. the target is a directory, or no space at fsync
    }
    fsyncDir(dirname(this.path));
  }

  /** Drop the temp file; the target is untouched. Safe to call more than once. */
  abort(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
    rmSync(this.tempPath, { force: true });
  }
}

/** Write `data` to `path` atomically. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  writeFileAtomicParts(path, [data]);
}

/** Write the concatenation of `parts` to `path` atomically (no concatenated copy is made). */
export function writeFileAtomicParts(path: string, parts: Iterable<Uint8Array | string>): void {
  const w = new AtomicWriter(path);
  try {
    for (const p of parts) w.write(p);
  } catch (e) {
    w.abort();
    throw e;
  }
  w.commit();
}
