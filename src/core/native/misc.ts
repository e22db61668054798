// Typed wrappers over the native addon's non-GEMM, non-attention kernels (native/src/elementwise.cc, rowwise.cc,
// indexing.cc, optim.cc): every member of Kernels<Float32Array> except matmul (and matmulBf16), attention, attentionBackward and quantMatmul.
// Not the backend table itself, and no checks here: the C++ entry points validate every length and index.
import type { AnyArray, BinaryOp, IndexArray, Kernels, StridedArg, UnaryOp } from '../kernels.js';
import { loadAddon } from './addon.js';

type F = Float32Array;
type Shape = readonly number[];
type Strides = readonly number[];

/** The addon's entry points as this file calls them (argument order fixed by the C++ side). */
interface MiscAddon {
  copyStrided(src: AnyArray, srcOffset: number, srcStrides: Strides, dst: AnyArray, dstOffset: number, dstStrides: Strides, shape: Shape): void;
  fill(dst: AnyArray, value: number, offset: number, n: number): void;
  cast(src: AnyArray, dst: AnyArray, n: number): void;
  unary(op: number, x: F, y: F, n: number, p: number): void;
  unaryBackward(op: number, x: F, y: F, gy: F, gx: F, n: number, p: number): void;
  binary(op: number, a: F, aOffset: number, aStrides: Strides, b: F, bOffset: number, bStrides: Strides, out: F, shape: Shape): void;
  where(cond: AnyArray, cOffset: number, cStrides: Strides, a: F, aOffset: number, aStrides: Strides, b: F, bOffset: number, bStrides: Strides, out: F, shape: Shape): void;
  dropout(x: F, y: F, n: number, p: number, seed: number): void;
  reduce(isMax: boolean, x: F, out: F, outer: number, r: number, inner: number, argmax: IndexArray | null): void;
  sumSquares(x: F, n: number): number;
  cumsum(x: F, y: F, outer: number, r: number, inner: number, reverse: boolean): void;
  softmax(x: F, y: F, rows: number, cols: number, log: boolean): void;
  softmaxBackward(y: F, gy: F, gx: F, rows: number, cols: number, log: boolean): void;
  layernorm(x: F, w: F | null, b: F | null, y: F, mean: F, rstd: F, rows: number, C: number, eps: number): void;
  layernormBackward(x: F, w: F | null, mean: F, rstd: F, gy: F, gx: F, gw: F | null, gb: F | null, rows: number, C: number): void;
  rmsnorm(x: F, w: F | null, y: F, rstd: F, rows: number, C: number, eps: number): void;
  rmsnormBackward(x: F, w: F | null, rstd: F, gy: F, gx: F, gw: F | null, rows: number, C: number): void;
  crossEntropy(logits: F, targets: IndexArray, losses: F, lse: F, N: number, V: number, ignoreIndex: number): void;
  crossEntropyBackward(logits: F, targets: IndexArray, lse: F, gLoss: F, glogits: F, N: number, V: number, ignoreIndex: number): void;
  topk(x: F, values: F, indices: IndexArray, rows: number, cols: number, k: number): void;
  embedding(weight: F, ids: IndexArray, out: F, n: number, C: number, V: number): void;
  embeddingBackward(gy: F, ids: IndexArray, gw: F, n: number, C: number): void;
  gather(x: F, idx: IndexArray, out: F, outer: number, r: number, k: number, inner: number): void;
  scatterAdd(src: F, idx: IndexArray, out: F, outer: number, r: number, k: number, inner: number): void;
  adamw(param: F, grad: F, m: F, v: F, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number, gradScale: number): void;
  simdLevel(level?: SimdLevel): SimdLevel;
}

export type SimdLevel = 'avx512' | 'avx2' | 'generic';

// Codes in native/src/elementwise.cc's enum order; a Record so a new op is a compile error until mapped.
const UNARY_CODE: Record<UnaryOp, number> = {
  neg: 0, exp: 1, log: 2, sqrt: 3, rsqrt: 4, tanh: 5, relu: 6, gelu: 7, gelu_tanh: 8, silu: 9, sigmoid: 10,
  abs: 11, square: 12, pow_scalar: 13, mul_scalar: 14, add_scalar: 15,
};
const BINARY_CODE: Record<BinaryOp, number> = {
  add: 0, sub: 1, mul: 2, div: 3, pow: 4, maximum: 5, minimum: 6, eq: 7, ne: 8, lt: 9, le: 10, gt: 11, ge: 12,
};

let addon: MiscAddon | null = null;
function lib(): MiscAddon {
  addon ??= loadAddon() as unknown as MiscAddon;
  return addon;
}

/** Reads or lowers the SIMD level the native kernels use (tests run every level the CPU has). */
export function nativeSimdLevel(level?: SimdLevel): SimdLevel {
  return level === undefined ? lib().simdLevel() : lib().simdLevel(level);
}

export const nativeMisc: Omit<Kernels<Float32Array>, 'matmul' | 'matmulBf16' | 'attention' | 'attentionBackward' | 'groupedMatmul' | 'groupedMatmulGradW' | 'quantMatmul' | 'bucketAttention' | 'bucketAttentionBackward'> = {
  copyStrided(src: StridedArg, dst: StridedArg, shape: Shape): void {
    lib().copyStrided(src.data, src.offset, src.strides, dst.data, dst.offset, dst.strides, shape);
  },
  fill(dst, value, offset, n) {
    lib().fill(dst, value, offset, n);
  },
  cast(src, dst, n) {
    lib().cast(src, dst, n);
  },
  unary(op, x, y, n, p) {
    lib().unary(UNARY_CODE[op], x, y, n, p);
  },
  unaryBackward(op, x, y, gy, gx, n, p) {
    lib().unaryBackward(UNARY_CODE[op], x, y, gy, gx, n, p);
  },
  binary(op, a, b, out, shape) {
    lib().binary(BINARY_CODE[op], a.data, a.offset, a.strides, b.data, b.offset, b.strides, out, shape);
  },
  where(cond, a, b, out, shape) {
    lib().where(cond.data, cond.offset, cond.strides, a.data, a.offset, a.strides, b.data, b.offset, b.strides, out, shape);
  },
  reduce(op, x, out, outer, r, inner, argmax) {
    lib().reduce(op === 'max', x, out, outer, r, inner, argmax);
  },
  sumSquares(x, n) {
    return lib().sumSquares(x, n);
  },
  cumsum(x, y, outer, r, inner, reverse) {
    lib().cumsum(x, y, outer, r, inner, reverse);
  },
  softmax(x, y, rows, cols, log) {
    lib().softmax(x, y, rows, cols, log);
  },
  softmaxBackward(y, gy, gx, rows, cols, log) {
    lib().softmaxBackward(y, gy, gx, rows, cols, log);
  },
  layernorm(x, w, b, y, mean, rstd, rows, C, eps) {
    lib().layernorm(x, w, b, y, mean, rstd, rows, C, eps);
  },
  layernormBackward(x, w, mean, rstd, gy, gx, gw, gb, rows, C) {
    lib().layernormBackward(x, w, mean, rstd, gy, gx, gw, gb, rows, C);
  },
  rmsnorm(x, w, y, rstd, rows, C, eps) {
    lib().rmsnorm(x, w, y, rstd, rows, C, eps);
  },
  rmsnormBackward(x, w, rstd, gy, gx, gw, rows, C) {
    lib().rmsnormBackward(x, w, rstd, gy, gx, gw, rows, C);
  },
  embedding(weight, ids, out, n, C, V) {
    lib().embedding(weight, ids, out, n, C, V);
  },
  embeddingBackward(gy, ids, gw, n, C) {
    lib().embeddingBackward(gy, ids, gw, n, C);
  },
  crossEntropy(logits, targets, losses, lse, N, V, ignoreIndex) {
    lib().crossEntropy(logits, targets, losses, lse, N, V, ignoreIndex);
  },
  crossEntropyBackward(logits, targets, lse, gLoss, glogits, N, V, ignoreIndex) {
    lib().crossEntropyBackward(logits, targets, lse, gLoss, glogits, N, V, ignoreIndex);
  },
  dropout(x, y, n, p, seed) {
    lib().dropout(x, y, n, p, seed);
  },
  gather(x, idx, out, outer, r, k, inner) {
    lib().gather(x, idx, out, outer, r, k, inner);
  },
  scatterAdd(src, idx, out, outer, r, k, inner) {
    lib().scatterAdd(src, idx, out, outer, r, k, inner);
  },
  topk(x, values, indices, rows, cols, k) {
    lib().topk(x, values, indices, rows, cols, k);
  },
  adamw(args) {
    lib().adamw(args.param, args.grad, args.m, args.v, args.lr, args.beta1, args.beta2, args.eps, args.weightDecay, args.step, args.gradScale);
  },
};
