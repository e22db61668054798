// Reductions: sum, mean and max over axes, and sumTo (the adjoint of broadcasting). Multi-axis reductions run
// one axis at a time as (outer, r, inner) passes over dense data.
import { record } from '../autograd.js';
import { fmt, normAxis, ShapeError } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { alloc, dense, dropCopy, fdata, kernels } from './util.js';
import { expand, reshape } from './views.js';
import { mulScalar } from './elementwise.js';

function axesOf(op: string, t: Tensor, axis?: number | readonly number[]): number[] {
  if (axis === undefined) return t.shape.map((_, i) => i);
  const list = typeof axis === 'number' ? [axis] : [...axis];
  const norm = list.map((a) => normAxis(op, a, t.ndim));
  if (new Set(norm).size !== norm.length) throw new ShapeError(`${op}: repeated axis in ${fmt(list)}`);
  return norm.sort((a, b) => b - a);
}

/** Sum over `axes` of dense x (no autograd), returned with those dims kept as size 1. */
function sumKeep(x: Tensor, axes: readonly number[]): Tensor {
  let cur = dense(x);
  const shape = [...x.shape];
  for (const ax of axes) {
    const r = shape[ax]!;
    const outer = shape.slice(0, ax).reduce((a, b) => a * b, 1);
    const inner = shape.slice(ax + 1).reduce((a, b) => a * b, 1);
    shape[ax] = 1;
    const next = alloc(shape, x.dtype);
    kernels(x).reduce('sum', fdata('sum', cur), fdata('sum', next), outer, r, inner, null);
    if (cur !== x) cur.dispose();
    cur = next;
  }
  // Always a fresh tensor, so callers may dispose it without touching x.
  return cur === x ? copyOf(x) : cur;
}

function copyOf(x: Tensor): Tensor {
  const out = alloc(x.shape, x.dtype);
  kernels(x).copyStrided({ data: x.data, offset: x.offset, strides: x.strides }, { data: out.data, offset: 0, strides: out.strides }, x.shape);
  return out;
}

export function sum(x: Tensor, axis?: number | readonly number[], keepdim = false): Tensor {
  fdata('sum', x);
  const axes = axesOf('sum', x, axis);
  const kept = sumKeep(x, axes);
  const outShape = keepdim ? kept.shape : x.shape.filter((_, i) => !axes.includes(i));
  const out = keepdim ? kept : reshape(kept, outShape);
  if (out !== kept) kept.dispose();
  return record('sum', [x], out, (g) => {
    const gk = reshape(g, kept.shape);
    const ge = expand(gk, x.shape);
    if (ge !== gk) gk.dispose();
    return [ge];
  });
}

export function mean(x: Tensor, axis?: number | readonly number[], keepdim = false): Tensor {
  const axes = axesOf('mean', x, axis);
  const count = axes.reduce((n, a) => n * x.shape[a]!, 1);
  const s = sum(x, axis, keepdim);
  return mulScalar(s, count === 0 ? NaN : 1 / count);
}

/** Maximum along one axis (NaN wins; ties go to the lower index). Gradient flows to the chosen element. */
export function max(x: Tensor, axis: number, keepdim = false): Tensor {
  const ax = normAxis('max', axis, x.ndim);
  const r = x.shape[ax]!;
  if (r === 0) throw new ShapeError(`max: axis ${axis} of ${x.describe()} is empty`);
  const outer = x.shape.slice(0, ax).reduce((a, b) => a * b, 1);
  const inner = x.shape.slice(ax + 1).reduce((a, b) => a * b, 1);
  const keptShape = x.shape.map((d, i) => (i === ax ? 1 : d));
  const xd = dense(x);
  const kept = alloc(keptShape, x.dtype);
  const argmax = alloc(keptShape, 'int32');
  kernels(x).reduce('max', fdata('max', xd), fdata('max', kept), outer, r, inner, argmax.data as Int32Array);
  dropCopy(xd, x);
  const out = keepdim ? kept : reshape(kept, x.shape.filter((_, i) => i !== ax));
  if (out !== kept) kept.dispose();
  return record('max', [x], out, (g) => {
    const gd = dense(g);
    const gx = alloc(x.shape, x.dtype, true);
    kernels(x).scatterAdd(fdata('max', gd), argmax.data as Int32Array, fdata('max', gx), outer, r, 1, inner);
    dropCopy(gd, g);
    return [gx];
  });
}

/**
 * Index of the maximum along one axis, as an int32 tensor without that axis (ties to the lower index; no gradient:
 * indices are not differentiable). The same reduce kernel as max.
 */
export function argmax(x: Tensor, axis: number): Tensor {
  const ax = normAxis('argmax', axis, x.ndim);
  const r = x.shape[ax]!;
  if (r === 0) throw new ShapeError(`argmax: axis ${axis} of ${x.describe()} is empty`);
  const outer = x.shape.slice(0, ax).reduce((a, b) => a * b, 1);
  const inner = x.shape.slice(ax + 1).reduce((a, b) => a * b, 1);
  const outShape = x.shape.filter((_, i) => i !== ax);
  const xd = dense(x);
  const kept = alloc(outShape, x.dtype);
  const idx = alloc(outShape, 'int32');
  kernels(x).reduce('max', fdata('argmax', xd), fdata('argmax', kept), outer, r, inner, idx.data as Int32Array);
  dropCopy(xd, x);
  kept.dispose();
  return idx;
}

/** Sums g over the dims that broadcasting expanded, so that it has `shape` (identity when shapes match). */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.ndim === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.ndim - shape.length;
  if (lead < 0) throw new ShapeError(`sumTo: cannot reduce ${g.describe()} to ${fmt(shape)}`);
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  // Common case (bias gradients): reduce a leading block of dims in one pass over (rows, rest).
  if (axes.length > 1 && axes.every((a, i) => a === i) && g.isContiguous) {
    const rows = g.shape.slice(0, axes.length).reduce((p, q) => p * q, 1);
    const flat = reshape(g, [rows, -1]);
    const kept = sumKeep(flat, [0]);
    flat.dispose();
    const out = reshape(kept, shape);
    if (out !== kept) kept.dispose();
    return out;
  }
  const kept = sumKeep(g, axes.sort((a, b) => b - a));
  const out = reshape(kept, shape);
  if (out !== kept) kept.dispose();
  return out;
}
