// Reference kernels for copies, elementwise functions, broadcasting binaries, where and dropout.
// Plain loops in float64 arithmetic; the oracle every other backend is tested against.
import type { AnyArray, BinaryOp, FloatArray, Kernels, StridedArg, UnaryOp } from '../kernels.js';
import { hashUniform } from '../random.js';
import { gelu, geluGrad, geluTanh, geluTanhGrad, sigmoid } from './math.js';
import { forEachOffset } from './strided.js';

type ElementwiseKernels = Pick<
  Kernels<FloatArray>,
  'copyStrided' | 'fill' | 'cast' | 'unary' | 'unaryBackward' | 'binary' | 'where' | 'dropout'
>;

export function unaryValue(op: UnaryOp, x: number, p: number): number {
  switch (op) {
    case 'neg': return -x;
    case 'exp': return Math.exp(x);
    case 'log': return Math.log(x);
    case 'sqrt': return Math.sqrt(x);
    case 'rsqrt': return 1 / Math.sqrt(x);
    case 'tanh': return Math.tanh(x);
    case 'relu': return x > 0 || Number.isNaN(x) ? x : 0; // NaN propagates, as in PyTorch
    case 'gelu': return gelu(x);
    case 'gelu_tanh': return geluTanh(x);
    case 'silu': return x * sigmoid(x);
    case 'sigmoid': return sigmoid(x);
    case 'abs': return Math.abs(x);
    case 'square': return x * x;
    case 'pow_scalar': return Math.pow(x, p);
    case 'mul_scalar': return x * p;
    case 'add_scalar': return x + p;
  }
}

/** dy/dx at x, given y = f(x). */
export function unaryDerivative(op: UnaryOp, x: number, y: number, p: number): number {
  switch (op) {
    case 'neg': return -1;
    case 'exp': return y;
    case 'log': return 1 / x;
    case 'sqrt': return 0.5 / y;
    case 'rsqrt': return -0.5 * y * y * y; // d x^{-1/2} = −½ x^{−3/2}
    case 'tanh': return 1 - y * y;
    case 'relu': return x > 0 ? 1 : Number.isNaN(x) ? NaN : 0;
    case 'gelu': return geluGrad(x);
    case 'gelu_tanh': return geluTanhGrad(x);
    case 'silu': { const s = sigmoid(x); return s + x * s * (1 - s); }
    case 'sigmoid': return y * (1 - y);
    case 'abs': return x > 0 ? 1 : x < 0 ? -1 : Number.isNaN(x) ? NaN : 0;
    case 'square': return 2 * x;
    case 'pow_scalar': return p === 0 ? 0 : p * Math.pow(x, p - 1);
    case 'mul_scalar': return p;
    case 'add_scalar': return 1;
  }
}

export function binaryValue(op: BinaryOp, a: number, b: number): number {
  switch (op) {
    case 'add': return a + b;
    case 'sub': return a - b;
    case 'mul': return a * b;
    case 'div': return a / b;
    case 'pow': return Math.pow(a, b);
    case 'maximum': return Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b);
    case 'minimum': return Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.min(a, b);
    case 'eq': return a === b ? 1 : 0;
    case 'ne': return a !== b ? 1 : 0;
    case 'lt': return a < b ? 1 : 0;
    case 'le': return a <= b ? 1 : 0;
    case 'gt': return a > b ? 1 : 0;
    case 'ge': return a >= b ? 1 : 0;
  }
}

function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d]!;
  }
  return strides;
}

export const elementwiseKernels: ElementwiseKernels = {
  copyStrided(src: StridedArg, dst: StridedArg, shape: readonly number[]): void {
    const s = src.data;
    const d = dst.data;
    forEachOffset(shape, [src, dst], (o) => {
      d[o[1]!] = s[o[0]!]!;
    });
  },

  fill(dst: AnyArray, value: number, offset: number, n: number): void {
    dst.fill(value, offset, offset + n);
  },

  cast(src: AnyArray, dst: AnyArray, n: number): void {
    const toInt = dst instanceof Int32Array;
    for (let i = 0; i < n; i++) dst[i] = toInt ? Math.trunc(src[i]!) : src[i]!;
  },

  unary(op, x, y, n, p) {
    for (let i = 0; i < n; i++) y[i] = unaryValue(op, x[i]!, p);
  },

  unaryBackward(op, x, y, gy, gx, n, p) {
    for (let i = 0; i < n; i++) gx[i] = gy[i]! * unaryDerivative(op, x[i]!, y[i]!, p);
  },

  binary(op, a, b, out, shape) {
    const ad = a.data;
    const bd = b.data;
    let i = 0;
    forEachOffset(shape, [a, b], (o) => {
      out[i++] = binaryValue(op, ad[o[0]!]!, bd[o[1]!]!);
    });
  },

  where(cond, a, b, out, shape) {
    const cd = cond.data;
    const ad = a.data;
    const bd = b.data;
    let i = 0;
    forEachOffset(shape, [cond, a, b], (o) => {
      out[i++] = cd[o[0]!]! !== 0 ? ad[o[1]!]! : bd[o[2]!]!;
    });
  },

  dropout(x, y, n, p, seed) {
    const scale = p < 1 ? 1 / (1 - p) : 0;
    for (let i = 0; i < n; i++) y[i] = hashUniform(seed, i) >= p ? x[i]! * scale : 0;
  },
};

export { contiguousStrides };
