// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Program 1): the update is the sign of an
// interpolation between the momentum and the gradient, so every coordinate moves by exactly lr; the momentum is
// updated afterwards with a second, slower β. One state tensor, exp_avg, per parameter. Not Adam: no second moment.
import { noGrad, type Tensor } from '../core/index.js';
import { f32 } from './arrays.js';
import { Optimizer, type BaseOptions, type ParamGroup } from './optimizer.js';

export interface LionOptions extends BaseOptions {
  /** β1: weight of the momentum in the interpolation whose sign is the update. */
  beta1: number;
  /** β2: decay of the momentum itself. */
  beta2: number;
  /** Decoupled weight decay λ: θ ← θ − lr·λ·θ. */
  weightDecay: number;
}

export const LION_DEFAULTS: Omit<LionOptions, 'lr'> = { lrScale: 1, beta1: 0.9, beta2: 0.99, weightDecay: 0 };

export class Lion extends Optimizer<LionOptions> {
  readonly kind = 'lion';
  readonly version = 1;

  constructor(groups: readonly ParamGroup<LionOptions>[], options: Partial<LionOptions> & { lr: number }) {
    super(groups, { ...LION_DEFAULTS, ...options });
  }

  protected stateShapes(param: Tensor, _options: LionOptions): [string, readonly number[]][] {
    return [['exp_avg', param.shape]];
  }

  step(gradScale = 1): void {
    this.stepCount += 1;
    noGrad(() => {
      for (const s of this.slots) {
        if (!s.param.grad) continue;
        const { lr, beta1, beta2, weightDecay } = s.options;
        const p = f32(s.param);
        const g = f32(s.param.grad);
        const m = f32(s.state.get('exp_avg')!);
        for (let i = 0; i < p.length; i++) {
          const gi = g[i]! * gradScale;
          const c = beta1 * m[i]! + (1 - beta1) * gi; // c = β1·m + (1 − β1)·g
          p[i] = p[i]! * (1 - lr * weightDecay) - lr * Math.sign(c); // θ ← θ − lr·(sign(c) + λ·θ)
          m[i] = beta2 * m[i]! + (1 - beta2) * gi; // m ← β2·m + (1 − β2)·g
        }
      }
    });
  }
}
