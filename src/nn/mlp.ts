// The Transformer's feed-forward layer: GPT-2's GELU MLP (c_fc → GELU → c_proj) or SwiGLU (Shazeer 2020) with the
// gate and up projections packed in one c_fc. Not attention (attention.ts).
import * as lm from '../core/index.js';
import type { Rng, Tensor } from '../core/index.js';
import { INIT_STD, type BlockConfig } from './attention.js';
import type { ForwardContext } from './context.js';
import { Linear } from './layers.js';
import { Module } from './module.js';

export function mlpHidden(c: Pick<BlockConfig, 'mlp' | 'mlp_hidden' | 'n_embd'>): number {
  if (c.mlp_hidden > 0) return c.mlp_hidden;
  return c.mlp === 'swiglu' ? Math.ceil((8 * c.n_embd) / 3 / 64) * 64 : 4 * c.n_embd;
}

export class MLP extends Module {
  readonly c_fc: Linear;
  readonly c_proj: Linear;
  private readonly hidden: number;

  constructor(readonly c: BlockConfig, rng: Rng) {
    super();
    this.hidden = mlpHidden(c);
    // SwiGLU packs [gate | up] into one projection of twice the hidden width.
    const fcOut = c.mlp === 'swiglu' ? 2 * this.hidden : this.hidden;
    this.c_fc = this.child('c_fc', new Linear(c.n_embd, fcOut, { bias: c.bias, rng, std: INIT_STD }));
    this.c_proj = this.child('c_proj', new Linear(this.hidden, c.n_embd, { bias: c.bias, rng, std: INIT_STD / Math.sqrt(2 * c.n_layer) }));
  }

  /** ctx reaches the projections (an adapter wrapping one may use its dropout seed). */
  forward(x: Tensor, ctx?: ForwardContext): Tensor {
    const h = this.c_fc.forward(x, ctx);
    if (this.c.mlp === 'swiglu') {
      const [gate, up] = lm.split(h, [this.hidden, this.hidden], -1);
      return this.c_proj.forward(lm.mul(lm.silu(gate!), up!), ctx);
    }
    return this.c_proj.forward(lm.gelu(h, this.c.activation === 'gelu_tanh' ? 'tanh' : 'none'), ctx);
  }
}
