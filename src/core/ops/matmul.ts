// Matrix multiplication with autograd: (..., M, K)·(..., K, N) with broadcast batch dims. Transposed views
// (the last two dims swapped) go to the kernel as transpose flags instead of being copied. The matmul precision
// (fp32, or bf16 mixed precision for float32 tensors) applies to every product here, forward and backward.
import { record } from '../autograd.js';
import { broadcastShapes, ShapeError } from '../shape.js';
import type { FloatArray, MatmulArgs } from '../kernels.js';
import type { Tensor } from '../tensor.js';
import { sumTo } from './reduce.js';
import { alloc, dense, fdata, kernels, sameDtype } from './util.js';
import { expand, reshape, transpose } from './views.js';

/**
 * 'fp32': exact float32 products. 'bf16': mixed precision — float32 operands are rounded to bf16 as the GEMM packs
 * them and the products accumulate in fp32 (relative error per product ≤ 2⁻⁸); the tensors themselves (weights,
 * gradients, optimizer state, activations) stay float32, and so do every op other than matmul. float64 tensors
 * (gradient checks) are always exact.
 */
export type MatmulPrecision = 'fp32' | 'bf16';

let precision: MatmulPrecision = 'fp32';

/** Sets the precision of every later matmul and linear (and their backward products); returns the previous one. */
export function setMatmulPrecision(p: MatmulPrecision): MatmulPrecision {
  if (p !== 'fp32' && p !== 'bf16') throw new RangeError(`setMatmulPrecision: expected 'fp32' or 'bf16', got ${JSON.stringify(p)}`);
  const prev = precision;
  precision = p;
  return prev;
}

export function getMatmulPrecision(): MatmulPrecision {
  return precision;
}

/** Runs fn with matmuls in precision p, restoring the previous precision after. */
export function withMatmulPrecision<T>(p: MatmulPrecision, fn: () => T): T {
  const prev = setMatmulPrecision(p);
  try {
    return fn();
  } finally {
    precision = prev;
  }
}

/** The GEMM kernel for a product of `t`'s dtype at the current precision. */
function gemm(t: Tensor): (args: MatmulArgs<FloatArray>) => void {
  const k = kernels(t);
  return precision === 'bf16' && t.dtype === 'float32' ? (args) => k.matmulBf16(args) : (args) => k.matmul(args);
}

/** How a (batch, R, C) operand can be read by the kernel without a copy, or null if it needs one. */
function layout(t: Tensor, batch: number): { trans: boolean; batchStride: number } | null {
  const nd = t.ndim;
  const R = t.shape[nd - 2]!;
  const C = t.shape[nd - 1]!;
  let trans: boolean;
  if ((t.strides[nd - 1] === 1 || C === 1) && (t.strides[nd - 2] === C || R === 1)) trans = false;
  else if ((t.strides[nd - 2] === 1 || R === 1) && (t.strides[nd - 1] === R || C === 1)) trans = true;
  else return null;
  if (batch === 1) return { trans, batchStride: 0 };
  // Batch dims must flatten to one stride: either all broadcast (0) or packed matrix after matrix.
  const bdims = t.shape.slice(0, nd - 2);
  const bstrides = t.strides.slice(0, nd - 2);
  if (bstrides.every((s, i) => s === 0 || bdims[i] === 1)) return { trans, batchStride: 0 };
  let expect = R * C;
  for (let d = bdims.length - 1; d >= 0; d--) {
    if (bdims[d] !== 1 && bstrides[d] !== expect) return null;
    expect *= bdims[d]!;
  }
  return { trans, batchStride: R * C };
}

/** C = A·B without autograd. A: (..., M, K), B: (..., K, N). */
export function matmulRaw(a: Tensor, b: Tensor): Tensor {
  sameDtype('matmul', a, b);
  if (a.ndim < 2 || b.ndim < 2) throw new ShapeError(`matmul: both operands need ≥ 2 dims, got ${a.describe()} and ${b.describe()}`);
  const M = a.shape[a.ndim - 2]!;
  const K = a.shape[a.ndim - 1]!;
  const N = b.shape[b.ndim - 1]!;
  if (b.shape[b.ndim - 2] !== K) {
    throw new ShapeError(`matmul: inner dims differ: ${a.describe()} · ${b.describe()} (${K} vs ${b.shape[b.ndim - 2]})`);
  }
  const batchShape = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const batch = batchShape.reduce((x, y) => x * y, 1);
  const outShape = [...batchShape, M, N];
  const out = alloc(outShape, a.dtype);
  // With a 2-D right operand the batch folds into M: one large GEMM. A left operand that is not row-major matrix
  // after matrix (e.g. the gradient of a slice, whose rows skip the sliced-off ones) is copied dense first: the
  // copy is O(M·K) against the GEMM's O(M·K·N), and a batch of small GEMMs sharing one B runs far below the
  // single GEMM's speed (ViT's patch projection backward, 128 GEMMs of 16 rows: twice the time of one of 2048).
  if (b.ndim === 2 && a.ndim > 2) {
    const la = layout(a, batch);
    const ad = la && !la.trans && (la.batchStride === M * K || batch === 1) ? a : dense(a);
    const lb = layout(b, 1) ?? null;
    const bb = lb ? b : dense(b);
    gemm(a)({
      a: fdata('matmul', ad), aOffset: ad.offset, b: fdata('matmul', bb), bOffset: bb.offset, c: fdata('matmul', out), cOffset: 0,
      batch: 1, M: batch * M, N, K, transA: false, transB: lb ? lb.trans : false, aBatchStride: 0, bBatchStride: 0, accumulate: false,
    });
    if (bb !== b) bb.dispose();
    if (ad !== a) ad.dispose();
    return out;
  }
  const operand = (t: Tensor): { t: Tensor; trans: boolean; batchStride: number } => {
    const full = [...batchShape, t.shape[t.ndim - 2]!, t.shape[t.ndim - 1]!];
    const l = layout(t, batch);
    if (l) return { t, ...l };
    const e = t.ndim === full.length && t.shape.every((d, i) => d === full[i]) ? t : expand(t, full);
    const d = dense(e);
    if (e !== t && e !== d) e.dispose();
    return { t: d, trans: false, batchStride: batch === 1 ? 0 : t.shape[t.ndim - 2]! * t.shape[t.ndim - 1]! };
  };
  const A = operand(a);
  const B = operand(b);
  gemm(a)({
    a: fdata('matmul', A.t), aOffset: A.t.offset, b: fdata('matmul', B.t), bOffset: B.t.offset, c: fdata('matmul', out), cOffset: 0,
    batch, M, N, K, transA: A.trans, transB: B.trans, aBatchStride: A.batchStride, bBatchStride: B.batchStride, accumulate: false,
  });
  if (A.t !== a) A.t.dispose();
  if (B.t !== b) B.t.dispose();
  return out;
}

/** A·B with gradients dA = dC·Bᵀ and dB = Aᵀ·dC (summed over broadcast batch dims). */
export function matmul(a: Tensor, b: Tensor): Tensor {
  const out = matmulRaw(a, b);
  return record('matmul', [a, b], out, (g) => {
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (a.requiresGrad) {
      const bt = transpose(b);
      const full = matmulRaw(g, bt);
      bt.dispose();
      ga = sumTo(full, a.shape);
      if (ga !== full) full.dispose();
    }
    if (b.requiresGrad) {
      if (b.ndim === 2 && a.ndim > 2) {
        // Fold the batch into the rows: dB = A'ᵀ·G' with A' (batch·M, K) and G' (batch·M, N).
        const a2 = reshape(a, [-1, a.shape[a.ndim - 1]!]);
        const g2 = reshape(g, [-1, g.shape[g.ndim - 1]!]);
        const a2t = transpose(a2);
        gb = matmulRaw(a2t, g2);
        a2.dispose();
        g2.dispose();
        a2t.dispose();
      } else {
        const at = transpose(a);
        const full = matmulRaw(at, g);
        at.dispose();
        gb = sumTo(full, b.shape);
        if (gb !== full) full.dispose();
      }
    }
    return [ga, gb];
  });
}

/**
 * x·W + b for x (..., K), W (K, N), b (N): the bias is added in place into the product (no second output).
 * Gradients: dx = dy·Wᵀ, dW = x'ᵀ·dy' over the flattened rows, db = Σ_rows dy.
 */
export function linear(x: Tensor, w: Tensor, b: Tensor | null): Tensor {
  if (w.ndim !== 2) throw new ShapeError(`linear: weight must be 2-D (in, out), got ${w.describe()}`);
  const N = w.shape[1]!;
  if (b && (b.ndim !== 1 || b.shape[0] !== N)) throw new ShapeError(`linear: bias ${b.describe()} does not match weight ${w.describe()}`);
  const out = matmulRaw(x, w);
  if (b) {
    sameDtype('linear', x, b);
    const rows = out.size / N;
    kernels(out).binary('add', { data: fdata('linear', out), offset: 0, strides: [N, 1] }, { data: fdata('linear', b), offset: b.offset, strides: [0, b.strides[0]!] }, fdata('linear', out), [rows, N]);
  }
  const inputs = b ? [x, w, b] : [x, w];
  return record('linear', inputs, out, (g) => {
    const g2 = reshape(g, [-1, N]);
    let gx: Tensor | null = null;
    let gw: Tensor | null = null;
    let gb: Tensor | null = null;
    if (x.requiresGrad) {
      const wt = transpose(w);
      gx = matmulRaw(g, wt);
      wt.dispose();
    }
    if (w.requiresGrad) {
      const x2 = reshape(x, [-1, w.shape[0]!]);
      const x2t = transpose(x2);
      gw = matmulRaw(x2t, g2);
      x2.dispose();
      x2t.dispose();
    }
    if (b?.requiresGrad) gb = sumTo(g2, [N]);
    g2.dispose();
    return b ? [gx, gw, gb] : [gx, gw];
  });
}
