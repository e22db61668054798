// Adafactor (Shazeer & Stern 2018, Algorithms 4–5 with update clipping and the relative step): a matrix keeps only
// row and column means of its squared gradients, R (rows) and C (cols), and V̂ = R·Cᵀ / mean(R) rebuilds the second
// moment from them, so an n×m matrix holds n + m floats; a vector keeps a full v. Not Adam with a factored v: the
// step size is relative to the parameter's RMS and each update is clipped to RMS ≤ d.
import { noGrad, type Tensor } from '../core/index.js';
import { f32, matrixShape, rms } from './arrays.js';
import { Optimizer, type BaseOptions, type ParamGroup } from './optimizer.js';

export interface AdafactorOptions extends BaseOptions {
  /** First-moment decay β1; 0 keeps no first moment (the paper's memory-saving default). */
  beta1: number;
  /** c in β̂2_t = 1 − t^c. */
  decayRate: number;
  /** ε1, added to the squared gradient. */
  eps1: number;
  /** ε2, the floor of RMS(X) when the step is scaled by it. */
  eps2: number;
  /** d: an update U is divided by max(1, RMS(U)/d). */
  clipThreshold: number;
  /** ρ_t = min(1e-2, 1/√t) when true (lr is then ignored); ρ_t = lr when false (Hugging Face's relative_step=False). */
  relativeStep: boolean;
  /** α_t = max(ε2, RMS(X_{t−1}))·ρ_t when true, else α_t = ρ_t. */
  scaleParameter: boolean;
  /** Decoupled weight decay λ: X ← X − α_t·λ·X. */
  weightDecay: number;
}

export const ADAFACTOR_DEFAULTS: Omit<AdafactorOptions, 'lr'> = {
  lrScale: 1, beta1: 0, decayRate: -0.8, eps1: 1e-30, eps2: 1e-3, clipThreshold: 1, relativeStep: true, scaleParameter: true, weightDecay: 0,
};

export class Adafactor extends Optimizer<AdafactorOptions> {
  readonly kind = 'adafactor';
  readonly version = 1;

  constructor(groups: readonly ParamGroup<AdafactorOptions>[], options: Partial<AdafactorOptions> & { lr: number }) {
    super(groups, { ...ADAFACTOR_DEFAULTS, ...options });
  }

  protected stateShapes(param: Tensor, options: AdafactorOptions): [string, readonly number[]][] {
    const [n, m] = matrixShape(param);
    const second: [string, readonly number[]][] = param.ndim >= 2 ? [['exp_avg_sq_row', [n]], ['exp_avg_sq_col', [m]]] : [['exp_avg_sq', param.shape]];
    return options.beta1 > 0 ? [...second, ['exp_avg', param.shape]] : second;
  }

  step(gradScale = 1): void {
    this.stepCount += 1;
    const t = this.stepCount;
    noGrad(() => {
      for (const s of this.slots) {
        if (!s.param.grad) continue;
        const o = s.options;
        const X = f32(s.param);
        const G = f32(s.param.grad);
        const b2 = 1 - Math.pow(t, o.decayRate); // β̂2_t (0 at t = 1: the first estimate is the gradient itself)
        const U = new Float64Array(X.length);
        if (s.param.ndim >= 2) {
          const [n, m] = matrixShape(s.param);
          const R = f32(s.state.get('exp_avg_sq_row')!);
          const C = f32(s.state.get('exp_avg_sq_col')!);
          const colSum = new Float64Array(m);
          for (let i = 0; i < n; i++) {
            let rowSum = 0;
            for (let j = 0; j < m; j++) {
              const g = G[i * m + j]! * gradScale;
              const sq = g * g + o.eps1;
              rowSum += sq;
              colSum[j] = colSum[j]! + sq;
            }
            R[i] = b2 * R[i]! + (1 - b2) * (rowSum / m);
          }
          for (let j = 0; j < m; j++) C[j] = b2 * C[j]! + (1 - b2) * (colSum[j]! / n);
          // Means instead of the paper's sums: V̂ = R·Cᵀ / mean(R) is the same matrix, with smaller numbers.
          let rMean = 0;
          for (let i = 0; i < n; i++) rMean += R[i]!;
          rMean /= n;
          for (let i = 0; i < n; i++) {
            const ri = 1 / Math.sqrt(R[i]! / rMean);
            for (let j = 0; j < m; j++) U[i * m + j] = G[i * m + j]! * gradScale * ri / Math.sqrt(C[j]!);
          }
        } else {
          const v = f32(s.state.get('exp_avg_sq')!);
          for (let i = 0; i < X.length; i++) {
            const g = G[i]! * gradScale;
            v[i] = b2 * v[i]! + (1 - b2) * (g * g + o.eps1);
            U[i] = g / Math.sqrt(v[i]!);
          }
        }
        // Update clipping: Û = U / max(1, RMS(U)/d).
        const clip = Math.max(1, rms(U) / o.clipThreshold);
        let D: ArrayLike<number> = U;
        if (o.beta1 > 0) {
          const mom = f32(s.state.get('exp_avg')!);
          for (let i = 0; i < X.length; i++) mom[i] = o.beta1 * mom[i]! + (1 - o.beta1) * (U[i]! / clip);
          D = mom;
        } else {
          for (let i = 0; i < X.length; i++) U[i] = U[i]! / clip;
        }
        const rho = o.relativeStep ? Math.min(1e-2, 1 / Math.sqrt(t)) : o.lr;
        const alpha = o.scaleParameter ? Math.max(o.eps2, rms(X)) * rho : rho;
        for (let i = 0; i < X.length; i++) X[i] = X[i]! - alpha * o.weightDecay * X[i]! - alpha * D[i]!;
      }
    });
  }
}
