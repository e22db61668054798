// Basic layers. Linear stores its weight as (in, out), the layout of Hugging Face GPT-2's Conv1D, so that
// y = x·W + b needs no transpose and GPT-2 checkpoints load as they are.
import * as lm from '../core/index.js';
import type { Rng, Tensor } from '../core/index.js';
import type { ForwardContext } from './context.js';
import { Module } from './module.js';

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: { bias: boolean; rng: Rng; std: number }) {
    super();
    this.weight = this.param('weight', lm.randn([inFeatures, outFeatures], opts.rng, opts.std));
    this.bias = opts.bias ? this.param('bias', lm.zeros([outFeatures])) : null;
  }

  /** ctx is unused here; it is in the signature so that a wrapper in this place (LoRA's dropout) receives it. */
  forward(x: Tensor, _ctx?: ForwardContext): Tensor {
    return lm.linear(x, this.weight, this.bias);
  }
}

export class Embedding extends Module {
  readonly weight: Tensor;

  constructor(readonly count: number, readonly dim: number, opts: { rng: Rng; std: number }) {
    super();
    this.weight = this.param('weight', lm.randn([count, dim], opts.rng, opts.std));
  }

  forward(ids: Tensor): Tensor {
    return lm.embedding(this.weight, ids);
  }
}

export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly eps: number;

  constructor(readonly dim: number, opts: { bias: boolean; eps: number }) {
    super();
    this.eps = opts.eps;
    this.weight = this.param('weight', lm.ones([dim]));
    this.bias = opts.bias ? this.param('bias', lm.zeros([dim])) : null;
  }

  forward(x: Tensor): Tensor {
    return lm.layerNorm(x, this.weight, this.bias, this.eps);
  }
}

export class RMSNorm extends Module {
  readonly weight: Tensor;

  constructor(readonly dim: number, readonly eps: number) {
    super();
    this.weight = this.param('weight', lm.ones([dim]));
  }

  forward(x: Tensor): Tensor {
    return lm.rmsNorm(x, this.weight, this.eps);
  }
}
