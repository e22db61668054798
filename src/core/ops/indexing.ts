// Ops that select, combine or scan along an axis: concat/split, where/maskedFill, gather, topk, cumsum.
import { record } from '../autograd.js';
import { broadcastShapes, broadcastStrides, fmt, normAxis, ShapeError } from '../shape.js';
import { scalar, type Tensor } from '../tensor.js';
import { sumTo } from './reduce.js';
import { alloc, dense, dropCopy, fdata, idata, kernels, sameDtype, strided } from './util.js';
import { slice } from './views.js';

function outerInner(shape: readonly number[], ax: number): [number, number] {
  return [shape.slice(0, ax).reduce((a, b) => a * b, 1), shape.slice(ax + 1).reduce((a, b) => a * b, 1)];
}

export function concat(ts: readonly Tensor[], axis = 0): Tensor {
  if (ts.length === 0) throw new ShapeError('concat: no tensors given');
  const first = ts[0]!;
  const ax = normAxis('concat', axis, first.ndim);
  sameDtype('concat', ...ts);
  for (const t of ts) {
    if (t.ndim !== first.ndim || t.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new ShapeError(`concat: shapes ${ts.map((x) => fmt(x.shape)).join(', ')} differ outside axis ${axis}`);
    }
  }
  const shape = [...first.shape];
  shape[ax] = ts.reduce((n, t) => n + t.shape[ax]!, 0);
  const out = alloc(shape, first.dtype);
  const k = kernels(first);
  const starts: number[] = [];
  let at = 0;
  for (const t of ts) {
    starts.push(at);
    k.copyStrided(strided(t), { data: out.data, offset: at * out.strides[ax]!, strides: out.strides }, t.shape);
    at += t.shape[ax]!;
  }
  return record('concat', ts, out, (g) => ts.map((t, i) => (t.requiresGrad ? slice(g, ax, starts[i]!, starts[i]! + t.shape[ax]!) : null)));
}

/** Splits along `axis` into pieces of the given sizes (views). */
export function split(t: Tensor, sizes: readonly number[], axis = 0): Tensor[] {
  const ax = normAxis('split', axis, t.ndim);
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== t.shape[ax]) throw new ShapeError(`split: sizes ${fmt(sizes)} do not add up to ${t.shape[ax]} (axis ${axis} of ${t.describe()})`);
  const out: Tensor[] = [];
  let at = 0;
  for (const s of sizes) {
    out.push(slice(t, ax, at, at + s));
    at += s;
  }
  return out;
}

/** cond ≠ 0 ? a : b, broadcasting all three. Gradients flow to the chosen side. */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  const like = typeof a === 'number' ? (typeof b === 'number' ? null : b) : a;
  const dtype = like?.dtype ?? 'float32';
  const at = typeof a === 'number' ? scalar(a, dtype) : a;
  const bt = typeof b === 'number' ? scalar(b, dtype) : b;
  sameDtype('where', at, bt);
  const shape = broadcastShapes('where', cond.shape, at.shape, bt.shape);
  const out = alloc(shape, dtype);
  const arg = (t: Tensor) => ({ data: t.data, offset: t.offset, strides: broadcastStrides(t.shape, t.strides, shape) });
  kernels(at).where(arg(cond), { ...arg(at), data: fdata('where', at) }, { ...arg(bt), data: fdata('where', bt) }, fdata('where', out), shape);
  return record('where', [at, bt], out, (g) => {
    const zero = scalar(0, dtype);
    const pick = (t: Tensor, first: boolean): Tensor | null => {
      if (!t.requiresGrad) return null;
      const full = where(cond, first ? g : zero, first ? zero : g);
      const r = sumTo(full, t.shape);
      if (r !== full) full.dispose();
      return r;
    };
    const grads = [pick(at, true), pick(bt, false)];
    zero.dispose();
    return grads;
  });
}

/** x with `value` wherever mask ≠ 0 (mask broadcasts against x). */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  return where(mask, value, x);
}

/** Values of x at idx along `axis`; idx has x's shape except along the axis. */
export function gather(x: Tensor, axis: number, idx: Tensor): Tensor {
  const ax = normAxis('gather', axis, x.ndim);
  if (idx.ndim !== x.ndim || idx.shape.some((d, i) => i !== ax && d !== x.shape[i])) {
    throw new ShapeError(`gather: index ${idx.describe()} must match ${x.describe()} except along axis ${axis}`);
  }
  const [outer, inner] = outerInner(x.shape, ax);
  const r = x.shape[ax]!;
  const kk = idx.shape[ax]!;
  const xd = dense(x);
  const id = dense(idx);
  const out = alloc(idx.shape, x.dtype);
  kernels(x).gather(fdata('gather', xd), idata('gather', id), fdata('gather', out), outer, r, kk, inner);
  dropCopy(xd, x);
  return record('gather', [x], out, (g) => {
    const gd = dense(g);
    const gx = alloc(x.shape, x.dtype, true);
    kernels(x).scatterAdd(fdata('gather', gd), idata('gather', id), fdata('gather', gx), outer, r, kk, inner);
    dropCopy(gd, g);
    return [gx];
  });
}

/** The k largest values along the last axis, sorted descending, with their int32 indices. */
export function topk(x: Tensor, k: number): { values: Tensor; indices: Tensor } {
  const cols = x.shape[x.ndim - 1]!;
  if (!Number.isInteger(k) || k < 0 || k > cols) throw new RangeError(`topk: k = ${k} is outside [0, ${cols}] for ${x.describe()}`);
  const rows = cols === 0 ? 0 : x.size / cols;
  const shape = [...x.shape.slice(0, -1), k];
  const xd = dense(x);
  const values = alloc(shape, x.dtype);
  const indices = alloc(shape, 'int32');
  kernels(x).topk(fdata('topk', xd), fdata('topk', values), indices.data as Int32Array, rows, cols, k);
  dropCopy(xd, x);
  record('topk', [x], values, (g) => {
    const gd = dense(g);
    const gx = alloc(x.shape, x.dtype, true);
    kernels(x).scatterAdd(fdata('topk', gd), indices.data as Int32Array, fdata('topk', gx), rows, cols, k, 1);
    dropCopy(gd, g);
    return [gx];
  });
  return { values, indices };
}

/** Running sum along `axis`; its gradient is the reverse running sum of the upstream gradient. */
export function cumsum(x: Tensor, axis: number): Tensor {
  const ax = normAxis('cumsum', axis, x.ndim);
  const [outer, inner] = outerInner(x.shape, ax);
  const r = x.shape[ax]!;
  const xd = dense(x);
  const y = alloc(x.shape, x.dtype);
  kernels(x).cumsum(fdata('cumsum', xd), fdata('cumsum', y), outer, r, inner, false);
  dropCopy(xd, x);
  return record('cumsum', [x], y, (g) => {
    const gd = dense(g);
    const gx = alloc(x.shape, x.dtype);
    kernels(x).cumsum(fdata('cumsum', gd), fdata('cumsum', gx), outer, r, inner, true);
    dropCopy(gd, g);
    return [gx];
  });
}
