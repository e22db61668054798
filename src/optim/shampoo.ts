// Shampoo (Gupta, Koren & Singer 2018) with the layer-wise grafting of Anil et al. 2020: a matrix gradient G is
// preconditioned on both sides, P = L^(−1/4)·G·R^(−1/4) with L = εI + Σ G·Gᵀ and R = εI + Σ Gᵀ·G, and P is rescaled
// to the norm of a simpler optimizer's step (Adagrad or AdamW; the grafting) so the learning rate means what that
// optimizer's does. Dimensions above blockSize are cut into independent blocks, each with its own L and R. Vectors
// take the grafted optimizer's step. Not a full-matrix Adagrad: only the two Kronecker factors are kept.
// With AdamW grafting the preconditioned matrix is AdamW's bias-corrected first moment m̂ (Distributed Shampoo's
// filtered gradient, Shi et al. 2023), so the step carries momentum; L and R always accumulate the raw gradient.
// Hot parts: L += G·Gᵀ, R += Gᵀ·G and L^(−1/4)·M·R^(−1/4) run on the backend's GEMM, the inverse roots of every
// block due for a refresh in one call to the native kernel native/src/shampoo.cc (the Jacobi code below is the
// reference backend's path and the tests' oracle).
import { getBackend, kernelsFor, noGrad, type Tensor } from '../core/index.js';
import { symmetricEigen } from '../core/linalg.js';
import { tryLoadAddon } from '../core/native/addon.js';
import { f32, matrixShape } from './arrays.js';
import { Optimizer, type BaseOptions, type ParamGroup } from './optimizer.js';

export type ShampooGraft = 'adagrad' | 'adamw';

export interface ShampooOptions extends BaseOptions {
  /** ε of the ridge εI added to L and R before their inverse roots (Gupta et al.'s L₀ = εI); see epsRelative. */
  eps: number;
  /** The ridge is ε·λ_max of the matrix (Anil et al. 2020), not ε itself: the same ε then suits any gradient scale. */
  epsRelative: boolean;
  /** Statistics decay β: L ← β·L + (1 − β)·G·Gᵀ; 1 is the paper's plain sum. */
  statDecay: number;
  /** Preconditioning starts at this step (roots computed then); before it every block takes the grafted step. */
  startStep: number;
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
  lrScale: 1, eps: 1e-4, epsRelative: false, statDecay: 1, startStep: 1, updateFreq: 10, blockSize: 128, graft: 'adagrad', graftEps: 1e-8, beta1: 0.9, beta2: 0.999, weightDecay: 0,
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
  /** Columns of the whole matrix (the row stride). */
  cols: number;
}

function blocksOf(param: Tensor, B: number): Block[] {
  const [rows, cols] = matrixShape(param);
  const rs = chunks(rows, B);
  const cs = chunks(cols, B);
  const one = rs.length * cs.length === 1;
  return rs.flatMap(([r0, nr], i) => cs.map(([c0, nc], j) => ({ tag: one ? '' : `_${i}_${j}`, r0, nr, c0, nc, cols })));
}

/**
 * (S + ridge·I)^(−1/p) of a symmetric positive semi-definite n×n matrix S (float32), computed in float64 by Jacobi:
 * ridge = eps·λ_max(S) when relative (eps when S is zero), else eps. The reference for native/src/shampoo.cc.
 */
export function inverseRoot(S: Float32Array, n: number, eps: number, p: number, out: Float32Array, relative = false): void {
  // Jacobi (src/core/linalg.ts) rather than a coupled Newton iteration: it needs no spectral bound or iteration-count
  // tuning, cannot diverge on an ill-conditioned S, and keeps the small eigenvalues (the ones λ^(−1/4) amplifies
  // most) to high relative accuracy. S is symmetrised first: a float32 GEMM can leave it asymmetric by rounding.
  const sym = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) sym[i * n + j] = 0.5 * (S[i * n + j]! + S[j * n + i]!);
  const { values, vectors: V } = symmetricEigen(sym, n);
  let lmax = 0;
  for (let i = 0; i < n; i++) lmax = Math.max(lmax, values[i]!);
  const ridge = relative && lmax > 0 ? eps * lmax : eps;
  // λ < 0 only by rounding (S is a sum of Gram matrices): clamped to 0 so the ridge bounds the power.
  const w = Array.from({ length: n }, (_, i) => Math.pow(Math.max(values[i]!, 0) + ridge, -1 / p));
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let x = 0;
      for (let k = 0; k < n; k++) x += V[i * n + k]! * w[k]! * V[j * n + k]!; // V·diag(w)·Vᵀ
      out[i * n + j] = x;
      out[j * n + i] = x;
    }
  }
}

/** The native kernel's entry point (native/src/shampoo.cc). */
interface ShampooAddon {
  shampooInverseRoots(S: Float32Array, dims: Int32Array, eps: number, p: number, relative: boolean, out: Float32Array): void;
}

/** One inverse root to compute: out ← (S + ridge·I)^(−1/p), S and out n×n. */
export interface RootJob {
  S: Float32Array;
  n: number;
  out: Float32Array;
}

/**
 * Every job's inverse p-th root: one native call over all of them (a thread per matrix) on the native backend,
 * inverseRoot's Jacobi on the reference backend or without the addon.
 */
export function inverseRoots(jobs: readonly RootJob[], eps: number, p: number, relative: boolean): void {
  const addon = getBackend() === 'native' ? (tryLoadAddon() as unknown as ShampooAddon | null) : null;
  if (!addon || typeof addon.shampooInverseRoots !== 'function') {
    for (const j of jobs) inverseRoot(j.S, j.n, eps, p, j.out, relative);
    return;
  }
  const dims = Int32Array.from(jobs, (j) => j.n);
  const total = jobs.reduce((a, j) => a + j.n * j.n, 0);
  const S = new Float32Array(total);
  const out = new Float32Array(total);
  let o = 0;
  for (const j of jobs) {
    S.set(j.S.subarray(0, j.n * j.n), o);
    o += j.n * j.n;
  }
  addon.shampooInverseRoots(S, dims, eps, p, relative, out);
  o = 0;
  for (const j of jobs) {
    j.out.set(out.subarray(o, o + j.n * j.n));
    o += j.n * j.n;
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
    if (!Number.isInteger(o.startStep) || o.startStep < 1) throw new Error(`shampoo: startStep must be a positive integer, got ${o.startStep}`);
    if (!(o.statDecay > 0 && o.statDecay <= 1)) throw new Error(`shampoo: statDecay must be in (0, 1], got ${o.statDecay}`);
    if (!(o.eps > 0)) throw new Error(`shampoo: eps must be positive, got ${o.eps}`);
    const graft: [string, readonly number[]][] = o.graft === 'adagrad' ? [['graft_sum_sq', param.shape]] : [['graft_exp_avg', param.shape], ['graft_exp_avg_sq', param.shape]];
    if (param.ndim < 2) return graft;
    const pre = blocksOf(param, o.blockSize).flatMap((b): [string, readonly number[]][] => [
      [`L${b.tag}`, [b.nr, b.nr]], [`R${b.tag}`, [b.nc, b.nc]], [`L_inv_root${b.tag}`, [b.nr, b.nr]], [`R_inv_root${b.tag}`, [b.nc, b.nc]],
    ]);
    return [...pre, ...graft];
  }

  /**
   * The grafted optimizer's step direction D for the gradient G32·gradScale (its state updated), and the matrix M
   * that Shampoo preconditions with its scale: g for Adagrad grafting, AdamW's m̂ = m/(1 − β1^t) for AdamW grafting
   * (so the preconditioned step has momentum). AdamW's D is the backend's fused AdamW kernel run on a zero
   * "parameter" with lr = −1 and no decay, which leaves exactly m̂/(√v̂ + ε) in it.
   */
  private graftStep(state: Map<string, Tensor>, o: ShampooOptions, G32: Float32Array, gradScale: number): { D: Float32Array; M: Float32Array; mScale: number } {
    const D = new Float32Array(G32.length);
    if (o.graft === 'adagrad') {
      const acc = f32(state.get('graft_sum_sq')!);
      for (let i = 0; i < G32.length; i++) {
        const g = G32[i]! * gradScale;
        acc[i] = acc[i]! + g * g;
        D[i] = g / (Math.sqrt(acc[i]!) + o.graftEps);
      }
      return { D, M: G32, mScale: gradScale };
    }
    const m = f32(state.get('graft_exp_avg')!);
    const v = f32(state.get('graft_exp_avg_sq')!);
    kernelsFor('float32').adamw({ param: D, grad: G32, m, v, lr: -1, beta1: o.beta1, beta2: o.beta2, eps: o.graftEps, weightDecay: 0, step: this.stepCount, gradScale });
    return { D, M: m, mScale: 1 / (1 - Math.pow(o.beta1, this.stepCount)) };
  }

  step(gradScale = 1): void {
    this.stepCount += 1;
    const t = this.stepCount;
    noGrad(() => {
      // Pass 1: grafted steps, statistics, and the roots due this step (all computed in one batch).
      const work: { X: Float32Array; o: ShampooOptions; D: Float32Array; blocks: { b: Block; Mb: Float32Array; Lroot: Float32Array; Rroot: Float32Array }[] }[] = [];
      const jobs = new Map<string, RootJob[]>(); // keyed by (eps, relative): the native call takes one of each
      for (const s of this.slots) {
        if (!s.param.grad) continue;
        const o = s.options;
        const X = f32(s.param);
        const G32 = f32(s.param.grad);
        const { D, M, mScale } = this.graftStep(s.state, o, G32, gradScale);
        const item: (typeof work)[number] = { X, o, D, blocks: [] };
        work.push(item);
        if (s.param.ndim < 2) continue;
        const active = t >= o.startStep;
        const refresh = active && (t - o.startStep) % o.updateFreq === 0;
        for (const b of blocksOf(s.param, o.blockSize)) {
          const L = f32(s.state.get(`L${b.tag}`)!);
          const R = f32(s.state.get(`R${b.tag}`)!);
          this.accumulate(L, R, G32, gradScale, b, o.statDecay);
          const Lroot = f32(s.state.get(`L_inv_root${b.tag}`)!);
          const Rroot = f32(s.state.get(`R_inv_root${b.tag}`)!);
          if (refresh) {
            const key = `${o.eps}/${o.epsRelative}`;
            if (!jobs.has(key)) jobs.set(key, []);
            jobs.get(key)!.push({ S: L, n: b.nr, out: Lroot }, { S: R, n: b.nc, out: Rroot });
          }
          if (active) item.blocks.push({ b, Mb: copyBlock(M, b, mScale), Lroot, Rroot });
        }
      }
      for (const [key, list] of jobs) {
        const [eps, relative] = key.split('/');
        inverseRoots(list, Number(eps), 4, relative === 'true');
      }
      // Pass 2: each block's preconditioned step with the grafted norm, then the update.
      for (const { X, o, D, blocks } of work) {
        for (const { b, Mb, Lroot, Rroot } of blocks) this.graftBlock(b, Mb, Lroot, Rroot, D);
        const keep = 1 - o.lr * o.weightDecay;
        const lr = o.lr;
        for (let i = 0; i < X.length; i++) X[i] = X[i]! * keep - lr * D[i]!;
      }
    });
  }

  /** L ← β·L + (1 − β)·G·Gᵀ and R ← β·R + (1 − β)·Gᵀ·G for one block, on the GEMM (β = 1: L += G·Gᵀ). */
  private accumulate(L: Float32Array, R: Float32Array, G32: Float32Array, gradScale: number, b: Block, beta: number): void {
    // With G scaled by √(1 − β) the GEMM's own accumulation adds (1 − β)·G·Gᵀ.
    const Gb = copyBlock(G32, b, gradScale * (beta < 1 ? Math.sqrt(1 - beta) : 1));
    if (beta < 1) {
      for (let i = 0; i < L.length; i++) L[i] = L[i]! * beta;
      for (let i = 0; i < R.length; i++) R[i] = R[i]! * beta;
    }
    const k = kernelsFor('float32');
    const { nr, nc } = b;
    k.matmul({ a: Gb, aOffset: 0, b: Gb, bOffset: 0, c: L, cOffset: 0, batch: 1, M: nr, N: nr, K: nc, transA: false, transB: true, aBatchStride: 0, bBatchStride: 0, accumulate: true });
    k.matmul({ a: Gb, aOffset: 0, b: Gb, bOffset: 0, c: R, cOffset: 0, batch: 1, M: nc, N: nc, K: nr, transA: true, transB: false, aBatchStride: 0, bBatchStride: 0, accumulate: true });
  }

  /** Overwrites D's block with P = L^(−1/4)·M·R^(−1/4) rescaled to the norm of D's block (the grafting). */
  private graftBlock(b: Block, Mb: Float32Array, Lroot: Float32Array, Rroot: Float32Array, D: Float32Array): void {
    const { r0, nr, c0, nc, cols } = b;
    const k = kernelsFor('float32');
    const LM = new Float32Array(nr * nc);
    const P = new Float32Array(nr * nc);
    k.matmul({ a: Lroot, aOffset: 0, b: Mb, bOffset: 0, c: LM, cOffset: 0, batch: 1, M: nr, N: nc, K: nr, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0, accumulate: false });
    k.matmul({ a: LM, aOffset: 0, b: Rroot, bOffset: 0, c: P, cOffset: 0, batch: 1, M: nr, N: nc, K: nc, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0, accumulate: false });
    let pn = 0;
    let dn = 0;
    for (let i = 0; i < nr; i++) {
      const row = (r0 + i) * cols + c0;
      for (let j = 0; j < nc; j++) {
        const p = P[i * nc + j]!;
        const d = D[row + j]!;
        pn += p * p;
        dn += d * d;
      }
    }
    const s = pn > 0 ? Math.sqrt(dn / pn) : 0;
    for (let i = 0; i < nr; i++) {
      const row = (r0 + i) * cols + c0;
      for (let j = 0; j < nc; j++) D[row + j] = s * P[i * nc + j]!;
    }
  }
}

/** Block b of the row-major matrix x times scale, as a contiguous float32 array. */
function copyBlock(x: Float32Array, b: Block, scale: number): Float32Array {
  const { cols } = b;
  const out = new Float32Array(b.nr * b.nc);
  for (let i = 0; i < b.nr; i++) for (let j = 0; j < b.nc; j++) out[i * b.nc + j] = x[(b.r0 + i) * cols + b.c0 + j]! * scale;
  return out;
}
