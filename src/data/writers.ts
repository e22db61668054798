// Atomic JSONL.gz shard writer: lines go to a temp file that is renamed into place only on close, so a killed
// stage never leaves a half-written shard. Also small atomic helpers for JSON files and completion markers.
import { createWriteStream, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { threadId } from 'node:worker_threads';
import { createGzip } from 'node:zlib';
import type { Writable } from 'node:stream';
import { PIPELINE_ID_FIELD } from './document.js';
import type { Document } from './document.js';
import { ensureDir, fsUserError } from '../util/fs.js';

let tempCounter = 0;

const host = hostname().replace(/[^A-Za-z0-9_-]/g, '_');

/**
 * A temp name unique across machines sharing a file system, processes, worker threads and calls: ranks of a job
 * array may all write the same shared file (a merged report, mix counts) at once.
 */
export function tempName(path: string): string {
  return `${path}.tmp-${host}-${process.pid}-${threadId}-${tempCounter++}`;
}

/** Writes a file atomically (temp file in the same directory, then rename). */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  ensureDir(dirname(path), 'output directory', { checkWritable: false });
  const tmp = tempName(path);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw fsUserError(e, path, 'write the file');
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/** Completion markers: `<path>.done` exists only after the shard it guards was renamed into place. */
export function isDone(path: string): boolean {
  return existsSync(`${path}.done`);
}

/** Writes the marker; `note` (e.g. "limit=100") records how the shard was made, for doneWith. */
export function markDone(path: string, note = ''): void {
  writeFileAtomic(`${path}.done`, `${new Date().toISOString()}${note === '' ? '' : ` ${note}`}\n`);
}

/** True when the marker exists and was written with the same note (a sample run does not count as a full one). */
export function doneWith(path: string, note: string): boolean {
  if (!isDone(path)) return false;
  const text = readFileSync(`${path}.done`, 'utf8').trim();
  const written = text.includes(' ') ? text.slice(text.indexOf(' ') + 1) : '';
  return written === note;
}

/**
 * Streams JSON lines through gzip into a temp file beside `path`; `close()` renames it to `path`. Level 3 by default:
 * shards are rewritten by every stage, and level 6 costs several times the CPU for ~7% smaller files.
 */
export class JsonlGzWriter {
  private readonly out: Writable;
  private readonly done: Promise<void>;
  private pending: string[] = [];
  private pendingBytes = 0;
  private closed = false;
  readonly tmp: string;
  count = 0;

  constructor(readonly path: string, level = 3) {
    ensureDir(dirname(path), 'output directory', { checkWritable: false });
    this.tmp = tempName(path);
    const gz = createGzip({ level });
    const file = createWriteStream(this.tmp);
    gz.pipe(file);
    this.out = gz;
    this.done = new Promise((resolve, reject) => {
      file.on('finish', () => resolve());
      file.on('error', reject);
      gz.on('error', reject);
    });
    this.done.catch(() => undefined); // an open or write error (EACCES, ENOSPC) is raised by close(), not as an unhandled rejection
  }

  /** Queues one JSON value as a line; flushes in ~1 MB chunks and waits when gzip pushes back. */
  async write(value: unknown): Promise<void> {
    const line = JSON.stringify(value) + '\n';
    this.pending.push(line);
    this.pendingBytes += line.length;
    this.count++;
    if (this.pendingBytes < 1 << 20) return;
    try {
      await this.flush();
    } catch (e) {
      throw fsUserError(e, this.path, 'write the shard'); // ENOSPC while the stage runs: one line, then abort()
    }
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const chunk = this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    // A file error (ENOSPC) stops the pipe, so 'drain' would never come: wait for whichever happens first.
    if (!this.out.write(chunk)) await Promise.race([new Promise<void>((r) => this.out.once('drain', () => r())), this.done]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.flush();
      this.out.end();
      await this.done;
      renameSync(this.tmp, this.path);
    } catch (e) {
      rmSync(this.tmp, { force: true });
      throw fsUserError(e, this.path, 'write the shard');
    }
  }

  /** Drops the temp file (on error), leaving no output behind. */
  abort(): void {
    this.closed = true;
    this.out.destroy();
    rmSync(this.tmp, { force: true });
  }
}

/**
 * Serialised form of a document in shards: every field of the input record as it was, the pipeline's id as
 * `lmforge_id`, and the text as `text` (so shards read back with textField "text").
 */
export function documentRecord(doc: Document): Record<string, unknown> {
  return { ...doc.metadata, [PIPELINE_ID_FIELD]: doc.id, text: doc.text };
}
