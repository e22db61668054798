// lmforge token files: the training data format. Little-endian: 8-byte magic "LMFTOKEN", u32 version, u32 dtype
// (1 = uint16, 2 = uint32), u64 count, then `count` raw ids. The writer streams ids in and commits atomically;
// the reader side (memory-mapped, with batch sampling) is src/train/token-reader.ts.
import { AtomicWriter } from '../util/atomic.js';

export const TOKEN_FILE_MAGIC = 'LMFTOKEN';
export const TOKEN_FILE_VERSION = 1;
export const TOKEN_FILE_HEADER_BYTES = 24;
export const TOKEN_DTYPES = { 1: { name: 'uint16', bytes: 2 }, 2: { name: 'uint32', bytes: 4 } } as const;
export type TokenDtype = 'uint16' | 'uint32';

/** uint16 when every id of the vocabulary fits, else uint32. */
export function tokenDtypeFor(vocabSize: number): TokenDtype {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

export function encodeTokenFileHeader(dtype: TokenDtype, count: number): Uint8Array {
  const header = new Uint8Array(TOKEN_FILE_HEADER_BYTES);
  header.set(Buffer.from(TOKEN_FILE_MAGIC, 'latin1'), 0);
  const view = new DataView(header.buffer);
  view.setUint32(8, TOKEN_FILE_VERSION, true);
  view.setUint32(12, dtype === 'uint16' ? 1 : 2, true);
  view.setBigUint64(16, BigInt(count), true);
  return header;
}

/** Streams ids into a token file; nothing appears at `path` until commit(). */
export class TokenFileWriter {
  readonly dtype: TokenDtype;
  private readonly out: AtomicWriter;
  private count = 0;

  constructor(readonly path: string, readonly vocabSize: number) {
    this.dtype = tokenDtypeFor(vocabSize);
    this.out = new AtomicWriter(path);
    this.out.write(encodeTokenFileHeader(this.dtype, 0));
  }

  get written(): number {
    return this.count;
  }

  /** Appends ids; each must be in [0, vocabSize). */
  append(ids: ArrayLike<number>): void {
    const buf = this.dtype === 'uint16' ? new Uint16Array(ids.length) : new Uint32Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize)) {
        this.out.abort();
        throw new RangeError(`${this.path}: token id ${id} (position ${this.count + i}) is outside the vocabulary [0, ${this.vocabSize})`);
      }
      buf[i] = id;
    }
    this.out.write(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
    this.count += ids.length;
  }

  commit(): void {
    this.out.patch(0, encodeTokenFileHeader(this.dtype, this.count));
    this.out.commit();
  }

  abort(): void {
    this.out.abort();
  }
}

/** Writes a whole token file at once. */
export function writeTokenFile(path: string, ids: ArrayLike<number>, vocabSize: number): void {
  const w = new TokenFileWriter(path, vocabSize);
  w.append(ids);
  w.commit();
}
