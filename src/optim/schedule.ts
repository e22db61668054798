// Learning-rate schedules as pure functions of the 0-based step: constant, warmup + cosine decay (nanoGPT's
// get_lr, formula for formula), and warmup + linear decay. Not an optimizer: the train loop sets lr each step.
import { UserError } from '../util/errors.js';

export type LrSchedule =
  /** lr at every step (nanoGPT with decay_lr=False). */
  | { kind: 'constant'; lr: number }
  /**
   * nanoGPT's get_lr: lr·(it+1)/(warmup+1) for it < warmup; cosine from lr (it = warmup) down to minLr
   * (it = decayIters); minLr for it > decayIters.
   */
  | { kind: 'cosine'; lr: number; minLr: number; warmupIters: number; decayIters: number }
  /** Same warmup, then a straight line from lr (it = warmup) to minLr (it = decayIters); minLr after. */
  | { kind: 'linear'; lr: number; minLr: number; warmupIters: number; decayIters: number };

/** Checks a schedule's numbers; throws UserError naming the field. */
export function checkSchedule(s: LrSchedule): void {
  const bad = (field: string, what: string): never => {
    throw new UserError(`learning-rate schedule (${s.kind}): ${field}: ${what}`);
  };
  if (!Number.isFinite(s.lr) || s.lr < 0) bad('lr', `expected a finite number ≥ 0, got ${s.lr}`);
  switch (s.kind) {
    case 'constant':
      return;
    case 'cosine':
    case 'linear':
      if (!Number.isFinite(s.minLr) || s.minLr < 0) bad('min_lr', `expected a finite number ≥ 0, got ${s.minLr}`);
      if (!Number.isInteger(s.warmupIters) || s.warmupIters < 0) bad('warmup_iters', `expected an integer ≥ 0, got ${s.warmupIters}`);
      if (!Number.isInteger(s.decayIters) || s.decayIters <= s.warmupIters) {
        bad('lr_decay_iters', `expected an integer > warmup_iters (${s.warmupIters}), got ${s.decayIters}`);
      }
      return;
  }
}

/** The learning rate at 0-based step `it`. */
export function learningRate(s: LrSchedule, it: number): number {
  switch (s.kind) {
    case 'constant':
      return s.lr;
    case 'cosine':
    case 'linear': {
      // Warmup starts at lr/(warmup+1), not 0, so step 0 still moves the weights.
      if (it < s.warmupIters) return (s.lr * (it + 1)) / (s.warmupIters + 1);
      if (it > s.decayIters) return s.minLr;
      const ratio = (it - s.warmupIters) / (s.decayIters - s.warmupIters); // 0..1
      const coeff = s.kind === 'cosine' ? 0.5 * (1.0 + Math.cos(Math.PI * ratio)) : 1 - ratio; // 1..0
      return s.minLr + coeff * (s.lr - s.minLr);
    }
  }
}
