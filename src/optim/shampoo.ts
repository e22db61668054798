// Shampoo (Gupta, Koren & Singer 2018) with the layer-wise grafting of Anil et al. 2020: a matrix gradient G is
// preconditioned on both sides, P = L^(−1/4)·G·R^(−1/4) with L = εI + Σ G·Gᵀ and R = εI + Σ Gᵀ·G, and P is rescaled
// to the norm of a simpler optimizer's step (Adagrad or AdamW; the grafting) so the learning rate means what that
// optimizer's does. Dimensions above blockSize are cut into independent blocks, each with its own L and R. Vectors
// take the grafted optimizer's step. Not a full-matrix Adagrad: only the two Kronecker factors are kept.
import * as lm from '../core/index.js';
import { noGrad, type Tensor } from '../core/index.js';
import { f32, matrixShape } from './arrays.js';
import { Optimizer, type BaseOptions, type ParamGroup } from './optimizer.js';

export type ShampooGraft = 'adagrad' | 'adamw';

export interface ShampooOptions extends BaseOptions {
  /** ε of εI, added to L and R before their inverse roots (Gupta et al.'s L₀ = εI). */
  eps: number;
  /** N: the inverse 4th roots are recomputed at steps 1, N + 1, 2N + 1, … and reused in between. */
  updateFreq: number;
  /** Matrices are cut into blocks of at most blockSize × blockSize, each preconditioned on its own. */
  blockSize: number;
  /** The optimizer whose step norm each block takes (and whose step vectors take). */
  graft: ShampooGraft;
  /** ε of the grafted optimizer (Adagrad: g/(√Σg² + ε); AdamW: m̂/(√v̂ + ε)). */
  graftEps: number;
  /** β1, β2 of the AdamW graft. */
  beta1: number;
  beta2: number;
  /** Decoupled weight decay λ: θ ← θ − lr·λ·θ. */
  weightDecay: number;
}

export const SHAMPOO_DEFAULTS: Omit<ShampooOptions, 'lr'> = {
  lrScale: 1, eps: 1e-4, updateFreq: 10, blockSize: 128, graft: 'adagrad', graftEps: 1e-8, beta1: 0.9, beta2: 0.999, weightDecay: 0,
};

/** [start, length] of each block when n is cut into pieces of at most B. */
function chunks(n: number, B: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < n; s += B) out.push([s, Math.min(B, n - s)]);
  return out;
}

interface Block {
  /** Suffix of this block's slot names ('' when the matrix is one block). */
  tag: string;
  r0: number;
  nr: number;
  c0: number;
  nc: number;
}

function blocksOf(param: Tensor, B: number): Block[] {
  const [rows, cols] = matrixShape(param);
  const rs = chunks(rows, B);
  const cs = chunks(cols, B);
  const one = rs.length * cs.length === 1;
  return rs.flatMap(([r0, nr], i) => cs.map(([c0, nc], j) => ({ tag: one ? '' : `_${i}_${j}`, r0, nr, c0, nc })));
}

/**
 * Eigendecomposition of a symmetric n×n matrix by cyclic Jacobi rotations, in float64: A is overwritten with a
 * diagonal of eigenvalues, and V (n×n, row-major) receives the eigenvectors as columns. Jacobi rather than a
 * coupled Newton iteration because it needs no spectral bound or iteration-count tuning, cannot diverge on an
 * ill-conditioned L, and finds the small eigenvalues of a positive-definite matrix to high relative accuracy —
 * the ones λ^(−1/4) amplifies most.
 */
export function jacobiEigen(A: Float64Array, V: Float64Array, n: number): void {
  V.fill(0);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  for (let sweep = 0; sweep < 60; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q]!;
        const app = A[p * n + p]!;
        const aqq = A[q * n + q]!;
        // Negligible against the diagonal at float64 precision: leave it.
        if (Math.abs(apq) <= 1e-18 * Math.sqrt(Math.abs(app * aqq)) || apq === 0) continue;
        rotated = true;
        // t = tan of the angle that zeroes a_pq: the smaller root of t² + 2θt − 1 = 0, θ = (a_qq − a_pp)/(2a_pq).
        const theta = (aqq - app) / (2 * apq);
        const t = Math.abs(theta) > 1e150 ? 1 / (2 * theta) : Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        // A ← Jᵀ·A·J: columns p, q then rows p, q; V ← V·J.
        for (let k = 0; k < n; k++) {
          const akp = A[k * n + p]!;
          const akq = A[k * n + q]!;
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p * n + k]!;
          const aqk = A[q * n + k]!;
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
        A[p * n + q] = 0;
        A[q * n + p] = 0;
        for (let k = 0; k < n; k++) {
          const vkp = V[k * n + p]!;
          const vkq = V[k * n + q]!;
          V[k * n + p] = c * vkp - s * vkq;
          V[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
    if (!rotated) return;
  }
}

/** (S + εI)^(−1/p) of a symmetric positive semi-definite n×n matrix S (float32), computed in float64. */
export function inverseRoot(S: Float32Array, n: number, eps: number, p: number, out: Float32Array): void {
  const A = Float64Array.from(S);
  for (let i = 0; i < n; i++) A[i * n + i] = A[i * n + i]! + eps;
  const V = new Float64Array(n * n);
  jacobiEigen(A, V, n);
  // λ ≥ ε in exact arithmetic; the clamp only stops a rounding error from producing a huge or NaN power.
  const w = Array.from({ length: n }, (_, i) => Math.pow(Math.max(A[i * n + i]!, eps), -1 / p));
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let x = 0;
      for (let k = 0; k < n; k++) x += V[i * n + k]! * w[k]! * V[j * n + k]!; // V·diag(λ^(−1/p))·Vᵀ
      out[i * n + j] = x;
      out[j * n + i] = x;
    }
  }
}

export class Shampoo extends Optimizer<ShampooOptions> {
  readonly kind = 'shampoo';
  readonly version = 1;

  constructor(groups: readonly ParamGroup<ShampooOptions>[], options: Partial<ShampooOptions> & { lr: number }) {
    super(groups, { ...SHAMPOO_DEFAULTS, ...options });
  }

  protected stateShapes(param: Tensor, o: ShampooOptions): [string, readonly number[]][] {
    if (!Number.isInteger(o.blockSize) || o.blockSize < 1) throw new Error(`shampoo: blockSize must be a positive integer, got ${o.blockSize}`);
    if (!Number.isInteger(o.updateFreq) || o.updateFreq < 1) throw new Error(`shampoo: updateFreq must be a positive integer, got ${o.updateFreq}`);
    const graft: [string, readonly number[]][] = o.graft === 'adagrad' ? [['graft_sum_sq', param.shape]] : [['graft_exp_avg', param.shape], ['graft_exp_avg_sq', param.shape]];
    if (param.ndim < 2) return graft;
    const pre = blocksOf(param, o.blockSize).flatMap((b): [string, readonly number[]][] => [
      [`L${b.tag}`, [b.nr, b.nr]], [`R${b.tag}`, [b.nc, b.nc]], [`L_inv_root${b.tag}`, [b.nr, b.nr]], [`R_inv_root${b.tag}`, [b.nc, b.nc]],
    ]);
    return [...pre, ...graft];
  }

  /** The grafted optimizer's step direction D for g (its state updated), in float64. */
  private graftStep(state: Map<string, Tensor>, o: ShampooOptions, g: Float64Array): Float64Array {
    const D = new Float64Array(g.length);
    if (o.graft === 'adagrad') {
      const acc = f32(state.get('graft_sum_sq')!);
      for (let i = 0; i < g.length; i++) {
        acc[i] = acc[i]! + g[i]! * g[i]!;
        D[i] = g[i]! / (Math.sqrt(acc[i]!) + o.graftEps);
      }
    } else {
      const m = f32(state.get('graft_exp_avg')!);
      const v = f32(state.get('graft_exp_avg_sq')!);
      const bc1 = 1 - Math.pow(o.beta1, this.stepCount);
      const bc2 = 1 - Math.pow(o.beta2, this.stepCount);
      for (let i = 0; i < g.length; i++) {
        m[i] = o.beta1 * m[i]! + (1 - o.beta1) * g[i]!;
        v[i] = o.beta2 * v[i]! + (1 - o.beta2) * g[i]! * g[i]!;
        D[i] = m[i]! / bc1 / (Math.sqrt(v[i]! / bc2) + o.graftEps);
      }
    }
    return D;
  }

  step(gradScale = 1): void {
    this.stepCount += 1;
    const t = this.stepCount;
    noGrad(() => {
      for (const s of this.slots) {
        if (!s.param.grad) continue;
        const o = s.options;
        const X = f32(s.param);
        const G32 = f32(s.param.grad);
        const g = new Float64Array(X.length);
        for (let i = 0; i < g.length; i++) g[i] = G32[i]! * gradScale;
        const D = this.graftStep(s.state, o, g);
        if (s.param.ndim >= 2) {
          const [, cols] = matrixShape(s.param);
          const refresh = (t - 1) % o.updateFreq === 0;
          for (const b of blocksOf(s.param, o.blockSize)) this.preconditionBlock(s.state, o, b, cols, g, D, refresh);
        }
        for (let i = 0; i < X.length; i++) X[i] = X[i]! * (1 - o.lr * o.weightDecay) - o.lr * D[i]!;
      }
    });
  }

  /** Accumulates L and R of one block, refreshes their roots when due, and overwrites D's block with the grafted P. */
  private preconditionBlock(state: Map<string, Tensor>, o: ShampooOptions, b: Block, cols: number, g: Float64Array, D: Float64Array, refresh: boolean): void {
    const { r0, nr, c0, nc, tag } = b;
    const Gb = new Float32Array(nr * nc);
    for (let i = 0; i < nr; i++) for (let j = 0; j < nc; j++) Gb[i * nc + j] = g[(r0 + i) * cols + c0 + j]!;
    const L = f32(state.get(`L${tag}`)!);
    const R = f32(state.get(`R${tag}`)!);
    const Lroot = state.get(`L_inv_root${tag}`)!;
    const Rroot = state.get(`R_inv_root${tag}`)!;
    const P = lm.tidy(() => {
      const Gt = lm.fromArray(Gb, [nr, nc]);
      // L += G·Gᵀ, R += Gᵀ·G on the native matmul (float32, as the state is stored).
      const GGt = lm.matmul(Gt, lm.transpose(Gt)).toTypedArray() as Float32Array;
      const GtG = lm.matmul(lm.transpose(Gt), Gt).toTypedArray() as Float32Array;
      for (let i = 0; i < L.length; i++) L[i] = L[i]! + GGt[i]!;
      for (let i = 0; i < R.length; i++) R[i] = R[i]! + GtG[i]!;
      if (refresh) {
        inverseRoot(L, nr, o.eps, 4, f32(Lroot));
        inverseRoot(R, nc, o.eps, 4, f32(Rroot));
      }
      return lm.matmul(lm.matmul(Lroot, Gt), Rroot).toTypedArray() as Float32Array; // L^(−1/4)·G·R^(−1/4)
    });
    // Grafting: the block's step takes the direction of P and the norm of the grafted optimizer's step.
    let pn = 0;
    let dn = 0;
    for (let i = 0; i < nr; i++) {
      for (let j = 0; j < nc; j++) {
        pn += P[i * nc + j]! * P[i * nc + j]!;
        const d = D[(r0 + i) * cols + c0 + j]!;
        dn += d * d;
      }
    }
    const k = pn > 0 ? Math.sqrt(dn / pn) : 0;
    for (let i = 0; i < nr; i++) for (let j = 0; j < nc; j++) D[(r0 + i) * cols + c0 + j] = k * P[i * nc + j]!;
  }
}
