// AdamW (Loshchilov & Hutter) on the optimizer interface: one fused kernel call per parameter, decoupled weight
// decay per group (matrices by convention), state m and v of each parameter's shape.
import { kernelsFor, noGrad, type Tensor } from '../core/index.js';
import type { FloatArray } from '../core/kernels.js';
import { Optimizer, type BaseOptions, type ParamGroup } from './optimizer.js';

export interface AdamWOptions extends BaseOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: Omit<AdamWOptions, 'lr'> = { lrScale: 1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

export class AdamW extends Optimizer<AdamWOptions> {
  readonly kind = 'adamw';
  readonly version = 1;

  constructor(groups: readonly ParamGroup<AdamWOptions>[], options: Partial<AdamWOptions> & { lr: number }) {
    super(groups, { ...ADAMW_DEFAULTS, ...options });
  }

  protected stateShapes(param: Tensor, _options: AdamWOptions): [string, readonly number[]][] {
    return [['m', param.shape], ['v', param.shape]];
  }

  step(gradScale = 1): void {
    this.stepCount += 1;
    noGrad(() => {
      for (const s of this.slots) {
        if (!s.param.grad) continue;
        const o = s.options;
        kernelsFor(s.param.dtype).adamw({
          param: s.param.data as FloatArray, grad: s.param.grad.data as FloatArray,
          m: s.state.get('m')!.data as FloatArray, v: s.state.get('v')!.data as FloatArray,
          lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, step: this.stepCount, gradScale,
        });
      }
    });
  }
}
