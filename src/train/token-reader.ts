// Reads lmforge token files (memory-mapped) and samples random contiguous training windows from them, nanoGPT
// style: each row of a (B, T) batch starts at a uniform offset i, x = ids[i, i+T), y = ids[i+1, i+T+1).
// Not the token file writer (src/tokenizers/token-file.ts) and not a tokenizer.
//
// File layout (little-endian): 8-byte magic, u32 version, u32 dtype (1 = uint16, 2 = uint32), u64 count, then
// `count` raw ids, as defined (and written) by src/tokenizers/token-file.ts.
import { Rng, type RngState } from '../core/random.js';
import { mapFile } from '../core/native/mmap.js';
import { UserError } from '../util/errors.js';
import { TOKEN_DTYPES, TOKEN_FILE_HEADER_BYTES, TOKEN_FILE_MAGIC, TOKEN_FILE_VERSION } from '../tokenizers/token-file.js';

const DTYPES = TOKEN_DTYPES;

export interface TokenFile {
  path: string;
  dtype: 'uint16' | 'uint32';
  /** Number of token ids. */
  count: number;
  ids: Uint16Array | Uint32Array;
  /** How the bytes were obtained: mapped, or read into memory when the native addon is not built. */
  mode: 'mmap' | 'read';
}

/** Opens a token file through mmap and validates its header against its size. Problems are UserErrors naming the file. */
/** Opens a token file; with vocabSize, every id is checked to be below it (found now, not at the step that samples it). */
export function openTokenFile(path: string, options: { vocabSize?: number } = {}): TokenFile {
  const { bytes, mode } = mapFile(path);
  const file = { ...parseTokenFile(bytes, path), mode };
  const V = options.vocabSize;
  if (V !== undefined) {
    const ids = file.ids;
    for (let i = 0; i < ids.length; i++) {
      if (ids[i]! >= V) throw new UserError(`${path}: token ${i} has id ${ids[i]}, but the vocabulary has ${V} ids (0..${V - 1}); was this file made with another tokenizer?`);
    }
  }
  return file;
}

/** Parses token-file bytes (no copy when the id data is aligned). */
export function parseTokenFile(bytes: Uint8Array, path: string): Omit<TokenFile, 'mode'> {
  const fail = (msg: string): never => {
    throw new UserError(`${path}: not a valid lmforge token file: ${msg}`);
  };
  if (bytes.byteLength < TOKEN_FILE_HEADER_BYTES) {
    fail(`${bytes.byteLength} bytes is shorter than the ${TOKEN_FILE_HEADER_BYTES}-byte header (truncated or empty?)`);
  }
  const magic = Buffer.from(bytes.buffer, bytes.byteOffset, 8).toString('latin1');
  if (magic !== TOKEN_FILE_MAGIC) {
    fail(`magic is ${JSON.stringify(magic)}, expected ${JSON.stringify(TOKEN_FILE_MAGIC)} (is this a token file written by \`lmforge tokenize\`?)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, TOKEN_FILE_HEADER_BYTES);
  const version = view.getUint32(8, true);
  if (version !== TOKEN_FILE_VERSION) {
    fail(`format version ${version}, this lmforge reads version ${TOKEN_FILE_VERSION} (re-tokenize the data with this lmforge)`);
  }
  const code = view.getUint32(12, true);
  const dtype = code === 1 || code === 2 ? DTYPES[code] : fail(`dtype code ${code}, expected 1 (uint16) or 2 (uint32)`);
  const count64 = view.getBigUint64(16, true);
  const payload = bytes.byteLength - TOKEN_FILE_HEADER_BYTES;
  const want = count64 * BigInt(dtype.bytes);
  if (want !== BigInt(payload)) {
    const why = want > BigInt(payload) ? 'truncated?' : 'trailing bytes after the ids';
    fail(`header says ${count64} ${dtype.name} ids (${want} bytes) but ${payload} bytes follow the header (${why})`);
  }
  const count = Number(count64);
  const start = bytes.byteOffset + TOKEN_FILE_HEADER_BYTES;
  // A mapped file starts page-aligned; a buffer read into memory may not, and typed views need alignment.
  const aligned = start % dtype.bytes === 0;
  const src = aligned ? bytes.buffer : bytes.slice(TOKEN_FILE_HEADER_BYTES).buffer;
  const off = aligned ? start : 0;
  const ids = dtype.name === 'uint16' ? new Uint16Array(src, off, count) : new Uint32Array(src, off, count);
  return { path, dtype: dtype.name, count, ids };
}

export interface Batch {
  /** (B, T) inputs, row-major. */
  x: Int32Array;
  /** (B, T) targets: x shifted left by one token. */
  y: Int32Array;
}

/**
 * Random (x, y) windows from one token file. The sampling order is fully determined by the RNG state, which
 * checkpoints save (rngState) and restore (the constructor's `rng` argument), so a resumed run sees the same batches.
 */
export class BatchSampler {
  readonly file: TokenFile;
  readonly batchSize: number;
  readonly blockSize: number;
  private rng: Rng;

  constructor(file: TokenFile, batchSize: number, blockSize: number, rng: number | RngState) {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new UserError(`batch_size: expected an integer ≥ 1, got ${batchSize}`);
    if (!Number.isInteger(blockSize) || blockSize < 1) throw new UserError(`block_size: expected an integer ≥ 1, got ${blockSize}`);
    if (file.count < blockSize + 1) {
      throw new UserError(`${file.path}: ${file.count} tokens is too few for block_size ${blockSize} (need at least ${blockSize + 1})`);
    }
    this.file = file;
    this.batchSize = batchSize;
    this.blockSize = blockSize;
    this.rng = new Rng(rng);
  }

  /** The RNG state to save; a sampler built from it continues with exactly the batches this one would give next. */
  rngState(): RngState {
    return this.rng.state();
  }

  /** The next batch's window start offsets, in row order: uniform in [0, count − T). */
  nextOffsets(): number[] {
    const out: number[] = [];
    for (let b = 0; b < this.batchSize; b++) out.push(this.rng.int(this.file.count - this.blockSize));
    return out;
  }

  /** The next (B, T) batch. `into` reuses the caller's arrays (each B·T long). */
  next(into?: Batch): Batch {
    const B = this.batchSize;
    const T = this.blockSize;
    const x = into?.x ?? new Int32Array(B * T);
    const y = into?.y ?? new Int32Array(B * T);
    if (x.length !== B * T || y.length !== B * T) throw new Error(`BatchSampler.next: batch arrays must hold B·T = ${B * T} ids`);
    const ids = this.file.ids;
    const offsets = this.nextOffsets();
    for (let b = 0; b < B; b++) {
      const i = offsets[b]!;
      x.set(ids.subarray(i, i + T), b * T);
      y.set(ids.subarray(i + 1, i + 1 + T), b * T);
    }
    return { x, y };
  }
}
