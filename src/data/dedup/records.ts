// Binary record files for the dedup stages: a header (magic "LMFDEDUP", version, words per record, count) then
// fixed-size little-endian u32 records sorted by their leading key words. Written atomically; read as a stream in
// chunks; merged across shards with a k-way heap so a bucket never needs every shard in memory.
import { closeSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { endianness } from 'node:os';
import { tempName, writeFileAtomic } from '../writers.js';
import { UserError } from '../../util/errors.js';
import { ensureDir, fsUserError } from '../../util/fs.js';

const MAGIC = 'LMFDEDUP';
const VERSION = 1;
const HEADER = 20;
const LE = endianness() === 'LE';

function toLittleEndian(a: Uint32Array): Buffer {
  if (LE) return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const b = Buffer.alloc(a.length * 4);
  for (let i = 0; i < a.length; i++) b.writeUInt32LE(a[i]!, 4 * i);
  return b;
}

function fromLittleEndian(b: Buffer): Uint32Array {
  if (LE) {
    const out = new Uint32Array(b.length / 4);
    new Uint8Array(out.buffer).set(b);
    return out;
  }
  const out = new Uint32Array(b.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = b.readUInt32LE(4 * i);
  return out;
}

/** Writes records of `width` words, sorted lexicographically by all their words unless `sort` is false. */
export function writeRecords(path: string, data: Uint32Array, width: number, sort = true): void {
  const count = data.length / width;
  let out = data;
  if (sort) {
    const order = Array.from({ length: count }, (_, i) => i);
    order.sort((x, y) => {
      for (let w = 0; w < width; w++) {
        const d = data[x * width + w]! - data[y * width + w]!;
        if (d !== 0) return d;
      }
      return 0;
    });
    out = new Uint32Array(data.length);
    order.forEach((src, dst) => out.set(data.subarray(src * width, src * width + width), dst * width));
  }
  const head = Buffer.alloc(HEADER);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(VERSION, 8);
  head.writeUInt32LE(width, 12);
  head.writeUInt32LE(count, 16);
  writeFileAtomic(path, Buffer.concat([head, toLittleEndian(out)]));
}

/** Appends unsorted records to a temp file, then patches the count into the header and renames it into place. */
export class RecordAppender {
  private readonly fd: number;
  private readonly tmp: string;
  private count = 0;

  constructor(readonly path: string, readonly width: number) {
    ensureDir(dirname(path), 'dedup work directory', { checkWritable: false });
    this.tmp = tempName(path);
    try {
      this.fd = openSync(this.tmp, 'w');
    } catch (e) {
      throw fsUserError(e, path, 'write the dedup file');
    }
    const head = Buffer.alloc(HEADER);
    head.write(MAGIC, 0, 'latin1');
    head.writeUInt32LE(VERSION, 8);
    head.writeUInt32LE(width, 12);
    this.guard(() => writeSync(this.fd, head, 0, HEADER, 0));
  }

  /** Runs a write; on a file-system error (ENOSPC) drops the temp file and throws a UserError naming the target. */
  private guard(write: () => void): void {
    try {
      write();
    } catch (e) {
      try {
        closeSync(this.fd);
      } catch {
        // already closed
      }
      rmSync(this.tmp, { force: true });
      throw fsUserError(e, this.path, 'write the dedup file');
    }
  }

  append(records: Uint32Array): void {
    const b = toLittleEndian(records);
    this.guard(() => writeSync(this.fd, b, 0, b.length, HEADER + this.count * this.width * 4));
    this.count += records.length / this.width;
  }

  close(): void {
    const c = Buffer.alloc(4);
    c.writeUInt32LE(this.count, 0);
    this.guard(() => {
      writeSync(this.fd, c, 0, 4, 16);
      closeSync(this.fd);
      renameSync(this.tmp, this.path);
    });
  }
}

/** Streams records from one file, `chunk` records at a time. */
export class RecordReader {
  readonly width: number;
  readonly count: number;
  private readonly fd: number;
  private buf: Uint32Array = new Uint32Array(0);
  private bufStart = 0;
  private pos = 0;

  constructor(readonly path: string, private readonly chunk = 8192) {
    this.fd = openSync(path, 'r');
    const head = Buffer.alloc(HEADER);
    readSync(this.fd, head, 0, HEADER, 0);
    const magic = head.toString('latin1', 0, 8);
    if (magic !== MAGIC) throw new UserError(`${path}: not a dedup record file (magic "${magic}", expected "${MAGIC}")`);
    const version = head.readUInt32LE(8);
    if (version !== VERSION) throw new UserError(`${path}: record file version ${version}, expected ${VERSION}; re-run the stage that wrote it`);
    this.width = head.readUInt32LE(12);
    this.count = head.readUInt32LE(16);
  }

  /** The current record, or undefined at the end. */
  current(): Uint32Array | undefined {
    if (this.pos >= this.count) return undefined;
    const off = this.pos - this.bufStart;
    if (off >= this.buf.length / this.width || this.buf.length === 0) this.fill();
    const o = (this.pos - this.bufStart) * this.width;
    return this.buf.subarray(o, o + this.width);
  }

  advance(): void {
    this.pos++;
  }

  /** Random access to record i (used for signature look-ups). */
  at(i: number): Uint32Array {
    if (i >= this.count) throw new Error(`${this.path}: record ${i} out of range (count ${this.count})`);
    const b = Buffer.alloc(this.width * 4);
    readSync(this.fd, b, 0, b.length, HEADER + i * this.width * 4);
    return fromLittleEndian(b);
  }

  private fill(): void {
    const n = Math.min(this.chunk, this.count - this.pos);
    const b = Buffer.alloc(n * this.width * 4);
    readSync(this.fd, b, 0, b.length, HEADER + this.pos * this.width * 4);
    this.buf = fromLittleEndian(b);
    this.bufStart = this.pos;
  }

  close(): void {
    closeSync(this.fd);
  }
}

function less(a: Uint32Array, b: Uint32Array, keyWords: number): boolean {
  for (let w = 0; w < keyWords; w++) if (a[w] !== b[w]) return a[w]! < b[w]!;
  return false;
}

/** Visits records of several sorted files in global key order (a binary heap over the readers). */
export function mergeSorted(readers: RecordReader[], keyWords: number, visit: (rec: Uint32Array) => void): void {
  const heap = readers.filter((r) => r.current() !== undefined);
  const key = (r: RecordReader): Uint32Array => r.current()!;
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && less(key(heap[l]!), key(heap[m]!), keyWords)) m = l;
      if (r < heap.length && less(key(heap[r]!), key(heap[m]!), keyWords)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(i);
  while (heap.length > 0) {
    const top = heap[0]!;
    visit(top.current()!);
    top.advance();
    if (top.current() === undefined) {
      heap[0] = heap[heap.length - 1]!;
      heap.pop();
    }
    if (heap.length > 0) down(0);
  }
}
