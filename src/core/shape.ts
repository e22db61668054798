// Shape arithmetic: element counts, row-major strides, broadcasting and axis normalisation, with errors
// that name the op and the shapes involved.

export type Shape = readonly number[];

export class ShapeError extends Error {
  override name = 'ShapeError';
}

export function fmt(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d]!;
  }
  return strides;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function checkShape(op: string, shape: Shape): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`${op}: invalid shape ${fmt(shape)} (dims must be integers ≥ 0)`);
  }
}

/** NumPy broadcasting: align trailing dims; each pair must be equal or contain a 1. */
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const nd = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(nd).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const d = s[s.length - 1 - i]!;
      const j = nd - 1 - i;
      if (out[j] === 1) out[j] = d;
      else if (d !== 1 && d !== out[j]) {
        throw new ShapeError(`${op}: shapes ${shapes.map(fmt).join(' and ')} cannot be broadcast together`);
      }
    }
  }
  return out;
}

/** Strides that read a tensor of `shape`/`strides` as if it had the (broadcast) shape `target`: 0 on expanded dims. */
export function broadcastStrides(shape: Shape, strides: readonly number[], target: Shape): number[] {
  const out = new Array<number>(target.length).fill(0);
  const lead = target.length - shape.length;
  for (let i = 0; i < shape.length; i++) out[lead + i] = shape[i] === 1 && target[lead + i] !== 1 ? 0 : strides[i]!;
  return out;
}

/** Resolves a possibly negative axis against `ndim`. */
export function normAxis(op: string, axis: number, ndim: number): number {
  const a = axis < 0 ? axis + ndim : axis;
  if (!Number.isInteger(a) || a < 0 || a >= ndim) throw new ShapeError(`${op}: axis ${axis} is out of range for ${ndim} dims`);
  return a;
}
