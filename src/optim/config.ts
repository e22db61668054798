// The `optim:` section of a training config (the one place its keys and defaults live) and the factory that
// builds the chosen optimizer over a model's trainable parameters, with nanoGPT's grouping: decoupled weight decay
// on matrices and embeddings, none on biases and norm gains. Also the learning-rate schedule the section describes.
import type { NamedParam } from './optimizer.js';
import { Optimizer } from './optimizer.js';
import { AdamW } from './adamw.js';
import { SGD } from './sgd.js';
import type { LrSchedule } from './schedule.js';
import { defineConfig, type ConfigOf } from '../util/config.js';

export const optimSpec = defineConfig({
  name: { default: 'adamw', choices: ['adamw', 'sgd'], doc: 'optimizer: AdamW, or SGD with momentum' },
  lr: { default: 1e-3, type: 'number', min: 0, doc: 'peak learning rate' },
  weight_decay: { default: 0.1, type: 'number', min: 0, doc: 'weight decay on matrices and embeddings (decoupled for AdamW, L2 for SGD)' },
  beta1: { default: 0.9, type: 'number', min: 0, max: 1, doc: 'AdamW β1' },
  beta2: { default: 0.99, type: 'number', min: 0, max: 1, doc: 'AdamW β2' },
  eps: { default: 1e-8, type: 'number', min: 0, doc: 'AdamW ε' },
  momentum: { default: 0.9, type: 'number', min: 0, max: 1, doc: 'SGD momentum μ (0 = plain SGD)' },
  dampening: { default: 0, type: 'number', min: 0, max: 1, doc: 'SGD momentum dampening τ' },
  nesterov: { default: false, doc: 'SGD with Nesterov momentum' },
  decay_lr: { default: true, doc: 'warmup + cosine decay (else constant lr)' },
  warmup_iters: { default: 100, type: 'integer', min: 0, doc: 'linear warmup steps' },
  lr_decay_iters: { default: 2000, type: 'integer', min: 1, doc: 'step at which the cosine reaches min_lr' },
  min_lr: { default: 1e-4, type: 'number', min: 0, doc: 'final learning rate' },
});

export type OptimConfig = ConfigOf<typeof optimSpec>;

/** The schedule the section describes (nanoGPT's get_lr when decay_lr). */
export function scheduleOf(o: OptimConfig): LrSchedule {
  return o.decay_lr
    ? { kind: 'cosine', lr: o.lr, minLr: o.min_lr, warmupIters: o.warmup_iters, decayIters: o.lr_decay_iters }
    : { kind: 'constant', lr: o.lr };
}

/** The configured optimizer over `params` (trainable ones only): matrices (ndim ≥ 2) decayed first, then the rest. */
export function makeOptimizer(params: readonly NamedParam[], o: OptimConfig): Optimizer {
  const decayed = params.filter(([, p]) => p.ndim >= 2);
  const plain = params.filter(([, p]) => p.ndim < 2);
  switch (o.name) {
    case 'adamw':
      return new AdamW([{ params: decayed, options: { weightDecay: o.weight_decay } }, { params: plain, options: { weightDecay: 0 } }], {
        lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps,
      });
    case 'sgd':
      return new SGD([{ params: decayed, options: { weightDecay: o.weight_decay } }, { params: plain, options: { weightDecay: 0 } }], {
        lr: o.lr, momentum: o.momentum, dampening: o.dampening, nesterov: o.nesterov,
      });
  }
}
