// The gradient-reversal layer (Ganin & Lempitsky 2015): the identity forward, −λ times the gradient backward. Put
// between a model's features and an adversary, it lets one loss train the adversary to predict an attribute while
// pushing the features to hide it. Not the adversary itself (train/tasks/debias.ts).
import * as lm from '../core/index.js';
import type { Tensor } from '../core/index.js';

/** y = x; dL/dx = −λ · dL/dy. */
export function gradientReversal(x: Tensor, lambda: number): Tensor {
  if (!(lambda >= 0) || !Number.isFinite(lambda)) throw new RangeError(`gradientReversal: λ must be a finite number ≥ 0, got ${lambda}`);
  const out = lm.detach(x); // shares x's data: the forward is exactly the identity
  return lm.record('grad_reversal', [x], out, (g) => [lm.mulScalar(g, -lambda)]);
}
