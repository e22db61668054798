// The Tensor: a shaped, strided view of a reference-counted storage, plus what autograd needs (requiresGrad,
// grad, and the node that produced it). Creation helpers live here; operations live in ops/.
import { dtypeOf, type DType } from './dtype.js';
import type { AnyArray } from './kernels.js';
import { Rng } from './random.js';
import { checkShape, contiguousStrides, fmt, numel, type Shape } from './shape.js';
import { newStorage, storageFrom, track, type Storage } from './storage.js';

/** The recorded operation that produced a tensor, with the rule that maps its output gradient to input gradients. */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** Gradients for each input (null where an input needs none), given the output's gradient. */
  backward(gradOut: Tensor): (Tensor | null)[];
}

export class Tensor {
  requiresGrad = false;
  grad: Tensor | null = null;
  node: GradNode | null = null;
  /** A name for error messages and parameter listings. */
  name = '';
  private disposed = false;

  constructor(
    readonly storage: Storage,
    readonly shape: readonly number[],
    readonly strides: readonly number[],
    readonly offset: number,
  ) {
    track(this);
  }

  get dtype(): DType {
    return this.storage.dtype;
  }

  get ndim(): number {
    return this.shape.length;
  }

  get size(): number {
    return numel(this.shape);
  }

  /** The whole backing array; index it with offset and strides (or use toArray()). */
  get data(): AnyArray {
    return this.storage.data;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Row-major with no gaps (offset may be non-zero). */
  get isContiguous(): boolean {
    let s = 1;
    for (let d = this.shape.length - 1; d >= 0; d--) {
      if (this.shape[d] !== 1 && this.strides[d] !== s) return false;
      s *= this.shape[d]!;
    }
    return true;
  }

  /** Contiguous, starting at 0, and covering the whole storage: data can be handed to a kernel as is. */
  get isDense(): boolean {
    return this.isContiguous && this.offset === 0 && this.storage.length === this.size;
  }

  describe(): string {
    return `${this.name ? this.name + ' ' : ''}${this.dtype}${fmt(this.shape)}`;
  }

  /** Elements in row-major order as a fresh typed array of the tensor's dtype. */
  toTypedArray(): AnyArray {
    const n = this.size;
    const src = this.data;
    if (this.isContiguous) return src.slice(this.offset, this.offset + n);
    const out = new (src.constructor as { new (n: number): AnyArray })(n);
    let i = 0;
    const idx = new Array<number>(this.ndim).fill(0);
    let off = this.offset;
    for (let c = 0; c < n; c++) {
      out[i++] = src[off]!;
      for (let d = this.ndim - 1; d >= 0; d--) {
        idx[d]! += 1;
        off += this.strides[d]!;
        if (idx[d]! < this.shape[d]!) break;
        off -= this.strides[d]! * this.shape[d]!;
        idx[d] = 0;
      }
    }
    return out;
  }

  toArray(): number[] {
    return Array.from(this.toTypedArray());
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new Error(`item(): tensor ${this.describe()} has ${this.size} elements, expected 1`);
    return this.data[this.offset]!;
  }

  /** Releases this tensor's hold on its storage (idempotent). Views keep the storage alive until they go too. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.storage.release();
    this.node = null;
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
  }
}

// ---- creation ----

export function empty(shape: Shape, dtype: DType = 'float32'): Tensor {
  checkShape('empty', shape);
  return new Tensor(newStorage(dtype, numel(shape), false), [...shape], contiguousStrides(shape), 0);
}

export function zeros(shape: Shape, dtype: DType = 'float32'): Tensor {
  checkShape('zeros', shape);
  return new Tensor(newStorage(dtype, numel(shape), true), [...shape], contiguousStrides(shape), 0);
}

export function full(shape: Shape, value: number, dtype: DType = 'float32'): Tensor {
  const t = empty(shape, dtype);
  t.data.fill(value);
  return t;
}

export function ones(shape: Shape, dtype: DType = 'float32'): Tensor {
  return full(shape, 1, dtype);
}

export function scalar(value: number, dtype: DType = 'float32'): Tensor {
  return full([], value, dtype);
}

/** A tensor over a copy of `values` (a typed array keeps its dtype unless one is given). */
export function tensor(values: ArrayLike<number>, shape?: Shape, dtype?: DType): Tensor {
  const dt = dtype ?? (ArrayBuffer.isView(values) ? dtypeOf(values as AnyArray) : 'float32');
  const s = shape ?? [values.length];
  checkShape('tensor', s);
  if (numel(s) !== values.length) {
    throw new Error(`tensor: ${values.length} values do not fill shape ${fmt(s)} (${numel(s)} elements)`);
  }
  const t = empty(s, dt);
  const d = t.data;
  for (let i = 0; i < values.length; i++) d[i] = values[i]!;
  return t;
}

/** Wraps `data` without copying; the tensor owns it from now on. */
export function fromArray(data: AnyArray, shape: Shape): Tensor {
  checkShape('fromArray', shape);
  if (numel(shape) !== data.length) throw new Error(`fromArray: ${data.length} values do not fill shape ${fmt(shape)}`);
  return new Tensor(storageFrom(dtypeOf(data), data), [...shape], contiguousStrides(shape), 0);
}

export function randn(shape: Shape, rng: Rng, std = 1, dtype: DType = 'float32'): Tensor {
  const t = empty(shape, dtype);
  const d = t.data;
  for (let i = 0; i < d.length; i++) d[i] = rng.normal() * std;
  return t;
}

export function uniform(shape: Shape, rng: Rng, low = 0, high = 1, dtype: DType = 'float32'): Tensor {
  const t = empty(shape, dtype);
  const d = t.data;
  for (let i = 0; i < d.length; i++) d[i] = low + (high - low) * rng.uniform();
  return t;
}

export function arange(n: number, dtype: DType = 'int32'): Tensor {
  const t = empty([n], dtype);
  for (let i = 0; i < n; i++) t.data[i] = i;
  return t;
}

export function isTensor(v: unknown): v is Tensor {
  return v instanceof Tensor;
}
