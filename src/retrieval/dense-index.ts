// The dense index directory: encoder.safetensors (E, w_q, w_p, piece ids; config in the metadata), tokenizer.json
// (the lmforge tokenizer file the pieces come from) and vectors.f32 (a magic + version header, then the (N, D)
// passage vectors, row i = passage i of the BM25 index it was built from), read through mmap.
// Not the encoder's math (dense.ts) nor the search kernel (ip-search.ts).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { mapFile } from '../core/native/mmap.js';
import { readSafetensors, writeSafetensors } from '../core/safetensors.js';
import { loadTokenizer, saveTokenizer } from '../tokenizers/format.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { writeFileAtomicParts } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { DenseEncoder, type DenseConfig } from './dense.js';
import { ipTopK } from './ip-search.js';
import type { Hit } from './topk.js';

export const VECTORS_MAGIC = 'LMFDENSE';
export const VECTORS_VERSION = 1;
const HEADER = 32;

export function saveEncoder(dir: string, enc: DenseEncoder, tokenizer: Tokenizer, extra: Record<string, string> = {}): void {
  saveTokenizer(tokenizer, join(dir, 'tokenizer.json'));
  const V = enc.vocabSize;
  writeSafetensors(join(dir, 'encoder.safetensors'), [
    ['embed', { shape: [V, enc.dim], data: enc.embed }],
    ['wq', { shape: [V], data: enc.wq }],
    ['wp', { shape: [V], data: enc.wp }],
    ['piece_ids', { shape: [V], data: enc.pieceIds }],
  ], { format: 'lmforge-dense-encoder', version: '1', config: JSON.stringify(enc.config), ...extra });
}

export function loadEncoder(dir: string): DenseEncoder {
  const path = join(dir, 'encoder.safetensors');
  if (!existsSync(path)) throw new UserError(`'${dir}' holds no dense encoder (encoder.safetensors); train one with \`lmforge dense-train\``);
  const f = readSafetensors(path);
  if (f.metadata.format !== 'lmforge-dense-encoder' || f.metadata.version !== '1') {
    throw new UserError(`'${path}': metadata format/version ${JSON.stringify(f.metadata.format)}/${JSON.stringify(f.metadata.version)}, expected "lmforge-dense-encoder"/"1"`);
  }
  const config = JSON.parse(f.metadata.config ?? '{}') as DenseConfig;
  const get = (name: string): Float32Array | Int32Array => {
    const t = f.tensors.get(name);
    if (!t || !(t.data instanceof Float32Array || t.data instanceof Int32Array)) throw new UserError(`'${path}': tensor '${name}' missing or of the wrong dtype`);
    return t.data;
  };
  const ids = get('piece_ids');
  const embed = get('embed');
  const wq = get('wq');
  const wp = get('wp');
  if (!(ids instanceof Int32Array) || !(embed instanceof Float32Array) || !(wq instanceof Float32Array) || !(wp instanceof Float32Array)) {
    throw new UserError(`'${path}': expected I32 piece_ids and F32 embed, wq, wp`);
  }
  if (typeof config.dim !== 'number' || embed.length !== ids.length * config.dim) throw new UserError(`'${path}': embed has ${embed.length} values, expected V·D = ${ids.length}·${config.dim}`);
  return new DenseEncoder(loadTokenizer(join(dir, 'tokenizer.json')), config, ids, embed, wq, wp);
}

export function writeVectors(path: string, vectors: Float32Array, N: number, D: number): void {
  if (vectors.length !== N * D) throw new Error(`writeVectors: ${vectors.length} floats for N·D = ${N * D}`);
  const head = new Uint8Array(HEADER);
  const dv = new DataView(head.buffer);
  head.set(new TextEncoder().encode(VECTORS_MAGIC), 0);
  dv.setUint32(8, VECTORS_VERSION, true);
  dv.setUint32(12, D, true);
  dv.setFloat64(16, N, true);
  writeFileAtomicParts(path, [head, new Uint8Array(vectors.buffer, vectors.byteOffset, vectors.byteLength)]);
}

/** The mapped passage vectors of a dense index. */
export function readVectors(path: string): { vectors: Float32Array; N: number; D: number } {
  let { bytes } = mapFile(path);
  if (bytes.byteOffset % 4 !== 0) bytes = Uint8Array.from(bytes); // a plain read (no addon) may be unaligned
  const fix = 'rebuild it with `lmforge dense-train` or `lmforge dense-encode`';
  if (bytes.length < HEADER || new TextDecoder().decode(bytes.subarray(0, 8)) !== VECTORS_MAGIC) throw new UserError(`'${path}': not an lmforge vector file (magic "${VECTORS_MAGIC}" expected); ${fix}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== VECTORS_VERSION) throw new UserError(`'${path}': vector file version ${version}, this lmforge reads ${VECTORS_VERSION}; ${fix}`);
  const D = dv.getUint32(12, true);
  const N = dv.getFloat64(16, true);
  if (bytes.length !== HEADER + 4 * N * D) throw new UserError(`'${path}': ${bytes.length} bytes, expected ${HEADER + 4 * N * D} for ${N} vectors of ${D} (truncated?); ${fix}`);
  return { vectors: new Float32Array(bytes.buffer, bytes.byteOffset + HEADER, N * D), N, D };
}

/** An open dense index: encoder + mapped passage vectors. */
export class DenseIndex {
  readonly encoder: DenseEncoder;
  readonly vectors: Float32Array;
  readonly N: number;

  constructor(readonly dir: string) {
    this.encoder = loadEncoder(dir);
    const v = readVectors(join(dir, 'vectors.f32'));
    if (v.D !== this.encoder.dim) throw new UserError(`'${dir}': vectors have dimension ${v.D}, the encoder ${this.encoder.dim}; re-encode with \`lmforge dense-encode\``);
    this.vectors = v.vectors;
    this.N = v.N;
  }

  /** The k best passages for each query, best first. */
  searchMany(queries: string[], k: number): Hit[][] {
    const D = this.encoder.dim;
    const Q = this.encoder.encodeMany(queries, 'query');
    const r = ipTopK(this.vectors, this.N, D, Q, queries.length, k);
    return queries.map((_, m) => {
      const out: Hit[] = [];
      for (let j = 0; j < k; j++) if (r.indices[m * k + j]! >= 0) out.push({ index: r.indices[m * k + j]!, score: r.scores[m * k + j]! });
      return out;
    });
  }

  search(query: string, k: number): Hit[] {
    return this.searchMany([query], k)[0]!;
  }
}
