// SGD with momentum (PyTorch's torch.optim.SGD): g ← s·∇ + λ·p (coupled L2 decay); buf ← μ·buf + (1 − τ)·g, with
// buf = g at the first step; p ← p − lr·(g + μ·buf if Nesterov else buf). State: momentum_buffer per parameter
// (none without momentum).
import { noGrad, type Tensor } from '../core/index.js';
import { Optimizer, type BaseOptions, type ParamGroup } from './optimizer.js';

export interface SGDOptions extends BaseOptions {
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
}

export const SGD_DEFAULTS: Omit<SGDOptions, 'lr'> = { lrScale: 1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0 };

export class SGD extends Optimizer<SGDOptions> {
  readonly kind = 'sgd';
  readonly version = 1;

  constructor(groups: readonly ParamGroup<SGDOptions>[], options: Partial<SGDOptions> & { lr: number }) {
    super(groups, { ...SGD_DEFAULTS, ...options });
  }

  protected stateShapes(param: Tensor, options: SGDOptions): [string, readonly number[]][] {
    return options.momentum !== 0 ? [['momentum_buffer', param.shape]] : [];
  }

  step(gradScale = 1): void {
    const first = this.stepCount === 0;
    this.stepCount += 1;
    noGrad(() => {
      for (const s of this.slots) {
        const grad = s.param.grad;
        if (!grad) continue;
        const { lr, momentum: mu, dampening, nesterov, weightDecay } = s.options;
        const p = s.param.data as Float32Array;
        const g = grad.data as Float32Array;
        const buf = s.state.get('momentum_buffer')?.data as Float32Array;
        const n = s.param.size;
        const po = s.param.offset;
        const go = grad.offset;
        for (let i = 0; i < n; i++) {
          let d = g[go + i]! * gradScale + weightDecay * p[po + i]!;
          if (mu !== 0) {
            const b = first ? d : mu * buf[i]! + (1 - dampening) * d;
            buf[i] = b;
            d = nesterov ? d + mu * b : b;
          }
          p[po + i] = p[po + i]! - lr * d;
        }
      }
    });
  }
}
