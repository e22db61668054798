// Muon (Jordan et al. 2024, "Muon: an optimizer for hidden layers"): for 2-D hidden weight matrices, SGD momentum
// (Nesterov by default) whose update is replaced by the nearest semi-orthogonal matrix, approximated by five steps of
// a quintic Newton–Schulz iteration; every other parameter (embeddings, the tied head, vectors) takes AdamW with its
// own learning rate. Not Shampoo: nothing is accumulated beyond the momentum, and the iteration runs every step.
import * as lm from '../core/index.js';
import { kernelsFor, noGrad, type Tensor } from '../core/index.js';
import { f32, matrixShape } from './arrays.js';
import { Optimizer, type BaseOptions, type ParamGroup } from './optimizer.js';

export interface MuonOptions extends BaseOptions {
  /** Orthogonalised momentum for this group (2-D matrices only) when true; AdamW when false. */
  muon: boolean;
  /** Momentum μ of the Muon part. */
  momentum: number;
  /** Nesterov momentum (the update is g + μ·buf instead of buf). */
  nesterov: boolean;
  /** Newton–Schulz steps. */
  nsSteps: number;
  /** Decoupled weight decay λ (both parts): θ ← θ − lr·λ·θ. */
  weightDecay: number;
  /** β1, β2 and ε of the AdamW part. */
  beta1: number;
  beta2: number;
  eps: number;
}

export const MUON_DEFAULTS: Omit<MuonOptions, 'lr'> = {
  lrScale: 1, muon: true, momentum: 0.95, nesterov: true, nsSteps: 5, weightDecay: 0, beta1: 0.9, beta2: 0.95, eps: 1e-10,
};

/** The quintic's coefficients (a, b, c): X ← a·X + (b·A + c·A²)·X with A = X·Xᵀ, chosen to push every singular value into about [0.7, 1.2] fast. */
const NS = [3.4445, -4.775, 2.0315] as const;

/**
 * Newton–Schulz orthogonalisation of a rows×cols matrix G (row-major): G/‖G‖_F, transposed first when rows > cols so
 * that A = X·Xᵀ is the smaller Gram matrix, then `steps` quintic steps on the native matmul. Returns a new array.
 */
export function newtonSchulz(G: ArrayLike<number>, rows: number, cols: number, steps: number): Float32Array {
  let sq = 0;
  for (let i = 0; i < G.length; i++) sq += G[i]! * G[i]!;
  const inv = 1 / (Math.sqrt(sq) + 1e-7); // ‖X‖_F ≤ 1 bounds the spectral norm, inside the iteration's basin
  const tall = rows > cols;
  const [r, c] = tall ? [cols, rows] : [rows, cols];
  const X0 = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) X0[tall ? j * rows + i : i * cols + j] = G[i * cols + j]! * inv;
  const Y = lm.tidy(() => {
    let X = lm.fromArray(X0, [r, c]);
    for (let k = 0; k < steps; k++) {
      const A = lm.matmul(X, lm.transpose(X)); // (r, r)
      const B = lm.add(lm.mul(A, NS[1]), lm.mul(lm.matmul(A, A), NS[2]));
      X = lm.add(lm.mul(X, NS[0]), lm.matmul(B, X));
    }
    return X.toTypedArray() as Float32Array;
  });
  if (!tall) return Y;
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = Y[j * rows + i]!;
  return out;
}

export class Muon extends Optimizer<MuonOptions> {
  readonly kind = 'muon';
  readonly version = 1;

  constructor(groups: readonly ParamGroup<MuonOptions>[], options: Partial<MuonOptions> & { lr: number }) {
    super(groups, { ...MUON_DEFAULTS, ...options });
  }

  protected stateShapes(param: Tensor, options: MuonOptions): [string, readonly number[]][] {
    if (!options.muon) return [['exp_avg', param.shape], ['exp_avg_sq', param.shape]];
    if (param.ndim !== 2) throw new Error(`muon: ${param.describe()} is not a 2-D matrix; put it in a group with muon: false (AdamW)`);
    return [['momentum_buffer', param.shape]];
  }

  step(gradScale = 1): void {
    this.stepCount += 1;
    noGrad(() => {
      for (const s of this.slots) {
        if (!s.param.grad) continue;
        const o = s.options;
        if (!o.muon) {
          kernelsFor(s.param.dtype).adamw({
            param: f32(s.param), grad: f32(s.param.grad), m: f32(s.state.get('exp_avg')!), v: f32(s.state.get('exp_avg_sq')!),
            lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, step: this.stepCount, gradScale,
          });
          continue;
        }
        const p = f32(s.param);
        const g = f32(s.param.grad);
        const buf = f32(s.state.get('momentum_buffer')!);
        const u = new Float32Array(p.length);
        for (let i = 0; i < p.length; i++) {
          const gi = g[i]! * gradScale;
          buf[i] = o.momentum * buf[i]! + gi; // buf ← μ·buf + g
          u[i] = o.nesterov ? gi + o.momentum * buf[i]! : buf[i]!;
        }
        const [rows, cols] = matrixShape(s.param);
        const O = newtonSchulz(u, rows, cols, o.nsSteps);
        // √max(1, fan_out/fan_in): lmforge stores a Linear weight as (in, out), so fan_out/fan_in is cols/rows here
        // (PyTorch's (out, in) layout writes the same factor as rows/cols).
        const scale = Math.sqrt(Math.max(1, cols / rows));
        for (let i = 0; i < p.length; i++) p[i] = p[i]! * (1 - o.lr * o.weightDecay) - o.lr * scale * O[i]!;
      }
    });
  }
}
