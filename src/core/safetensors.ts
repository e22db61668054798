// The safetensors file format, read and written exactly: u64 little-endian header length N, N bytes of JSON
// ({name: {dtype, shape, data_offsets: [begin, end]}, optional "__metadata__": {string: string}}, padded with
// spaces so the data starts 8-byte aligned), then the tensors' bytes, contiguous, in data_offsets order.
// Not a model loader: callers match names and shapes (see expectTensor). Plain typed arrays in and out.
import { endianness } from 'node:os';
import { writeFileAtomicParts } from '../util/atomic.js';
import { mapFile } from './native/mmap.js';
import { UserError, describeError } from '../util/errors.js';

export type SafetensorsDtype = 'F32' | 'F64' | 'I32' | 'I64' | 'U8' | 'BF16' | 'F16';
const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F64: 8, I32: 4, I64: 8, U8: 1, BF16: 2, F16: 2 };

/** Arrays the writer accepts; the dtype follows the array type (F32, F64, I32, U8). */
export type WritableArray = Float32Array | Float64Array | Int32Array | Uint8Array;
/** Arrays the reader returns: BF16 and F16 are widened to Float32Array, I64 comes as BigInt64Array. */
export type ReadArray = WritableArray | BigInt64Array;

export interface TensorData {
  shape: readonly number[];
  data: WritableArray;
}

export interface LoadedTensor {
  /** The dtype stored in the file (data may be widened, see ReadArray). */
  dtype: SafetensorsDtype;
  shape: number[];
  data: ReadArray;
}

export interface SafetensorsFile {
  tensors: Map<string, LoadedTensor>;
  metadata: Record<string, string>;
}

/** The header can be at most 100 MB (the reference implementation's limit), so a corrupt length fails fast. */
const MAX_HEADER = 100_000_000;

if (endianness() !== 'LE') throw new Error('safetensors: only little-endian hosts are supported');

function dtypeOf(a: WritableArray): SafetensorsDtype {
  if (a instanceof Float32Array) return 'F32';
  if (a instanceof Float64Array) return 'F64';
  if (a instanceof Int32Array) return 'I32';
  return 'U8';
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The header JSON, padded with spaces so 8 + its length is a multiple of 8. */
function headerBytes(tensors: [string, TensorData][], metadata: Record<string, string> | undefined): { header: Buffer; dataBytes: number } {
  const obj: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) obj['__metadata__'] = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const n = numel(t.shape);
    if (!t.shape.every((d) => Number.isInteger(d) && d >= 0) || n !== t.data.length) {
      throw new Error(`safetensors write: tensor "${name}": shape [${t.shape.join(', ')}] does not match ${t.data.length} elements`);
    }
    const bytes = t.data.byteLength;
    obj[name] = { dtype: dtypeOf(t.data), shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(obj);
  const len = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - ((8 + len) % 8)) % 8);
  return { header: Buffer.from(json, 'utf8'), dataBytes: offset };
}

/** Serialises tensors (in the given order) to one buffer. */
export function encodeSafetensors(tensors: Iterable<[string, TensorData]>, metadata?: Record<string, string>): Buffer {
  const list = checkNames([...tensors]);
  const { header, dataBytes } = headerBytes(list, metadata);
  const out = Buffer.alloc(8 + header.length + dataBytes);
  out.writeBigUInt64LE(BigInt(header.length), 0);
  header.copy(out, 8);
  let pos = 8 + header.length;
  for (const [, t] of list) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

/** The file's bytes as consecutive parts (length, header, then each tensor's bytes as a view, not a copy). */
export function* safetensorsParts(tensors: Iterable<[string, TensorData]>, metadata?: Record<string, string>): Generator<Uint8Array> {
  const list = checkNames([...tensors]);
  const { header } = headerBytes(list, metadata);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length), 0);
  yield len;
  yield header;
  for (const [, t] of list) yield new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** Writes a safetensors file atomically, streaming each tensor's bytes (no whole-file copy in memory). */
export function writeSafetensors(path: string, tensors: Iterable<[string, TensorData]>, metadata?: Record<string, string>): void {
  writeFileAtomicParts(path, safetensorsParts(tensors, metadata));
}

function checkNames(list: [string, TensorData][]): [string, TensorData][] {
  const seen = new Set<string>();
  for (const [name] of list) {
    if (name === '__metadata__' || name === '') throw new Error(`safetensors write: "${name}" is not a valid tensor name`);
    if (seen.has(name)) throw new Error(`safetensors write: tensor "${name}" given twice`);
    seen.add(name);
  }
  return list;
}

/** Reads and fully validates a safetensors file. Any problem is a UserError naming the file (and tensor). */
export function readSafetensors(path: string): SafetensorsFile {
  // Mapped, so only the tensor copies take memory (the pages are the OS's file cache and unmapped after GC).
  return decodeSafetensors(mapFile(path).bytes, path); // a missing file is a UserError naming the path and errno
}

/** Parses safetensors bytes; `source` names the file in errors. Tensor data is copied out of `buf`. */
export function decodeSafetensors(buf: Uint8Array, source: string): SafetensorsFile {
  const fail = (msg: string): never => {
    throw new UserError(`${source}: not a valid safetensors file: ${msg}`);
  };
  if (buf.byteLength < 8) fail(`${buf.byteLength} bytes is too short for the 8-byte header length (truncated?)`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER)) fail(`header length ${n64} is larger than the 100 MB limit (corrupt length?)`);
  const n = Number(n64);
  if (8 + n > buf.byteLength) fail(`header length ${n} runs past the end of the ${buf.byteLength}-byte file (truncated?)`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n));
  } catch {
    return fail('the header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail('the header does not start with "{"');
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return fail(`the header is not valid JSON (${describeError(e)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return fail('the header is not a JSON object');

  const dataStart = 8 + n;
  const dataLen = buf.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('"__metadata__" is not an object of strings');
      for (const [k, v] of Object.entries(raw as object)) {
        if (typeof v !== 'string') fail(`"__metadata__" value "${k}" is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const bad = (what: string): never => fail(`tensor "${name}": ${what}`);
    if (typeof raw !== 'object' || raw === null) bad('entry is not an object');
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e.dtype !== 'string' || !(e.dtype in DTYPE_BYTES)) {
      bad(`unsupported dtype ${JSON.stringify(e.dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`);
    }
    const dtype = e.dtype as SafetensorsDtype;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) bad('shape is not a list of non-negative integers');
    const shape = e.shape as number[];
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      bad('data_offsets is not a pair of non-negative integers');
    }
    const [begin, end] = off as [number, number];
    if (end < begin) bad(`data_offsets [${begin}, ${end}] end before they begin`);
    const want = numel(shape) * DTYPE_BYTES[dtype];
    if (end - begin !== want) bad(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} shape [${shape.join(', ')}] needs ${want}`);
    if (end > dataLen) bad(`data_offsets [${begin}, ${end}] run past the end of the data (${dataLen} bytes; truncated file?)`);
    entries.push({ name, dtype, shape, begin, end });
  }
  // The data section is exactly the tensors laid end to end: no overlaps, no gaps, nothing after the last one.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const t of sorted) {
    if (t.begin < pos) {
      const prev = sorted.find((o) => o !== t && o.begin < t.end && t.begin < o.end);
      fail(`tensor "${t.name}": data_offsets [${t.begin}, ${t.end}] overlap tensor "${prev?.name ?? '?'}"`);
    }
    if (t.begin > pos) fail(`tensor "${t.name}": gap of ${t.begin - pos} bytes before its data_offsets [${t.begin}, ${t.end}]`);
    pos = t.end;
  }
  if (pos !== dataLen) fail(`${dataLen - pos} bytes after the last tensor's data (expected the data section to be ${pos} bytes)`);

  const tensors = new Map<string, LoadedTensor>();
  for (const t of entries) {
    const ab = new Uint8Array(buf.subarray(dataStart + t.begin, dataStart + t.end)).buffer; // a fresh, aligned copy
    tensors.set(t.name, { dtype: t.dtype, shape: t.shape, data: toArray(t.dtype, ab) });
  }
  return { tensors, metadata };
}

function toArray(dtype: SafetensorsDtype, ab: ArrayBuffer): ReadArray {
  switch (dtype) {
    case 'F32':
      return new Float32Array(ab);
    case 'F64':
      return new Float64Array(ab);
    case 'I32':
      return new Int32Array(ab);
    case 'I64':
      return new BigInt64Array(ab);
    case 'U8':
      return new Uint8Array(ab);
    case 'BF16': {
      // bf16 is the top half of an f32.
      const src = new Uint16Array(ab);
      const out = new Uint32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
      return new Float32Array(out.buffer);
    }
    case 'F16': {
      const src = new Uint16Array(ab);
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = halfToFloat(src[i]!);
      return out;
    }
  }
}

/** IEEE binary16 → number: sign, 5-bit exponent (bias 15), 10-bit mantissa; subnormals, inf and NaN included. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * Takes tensor `name` from a loaded file as Float32Array with exactly `shape`: a missing name or a different shape is
 * a UserError naming the file and tensor. Float dtypes are converted; integer dtypes are refused.
 */
export function expectFloat32(file: SafetensorsFile, name: string, shape: readonly number[], source: string): Float32Array {
  const t = file.tensors.get(name);
  if (!t) throw new UserError(`${source}: tensor "${name}" is missing`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new UserError(`${source}: tensor "${name}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
  if (t.data instanceof Float32Array) return t.data;
  if (t.data instanceof Float64Array) return Float32Array.from(t.data);
  throw new UserError(`${source}: tensor "${name}" has dtype ${t.dtype}, expected a float dtype (F32, F64, BF16, F16)`);
}

/** Names in the file that are not in `expected` and names in `expected` missing from the file, as one UserError. */
export function checkTensorNames(file: SafetensorsFile, expected: Iterable<string>, source: string): void {
  const want = new Set(expected);
  const missing = [...want].filter((n) => !file.tensors.has(n));
  const extra = [...file.tensors.keys()].filter((n) => !want.has(n));
  if (missing.length || extra.length) {
    const parts: string[] = [];
    if (missing.length) parts.push(`missing tensors: ${missing.join(', ')}`);
    if (extra.length) parts.push(`unexpected tensors: ${extra.join(', ')}`);
    throw new UserError(`${source}: tensor names do not match the model (${parts.join('; ')})`);
  }
}
