// Elementwise ops: unary functions, broadcasting binary arithmetic and comparisons, scalar shortcuts.
// Backward rules sit beside each forward (gradients of broadcast inputs are summed back with sumTo).
import { record } from '../autograd.js';
import type { BinaryOp, UnaryOp } from '../kernels.js';
import { broadcastShapes, broadcastStrides } from '../shape.js';
import { scalar, type Tensor } from '../tensor.js';
import { sumTo } from './reduce.js';
import { alloc, dense, dropCopy, fdata, kernels, sameDtype } from './util.js';

/** y = f(x); backward gx = gy·f'(x) by the backend's unaryBackward kernel. */
export function unary(op: UnaryOp, x: Tensor, p = 0): Tensor {
  const xd = dense(x);
  const y = alloc(x.shape, x.dtype);
  kernels(x).unary(op, fdata(op, xd), fdata(op, y), x.size, p);
  return record(op, [x], y, (g) => {
    const gd = dense(g);
    const gx = alloc(x.shape, x.dtype);
    kernels(x).unaryBackward(op, fdata(op, xd), fdata(op, y), fdata(op, gd), fdata(op, gx), x.size, p);
    dropCopy(gd, g);
    return [gx];
  });
}

export const neg = (x: Tensor): Tensor => unary('neg', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
export const relu = (x: Tensor): Tensor => unary('relu', x);
/** GELU: exact (erf) by default, or the tanh approximation GPT-2 used. */
export const gelu = (x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor => unary(approximate === 'tanh' ? 'gelu_tanh' : 'gelu', x);
export const silu = (x: Tensor): Tensor => unary('silu', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);
export const square = (x: Tensor): Tensor => unary('square', x);
export const powScalar = (x: Tensor, p: number): Tensor => unary('pow_scalar', x, p);
export const mulScalar = (x: Tensor, s: number): Tensor => unary('mul_scalar', x, s);
export const addScalar = (x: Tensor, s: number): Tensor => unary('add_scalar', x, s);

/** Raw broadcasting binary kernel call (no autograd). */
function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  sameDtype(op, a, b);
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = alloc(shape, a.dtype);
  kernels(a).binary(
    op,
    { data: fdata(op, a), offset: a.offset, strides: broadcastStrides(a.shape, a.strides, shape) },
    { data: fdata(op, b), offset: b.offset, strides: broadcastStrides(b.shape, b.strides, shape) },
    fdata(op, out),
    shape,
  );
  return out;
}

type Operand = Tensor | number;

/** sumTo for a rule's gradient, releasing the unreduced temporary (never the upstream g itself). */
function reduceTo(gi: Tensor | null, input: Tensor, g: Tensor): Tensor | null {
  if (!gi) return null;
  const r = sumTo(gi, input.shape);
  if (r !== gi && gi !== g) gi.dispose();
  return r;
}

function asTensor(v: Operand, like: Tensor): Tensor {
  return typeof v === 'number' ? scalar(v, like.dtype) : v;
}

function binary(op: BinaryOp, a: Tensor, b: Tensor, rule: (g: Tensor) => [Tensor | null, Tensor | null]): Tensor {
  const out = binaryRaw(op, a, b);
  return record(op, [a, b], out, (g) => {
    const [ga, gb] = rule(g);
    return [reduceTo(ga, a, g), reduceTo(gb, b, g)];
  });
}

export function add(a: Tensor, b: Operand): Tensor {
  const bt = asTensor(b, a);
  return binary('add', a, bt, (g) => [a.requiresGrad ? g : null, bt.requiresGrad ? g : null]);
}

export function sub(a: Tensor, b: Operand): Tensor {
  const bt = asTensor(b, a);
  return binary('sub', a, bt, (g) => [a.requiresGrad ? g : null, bt.requiresGrad ? neg(g) : null]);
}

export function mul(a: Tensor, b: Operand): Tensor {
  const bt = asTensor(b, a);
  return binary('mul', a, bt, (g) => [a.requiresGrad ? binaryRaw('mul', g, bt) : null, bt.requiresGrad ? binaryRaw('mul', g, a) : null]);
}

// d(a/b) = da/b − a·db/b²
export function div(a: Tensor, b: Operand): Tensor {
  const bt = asTensor(b, a);
  return binary('div', a, bt, (g) => {
    const ga = binaryRaw('div', g, bt);
    if (!bt.requiresGrad) return [ga, null];
    const q = binaryRaw('div', ga, bt);
    const prod = binaryRaw('mul', q, a);
    const gb = neg(prod);
    q.dispose();
    prod.dispose();
    return [a.requiresGrad ? ga : (ga.dispose(), null), gb];
  });
}

// d(a^b) = b·a^(b−1)·da + a^b·ln(a)·db
export function pow(a: Tensor, b: Operand): Tensor {
  const bt = asTensor(b, a);
  const out = binaryRaw('pow', a, bt);
  return record('pow', [a, bt], out, (g) => {
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (a.requiresGrad) {
      const bm1 = addScalar(bt, -1);
      const p = binaryRaw('pow', a, bm1);
      const t = binaryRaw('mul', p, bt);
      ga = reduceTo(binaryRaw('mul', g, t), a, g);
      bm1.dispose();
      p.dispose();
      t.dispose();
    }
    if (bt.requiresGrad) {
      const la = log(a);
      const t = binaryRaw('mul', out, la);
      gb = reduceTo(binaryRaw('mul', g, t), bt, g);
      la.dispose();
      t.dispose();
    }
    return [ga, gb];
  });
}

/** Elementwise max; the gradient goes to a where a ≥ b, else to b. */
export function maximum(a: Tensor, b: Operand): Tensor {
  const bt = asTensor(b, a);
  return binary('maximum', a, bt, (g) => {
    const pick = binaryRaw('ge', a, bt);
    const ga = binaryRaw('mul', g, pick);
    const gb = binaryRaw('sub', g, ga);
    pick.dispose();
    return [ga, gb];
  });
}

export function minimum(a: Tensor, b: Operand): Tensor {
  const bt = asTensor(b, a);
  return binary('minimum', a, bt, (g) => {
    const pick = binaryRaw('le', a, bt);
    const ga = binaryRaw('mul', g, pick);
    const gb = binaryRaw('sub', g, ga);
    pick.dispose();
    return [ga, gb];
  });
}

/** Comparisons give 1 or 0 (float) and have no gradient. */
export function compare(op: 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge', a: Tensor, b: Operand): Tensor {
  return binaryRaw(op, a, asTensor(b, a));
}

export { binaryRaw };
