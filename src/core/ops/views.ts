// Shape ops: reshape, permute/transpose, slice, expand, squeeze/unsqueeze and contiguous. Each is a view
// (no copy) where the strides allow; backward maps the gradient back through the same view.
import { record } from '../autograd.js';
import { broadcastShapes, fmt, normAxis, numel, ShapeError } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { alloc, dense, kernels, strided, view } from './util.js';
import { sumTo } from './reduce.js';

export function contiguous(t: Tensor): Tensor {
  if (t.isContiguous) return t;
  const out = dense(t);
  return record('contiguous', [t], out, (g) => [g]);
}

/** Reshape to `shape` (one dim may be −1). A view when t is contiguous, else a copy. */
export function reshape(t: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1);
  const inferred = shape.length - known.length;
  if (inferred > 1) throw new ShapeError(`reshape: at most one −1 allowed, got ${fmt(shape)}`);
  const rest = numel(known);
  const target = shape.map((d) => (d === -1 ? (rest === 0 ? 0 : t.size / rest) : d));
  if (numel(target) !== t.size || target.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new ShapeError(`reshape: cannot reshape ${t.describe()} to ${fmt(shape)}`);
  }
  const src = t.isContiguous ? t : dense(t);
  const strides = new Array<number>(target.length);
  let s = 1;
  for (let d = target.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= target[d]!;
  }
  const out = view(src, target, strides, src.offset);
  if (src !== t) src.dispose();
  return record('reshape', [t], out, (g) => [reshape(g, t.shape)]);
}

export function flatten(t: Tensor): Tensor {
  return reshape(t, [t.size]);
}

export function permute(t: Tensor, axes: readonly number[]): Tensor {
  if (axes.length !== t.ndim) throw new ShapeError(`permute: ${axes.length} axes given for ${t.describe()}`);
  const norm = axes.map((a) => normAxis('permute', a, t.ndim));
  if (new Set(norm).size !== norm.length) throw new ShapeError(`permute: axes ${fmt(axes)} repeat a dim`);
  const out = view(t, norm.map((a) => t.shape[a]!), norm.map((a) => t.strides[a]!), t.offset);
  const inverse = new Array<number>(norm.length);
  norm.forEach((a, i) => (inverse[a] = i));
  return record('permute', [t], out, (g) => [permute(g, inverse)]);
}

export function transpose(t: Tensor, a = -2, b = -1): Tensor {
  const axes = t.shape.map((_, i) => i);
  const x = normAxis('transpose', a, t.ndim);
  const y = normAxis('transpose', b, t.ndim);
  axes[x] = y;
  axes[y] = x;
  return permute(t, axes);
}

/** Elements [start, end) along `axis` (negative indices count from the end), as a view. */
export function slice(t: Tensor, axis: number, start: number, end?: number): Tensor {
  const ax = normAxis('slice', axis, t.ndim);
  const n = t.shape[ax]!;
  const s = Math.max(0, start < 0 ? start + n : start);
  const e = Math.min(n, end === undefined ? n : end < 0 ? end + n : end);
  if (s > e) throw new ShapeError(`slice: empty or reversed range [${start}, ${end}) on axis ${axis} of ${t.describe()}`);
  const shape = [...t.shape];
  shape[ax] = e - s;
  const out = view(t, shape, t.strides, t.offset + s * t.strides[ax]!);
  return record('slice', [t], out, (g) => {
    // The gradient is g inside the slice and 0 elsewhere.
    const gx = alloc(t.shape, g.dtype, true);
    const target = { data: gx.data, offset: s * gx.strides[ax]!, strides: gx.strides };
    kernels(g).copyStrided(strided(g), target, g.shape);
    return [gx];
  });
}

/** Broadcasts size-1 dims (and new leading dims) to `shape` without copying (stride 0). */
export function expand(t: Tensor, shape: readonly number[]): Tensor {
  const target = broadcastShapes('expand', t.shape, shape);
  if (target.length !== shape.length || target.some((d, i) => d !== shape[i])) {
    throw new ShapeError(`expand: cannot expand ${t.describe()} to ${fmt(shape)}`);
  }
  const lead = shape.length - t.ndim;
  const strides = shape.map((d, i) => (i < lead || t.shape[i - lead] !== d ? 0 : t.strides[i - lead]!));
  const out = view(t, shape, strides, t.offset);
  return record('expand', [t], out, (g) => [sumTo(g, t.shape)]);
}

export function unsqueeze(t: Tensor, axis: number): Tensor {
  const ax = axis < 0 ? axis + t.ndim + 1 : axis;
  if (ax < 0 || ax > t.ndim) throw new ShapeError(`unsqueeze: axis ${axis} out of range for ${t.describe()}`);
  const shape = [...t.shape];
  shape.splice(ax, 0, 1);
  return reshape(t, shape);
}

export function squeeze(t: Tensor, axis: number): Tensor {
  const ax = normAxis('squeeze', axis, t.ndim);
  if (t.shape[ax] !== 1) throw new ShapeError(`squeeze: axis ${axis} of ${t.describe()} has size ${t.shape[ax]}, not 1`);
  return reshape(t, t.shape.filter((_, i) => i !== ax));
}
