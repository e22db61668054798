// Token shard files, the format the trainer reads: a 24-byte header (magic "LMFTOKEN", uint32 version 1, uint32
// dtype 1 = uint16 / 2 = uint32, uint64 count), then the ids as raw little-endian integers. A random-access reader
// and an atomic streaming writer; the trainer's memory-mapped reader is src/train/token-reader.ts. Not a tokenizer.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { AtomicWriter } from '../util/atomic.js';
import { UserError } from '../util/errors.js';

export const TOKEN_FILE_MAGIC = 'LMFTOKEN';
export const TOKEN_FILE_MAGIC_BYTES = Uint8Array.from(Buffer.from(TOKEN_FILE_MAGIC, 'latin1'));
export const TOKEN_FILE_VERSION = 1;
export const TOKEN_FILE_HEADER_BYTES = 24;
export type TokenDtype = 'uint16' | 'uint32';
/** dtype codes of the header. */
export const TOKEN_DTYPES = { 1: { name: 'uint16', bytes: 2 }, 2: { name: 'uint32', bytes: 4 } } as const;

const DTYPE_CODES: Record<TokenDtype, number> = { uint16: 1, uint32: 2 };

/** The narrowest dtype that holds every id of a vocabulary. */
export function dtypeForVocab(vocabSize: number): TokenDtype {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

function bytesPer(dtype: TokenDtype): number {
  return dtype === 'uint16' ? 2 : 4;
}

export function encodeHeader(dtype: TokenDtype, count: number): Uint8Array {
  const header = new Uint8Array(TOKEN_FILE_HEADER_BYTES);
  const view = new DataView(header.buffer);
  header.set(TOKEN_FILE_MAGIC_BYTES, 0);
  view.setUint32(8, TOKEN_FILE_VERSION, true);
  view.setUint32(12, DTYPE_CODES[dtype], true);
  view.setBigUint64(16, BigInt(count), true);
  return header;
}

export interface TokenFileHeader {
  dtype: TokenDtype;
  count: number;
}

export function decodeHeader(header: Uint8Array, file: string, fileBytes?: number): TokenFileHeader {
  if (header.length < TOKEN_FILE_HEADER_BYTES) throw new UserError(`${file}: not a token file (${header.length} bytes, the header alone is ${TOKEN_FILE_HEADER_BYTES})`);
  for (let i = 0; i < 8; i++) {
    if (header[i] !== TOKEN_FILE_MAGIC_BYTES[i]) {
      const found = Buffer.from(header.subarray(0, 8)).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
      throw new UserError(`${file}: not a token file: magic is "${found}", expected "${TOKEN_FILE_MAGIC}" (write shards with \`lmforge tokenize\` or \`lmforge prepare\`)`);
    }
  }
  const view = new DataView(header.buffer, header.byteOffset, header.length);
  const version = view.getUint32(8, true);
  if (version !== TOKEN_FILE_VERSION) throw new UserError(`${file}: token file version ${version}, this lmforge reads version ${TOKEN_FILE_VERSION}; re-run \`lmforge tokenize\``);
  const code = view.getUint32(12, true);
  const dtype: TokenDtype | undefined = code === 1 ? 'uint16' : code === 2 ? 'uint32' : undefined;
  if (!dtype) throw new UserError(`${file}: header field "dtype": expected 1 (uint16) or 2 (uint32), found ${code}`);
  const count = Number(view.getBigUint64(16, true));
  if (fileBytes !== undefined && fileBytes !== TOKEN_FILE_HEADER_BYTES + count * bytesPer(dtype)) {
    throw new UserError(`${file}: header says ${count} ${dtype} tokens (${TOKEN_FILE_HEADER_BYTES + count * bytesPer(dtype)} bytes) but the file has ${fileBytes} bytes (truncated or still being written?)`);
  }
  return { dtype, count };
}

/** Random-access reader over a token file (reads ranges through the file descriptor; nothing held in memory). */
export class TokenFileReader {
  readonly path: string;
  readonly dtype: TokenDtype;
  readonly count: number;
  private fd: number;

  constructor(path: string) {
    this.path = path;
    this.fd = openSync(path, 'r');
    try {
      const header = new Uint8Array(TOKEN_FILE_HEADER_BYTES);
      const got = readSync(this.fd, header, 0, TOKEN_FILE_HEADER_BYTES, 0);
      const h = decodeHeader(header.subarray(0, got), path, fstatSync(this.fd).size);
      this.dtype = h.dtype;
      this.count = h.count;
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
  }

  /** Ids [start, start + length) as a Uint32Array. */
  read(start: number, length: number): Uint32Array {
    if (!(start >= 0 && length >= 0 && start + length <= this.count)) throw new UserError(`${this.path}: range [${start}, ${start + length}) is outside 0..${this.count}`);
    const width = bytesPer(this.dtype);
    const buf = Buffer.alloc(length * width);
    let done = 0;
    while (done < buf.length) done += readSync(this.fd, buf, done, buf.length - done, TOKEN_FILE_HEADER_BYTES + start * width + done);
    const out = new Uint32Array(length);
    if (width === 2) for (let i = 0; i < length; i++) out[i] = buf.readUInt16LE(2 * i);
    else for (let i = 0; i < length; i++) out[i] = buf.readUInt32LE(4 * i);
    return out;
  }

  readAll(): Uint32Array {
    return this.read(0, this.count);
  }

  close(): void {
    closeSync(this.fd);
  }
}

export function readTokenFile(path: string): Uint32Array {
  const r = new TokenFileReader(path);
  try {
    return r.readAll();
  } finally {
    r.close();
  }
}

/** Streaming writer: appends ids to a temp file; close() fixes the count, fsyncs and renames it into place. */
export class TokenFileWriter {
  readonly path: string;
  readonly dtype: TokenDtype;
  count = 0;
  private readonly out: AtomicWriter;
  private readonly limit: number;

  constructor(path: string, dtype: TokenDtype) {
    this.path = path;
    this.dtype = dtype;
    this.limit = dtype === 'uint16' ? 0xffff : 0xffffffff;
    this.out = new AtomicWriter(path);
    this.out.write(encodeHeader(dtype, 0));
  }

  write(ids: ArrayLike<number>): void {
    const buf = this.dtype === 'uint16' ? new Uint16Array(ids.length) : new Uint32Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!(id >= 0 && id <= this.limit && Number.isInteger(id))) throw new UserError(`${this.path}: token id ${id} (position ${this.count + i}) does not fit ${this.dtype}`);
      buf[i] = id;
    }
    this.out.write(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
    this.count += ids.length;
  }

  close(): void {
    this.out.patch(0, encodeHeader(this.dtype, this.count));
    this.out.commit();
  }

  /** Drops the partial file (on error), leaving nothing half-written. */
  abort(): void {
    this.out.abort();
  }
}

export function writeTokenFile(path: string, ids: ArrayLike<number>, dtype: TokenDtype): void {
  const w = new TokenFileWriter(path, dtype);
  try {
    w.write(ids);
    w.close();
  } catch (e) {
    w.abort();
    throw e;
  }
}
