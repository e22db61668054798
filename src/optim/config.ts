// The `optim:` section of a training config (the one place its keys and defaults live) and the factory that
// builds the chosen optimizer over a model's trainable parameters, with nanoGPT's grouping: weight decay on matrices
// and embeddings, none on biases and norm gains (Muon also sends embeddings and the head to its AdamW part). Also the
// learning-rate schedule the section describes.
import type { BaseOptions, NamedParam } from './optimizer.js';
import { Optimizer } from './optimizer.js';
import { AdamW } from './adamw.js';
import { SGD } from './sgd.js';
import { Adafactor } from './adafactor.js';
import { Lion } from './lion.js';
import { Muon } from './muon.js';
import { Shampoo } from './shampoo.js';
import type { LrSchedule } from './schedule.js';
import { defineConfig, type ConfigOf } from '../util/config.js';

export const optimSpec = defineConfig({
  name: {
    default: 'adamw', choices: ['adamw', 'sgd', 'adafactor', 'lion', 'muon', 'shampoo'],
    doc: 'optimizer: AdamW, SGD with momentum, Adafactor, Lion, Muon (AdamW for non-matrices) or Shampoo (grafted)',
  },
  lr: { default: 1e-3, type: 'number', min: 0, doc: 'peak learning rate (Muon: of its matrices; Adafactor ignores it unless adafactor_relative_step is false)' },
  weight_decay: { default: 0.1, type: 'number', min: 0, doc: 'weight decay on matrices and embeddings (L2 for SGD, decoupled for the others)' },
  beta1: { default: 0.9, type: 'number', min: 0, max: 1, doc: 'AdamW β1; also Lion\'s β1, and β1 of Muon\'s AdamW part and of Shampoo\'s AdamW grafting' },
  beta2: { default: 0.99, type: 'number', min: 0, max: 1, doc: 'AdamW β2; also Lion\'s β2 (its momentum decay), and β2 of Muon\'s AdamW part and of Shampoo\'s AdamW grafting' },
  eps: { default: 1e-8, type: 'number', min: 0, doc: 'AdamW ε; also ε of Muon\'s AdamW part and of Shampoo\'s grafted optimizer' },
  momentum: { default: 0.9, type: 'number', min: 0, max: 1, doc: 'SGD momentum μ (0 = plain SGD)' },
  dampening: { default: 0, type: 'number', min: 0, max: 1, doc: 'SGD momentum dampening τ' },
  nesterov: { default: false, doc: 'SGD with Nesterov momentum' },
  adafactor_relative_step: { default: true, doc: 'Adafactor step ρ_t = min(1e-2, 1/√t) (else ρ_t = the scheduled lr, Hugging Face\'s relative_step=False)' },
  adafactor_scale_parameter: { default: true, doc: 'Adafactor step α_t = max(1e-3, RMS(param))·ρ_t (else α_t = ρ_t)' },
  adafactor_beta1: { default: 0, type: 'number', min: 0, max: 1, doc: 'Adafactor first-moment β1 (0 = none, the paper\'s default)' },
  adafactor_decay_rate: { default: -0.8, type: 'number', max: 0, doc: 'Adafactor c in β̂2_t = 1 − t^c' },
  adafactor_clip: { default: 1, type: 'number', min: 0, doc: 'Adafactor update clipping d: U / max(1, RMS(U)/d)' },
  muon_momentum: { default: 0.95, type: 'number', min: 0, max: 1, doc: 'Muon momentum μ' },
  muon_nesterov: { default: true, doc: 'Muon with Nesterov momentum' },
  muon_ns_steps: { default: 5, type: 'integer', min: 1, doc: 'Muon Newton–Schulz steps' },
  muon_adamw_lr: { default: 1e-3, type: 'number', min: 0, doc: 'Muon: peak lr of the AdamW part (embeddings, head, vectors); the schedule scales it with lr' },
  shampoo_update_freq: { default: 10, type: 'integer', min: 1, doc: 'Shampoo: steps between recomputations of the inverse 4th roots' },
  shampoo_block_size: { default: 128, type: 'integer', min: 1, doc: 'Shampoo: matrix dimensions above this are cut into independent blocks' },
  shampoo_eps: { default: 1e-4, type: 'number', min: 0, doc: 'Shampoo: ε of the ridge εI added to L and R' },
  shampoo_eps_relative: { default: false, doc: 'Shampoo: the ridge is ε·λ_max of each matrix (Anil et al. 2020) instead of ε' },
  shampoo_stat_decay: { default: 1, type: 'number', min: 0, max: 1, doc: 'Shampoo: L ← β·L + (1 − β)·G·Gᵀ (1 = the paper\'s running sum)' },
  shampoo_start_step: { default: 1, type: 'integer', min: 1, doc: 'Shampoo: first preconditioned step (before it, the grafted optimizer\'s step)' },
  shampoo_graft: { default: 'adagrad', choices: ['adagrad', 'adamw'], doc: 'Shampoo: the optimizer whose step norm each block takes (and vectors\' step)' },
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

/** Parameter names that are embeddings or an output head (Hugging Face GPT-2 names and the like): Muon leaves them to AdamW. */
export const EMBEDDING_NAME = /(^|\.)(wte|wpe|lm_head|embed[a-z_]*)(\.|$)/;

/**
 * The configured optimizer over `params` (trainable ones only): matrices (ndim ≥ 2) decayed first, then the rest.
 * `lrScaleOf` (optional) gives a parameter a factor on the scheduled learning rate (LoRA+'s faster lora_B): each group
 * is split by it.
 */
export function makeOptimizer(params: readonly NamedParam[], o: OptimConfig, lrScaleOf?: (name: string) => number): Optimizer {
  const decayed = params.filter(([, p]) => p.ndim >= 2);
  const plain = params.filter(([, p]) => p.ndim < 2);
  const wd = { weightDecay: o.weight_decay };
  const noWd = { weightDecay: 0 };
  const split = <G extends Group>(groups: G[]): G[] => splitByLrScale(groups, lrScaleOf);
  switch (o.name) {
    case 'adamw':
      return new AdamW(split([{ params: decayed, options: { weightDecay: o.weight_decay } }, { params: plain, options: { weightDecay: 0 } }]), {
        lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps,
      });
    case 'sgd':
      return new SGD(split([{ params: decayed, options: { weightDecay: o.weight_decay } }, { params: plain, options: { weightDecay: 0 } }]), {
        lr: o.lr, momentum: o.momentum, dampening: o.dampening, nesterov: o.nesterov,
      });
    case 'adafactor':
      return new Adafactor(split([{ params: decayed, options: wd }, { params: plain, options: noWd }]), {
        lr: o.lr, relativeStep: o.adafactor_relative_step, scaleParameter: o.adafactor_scale_parameter, beta1: o.adafactor_beta1,
        decayRate: o.adafactor_decay_rate, clipThreshold: o.adafactor_clip,
      });
    case 'lion':
      return new Lion(split([{ params: decayed, options: wd }, { params: plain, options: noWd }]), { lr: o.lr, beta1: o.beta1, beta2: o.beta2 });
    case 'muon': {
      const hidden = decayed.filter(([name, p]) => p.ndim === 2 && !EMBEDDING_NAME.test(name));
      const other = decayed.filter((np) => !hidden.includes(np));
      // The AdamW part follows the same schedule, scaled to its own peak.
      const adamw = { muon: false, lrScale: o.lr > 0 ? o.muon_adamw_lr / o.lr : 0 };
      return new Muon(split([
        { params: hidden, options: { muon: true, ...wd } }, { params: other, options: { ...adamw, ...wd } }, { params: plain, options: { ...adamw, ...noWd } },
      ]), { lr: o.lr, momentum: o.muon_momentum, nesterov: o.muon_nesterov, nsSteps: o.muon_ns_steps, beta1: o.beta1, beta2: o.beta2, eps: o.eps });
    }
    case 'shampoo':
      return new Shampoo(split([{ params: decayed, options: wd }, { params: plain, options: noWd }]), {
        lr: o.lr, updateFreq: o.shampoo_update_freq, blockSize: o.shampoo_block_size, eps: o.shampoo_eps, epsRelative: o.shampoo_eps_relative,
        statDecay: o.shampoo_stat_decay, startStep: o.shampoo_start_step, graft: o.shampoo_graft,
        graftEps: o.eps, beta1: o.beta1, beta2: o.beta2,
      });
  }
}

/** Each group split by lrScaleOf (one group per distinct factor, which multiplies the group's own lrScale). */
function splitByLrScale<G extends Group>(groups: G[], lrScaleOf?: (name: string) => number): G[] {
  if (!lrScaleOf) return groups;
  return groups.flatMap((g) => {
    const own = (g.options as Partial<BaseOptions> | undefined)?.lrScale ?? 1;
    const scales = [...new Set(g.params.map(([name]) => lrScaleOf(name)))];
    return scales.map((k) => ({ ...g, params: g.params.filter(([name]) => lrScaleOf(name) === k), options: { ...g.options, lrScale: own * k } }));
  });
}

/** A parameter group before it meets its optimizer's option type. */
interface Group {
  params: readonly NamedParam[];
  options?: object;
}
