// Helpers shared by the op files: typed access to a tensor's arrays, allocation of outputs, views, and
// dense (contiguous, offset 0) copies for kernels that need them.
import { kernelsFor } from '../backend.js';
import type { DType } from '../dtype.js';
import type { FloatArray, IndexArray, Kernels, StridedArg } from '../kernels.js';
import { contiguousStrides, fmt, numel, type Shape } from '../shape.js';
import { newStorage } from '../storage.js';
import { Tensor } from '../tensor.js';

export function kernels(t: Tensor): Kernels<FloatArray> {
  return kernelsFor(t.dtype);
}

export function fdata(op: string, t: Tensor): FloatArray {
  if (t.dtype === 'int32') throw new TypeError(`${op}: expected a float tensor, got ${t.describe()}`);
  return t.data as FloatArray;
}

export function idata(op: string, t: Tensor): IndexArray {
  if (t.dtype !== 'int32') throw new TypeError(`${op}: expected an int32 index tensor, got ${t.describe()}`);
  return t.data as IndexArray;
}

export function strided(t: Tensor): StridedArg {
  return { data: t.data, offset: t.offset, strides: t.strides };
}

export function fstrided(op: string, t: Tensor): StridedArg<FloatArray> {
  return { data: fdata(op, t), offset: t.offset, strides: t.strides };
}

/** A fresh contiguous tensor (zero-filled when asked; otherwise the kernel must write every element). */
export function alloc(shape: Shape, dtype: DType, zero = false): Tensor {
  return new Tensor(newStorage(dtype, numel(shape), zero), [...shape], contiguousStrides(shape), 0);
}

/** A view sharing t's storage. */
export function view(t: Tensor, shape: readonly number[], strides: readonly number[], offset: number): Tensor {
  t.storage.retain();
  return new Tensor(t.storage, shape, strides, offset);
}

/** t itself when its array can go to a kernel as is, else a dense copy (no autograd). */
export function dense(t: Tensor): Tensor {
  if (t.isDense) return t;
  const out = alloc(t.shape, t.dtype);
  kernels(t).copyStrided(strided(t), { data: out.data, offset: 0, strides: out.strides }, t.shape);
  return out;
}

/** Disposes `copy` when it is a temporary made by dense() for `original`. */
export function dropCopy(copy: Tensor, original: Tensor): void {
  if (copy !== original) copy.dispose();
}

export function sameDtype(op: string, ...ts: Tensor[]): void {
  const d = ts[0]!.dtype;
  for (const t of ts) {
    if (t.dtype !== d) throw new TypeError(`${op}: dtypes differ (${ts.map((x) => x.describe()).join(', ')})`);
  }
}

export function expectNdim(op: string, t: Tensor, ndim: number, what: string): void {
  if (t.ndim !== ndim) throw new RangeError(`${op}: ${what} must have ${ndim} dims, got ${t.describe()}`);
}

export function expectShape(op: string, t: Tensor, shape: Shape, what: string): void {
  if (t.ndim !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new RangeError(`${op}: ${what} must have shape ${fmt(shape)}, got ${t.describe()}`);
  }
}
