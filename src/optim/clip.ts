// Gradient-norm clipping as a transform over a group of parameters, not inside any optimizer: it measures the
// global L2 norm of the (scaled) gradients and returns the factor a step should apply, so the scaling fuses into
// the optimizer's own pass over the gradients instead of costing one more.
import { kernelsFor, type Tensor } from '../core/index.js';
import type { FloatArray } from '../core/kernels.js';

/** Global L2 norm of the parameters' gradients (a parameter without one counts as zero). */
export function gradNorm(params: readonly Tensor[]): number {
  let sq = 0;
  for (const p of params) if (p.grad) sq += kernelsFor(p.dtype).sumSquares(p.grad.data as FloatArray, p.size);
  return Math.sqrt(sq);
}

/**
 * With gradients meant to count times gradScale (e.g. 1/accumulation steps): their norm, and the scale that also
 * clips it to at most maxNorm (PyTorch's clip_grad_norm_: × maxNorm/(norm + 1e-6) when that is below 1; 0 = off).
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number, gradScale = 1): { norm: number; scale: number } {
  const norm = gradNorm(params) * gradScale;
  const clip = maxNorm > 0 && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
  return { norm, scale: gradScale * clip };
}
