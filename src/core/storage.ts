// Memory ownership: reference-counted storages drawn from a pool of size-classed buffers, and scopes that release every
// tensor created inside them unless it is returned or kept. Live bytes are counted so tests can prove that a
// training loop does not grow. Not the tensor API itself (tensor.ts).
import { allocate, bytesPerElement, type DType } from './dtype.js';
import type { AnyArray } from './kernels.js';

/** Something a scope can release: tensors implement it. */
export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

export class Storage {
  private buffer: AnyArray | null;
  private refs = 1;

  /** pooled: the buffer came from the pool and goes back to it (arrays handed in by callers never do). */
  constructor(readonly dtype: DType, readonly length: number, buffer: AnyArray, private readonly pooled: boolean) {
    this.buffer = buffer;
  }

  get data(): AnyArray {
    if (!this.buffer) throw new Error('tensor storage used after it was disposed (keep() tensors you need beyond their scope)');
    return this.buffer;
  }

  get released(): boolean {
    return this.buffer === null;
  }

  retain(): void {
    this.refs++;
  }

  release(): void {
    if (!this.buffer) return;
    if (--this.refs === 0) {
      if (this.pooled) pool.give(this.buffer);
      else pool.liveBytes -= this.buffer.byteLength;
      this.buffer = null;
    }
  }
}

/**
 * The byte size a buffer of `bytes` is rounded up to: multiples of 64 up to 4 KiB, then four classes per power of
 * two (at most 25% spare). Shapes that vary from call to call (evaluation contexts, generation) then reuse each
 * other's buffers instead of allocating, and page-faulting, fresh memory every time.
 */
export function sizeClass(bytes: number): number {
  if (bytes <= 4096) return Math.max(64, Math.ceil(bytes / 64) * 64);
  const step = 2 ** Math.floor(Math.log2(bytes)) / 4;
  return Math.ceil(bytes / step) * step;
}

/** Free ArrayBuffers by size class; a storage gets a typed view of exactly its length over one. */
class BufferPool {
  private free = new Map<number, ArrayBuffer[]>();
  private pooledBytes = 0;
  liveBytes = 0;
  /** Buffers beyond this many pooled bytes are left to the garbage collector. */
  maxPooledBytes = 2 * 1024 ** 3;

  take(dtype: DType, n: number, zero: boolean): AnyArray {
    const bytes = n * bytesPerElement(dtype);
    this.liveBytes += bytes;
    const cls = sizeClass(bytes);
    const reused = this.free.get(cls)?.pop();
    if (!reused) return allocate(dtype, n, new ArrayBuffer(cls)); // fresh ArrayBuffers are zero-filled
    this.pooledBytes -= cls;
    const buf = allocate(dtype, n, reused);
    if (zero) buf.fill(0);
    return buf;
  }

  give(buf: AnyArray): void {
    this.liveBytes -= buf.byteLength;
    const cls = buf.buffer.byteLength;
    if (this.pooledBytes + cls > this.maxPooledBytes) return;
    let list = this.free.get(cls);
    if (!list) this.free.set(cls, (list = []));
    list.push(buf.buffer as ArrayBuffer);
    this.pooledBytes += cls;
  }

  clear(): void {
    this.free.clear();
    this.pooledBytes = 0;
  }

  get pooled(): number {
    return this.pooledBytes;
  }
}

const pool = new BufferPool();

export function newStorage(dtype: DType, n: number, zero = true): Storage {
  return new Storage(dtype, n, pool.take(dtype, n, zero), true);
}

/** Wraps an existing array (counted as live while the storage is; never recycled, since the caller may hold it). */
export function storageFrom(dtype: DType, data: AnyArray): Storage {
  pool.liveBytes += data.byteLength;
  return new Storage(dtype, data.length, data, false);
}

export const memory = {
  /** Bytes held by storages that are alive (not yet released to the pool). */
  get liveBytes(): number {
    return pool.liveBytes;
  },
  get pooledBytes(): number {
    return pool.pooled;
  },
  /** Drops pooled buffers so the garbage collector can reclaim them. */
  clearPool(): void {
    pool.clear();
  },
};

// ---- scopes ----

const scopes: Set<Disposable>[] = [];

/** Registers a new tensor with the innermost scope (tensors made outside any scope live until disposed). */
export function track(t: Disposable): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Removes a tensor from every open scope so that it outlives them (parameters, gradients, results). */
export function keep<T extends Disposable>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

/** Tensors (at any depth of arrays and plain objects) contained in a scope's return value. */
function collect(value: unknown, out: Set<Disposable>): void {
  if (value === null || typeof value !== 'object') return;
  if (isDisposable(value)) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, out);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, out);
}

function isDisposable(v: object): v is Disposable {
  return typeof (v as Partial<Disposable>).dispose === 'function' && 'isDisposed' in v;
}

/**
 * Runs fn in a scope: every tensor created inside is disposed at the end, except those in the return value
 * (which move to the enclosing scope) and those passed to keep().
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw err;
  }
  scopes.pop();
  const survivors = new Set<Disposable>();
  collect(result, survivors);
  for (const t of scope) {
    if (survivors.has(t)) track(t);
    else t.dispose();
  }
  return result;
}
