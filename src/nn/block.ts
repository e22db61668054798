// A pre-norm Transformer block (GPT-2): x + attn(ln_1(x)), then + mlp(ln_2(x)), with dropout on each residual
// branch. One forward for training, evaluation and cached decoding (the context says which).
import * as lm from '../core/index.js';
import type { Rng, Tensor } from '../core/index.js';
import { CausalSelfAttention, type BlockConfig } from './attention.js';
import { dropoutAt, type ForwardContext } from './context.js';
import { LayerNorm, RMSNorm } from './layers.js';
import { MLP } from './mlp.js';
import { Module } from './module.js';
import { MoE, moeLayers, type MoEFields } from './moe.js';

export type Norm = LayerNorm | RMSNorm;

export function makeNorm(c: Pick<BlockConfig, 'norm' | 'n_embd' | 'bias' | 'norm_eps'>): Norm {
  return c.norm === 'rmsnorm' ? new RMSNorm(c.n_embd, c.norm_eps) : new LayerNorm(c.n_embd, { bias: c.bias, eps: c.norm_eps });
}

export class Block extends Module {
  readonly ln_1: Norm;
  readonly attn: CausalSelfAttention;
  readonly ln_2: Norm;
  /** The feed-forward layer: a dense MLP, or a mixture of experts in the layers moe_layers names. */
  readonly mlp: MLP | MoE;

  constructor(readonly c: BlockConfig & MoEFields, rng: Rng, readonly layer: number) {
    super();
    this.ln_1 = this.child('ln_1', makeNorm(c));
    this.attn = this.child('attn', new CausalSelfAttention(c, rng, layer));
    this.ln_2 = this.child('ln_2', makeNorm(c));
    this.mlp = this.child('mlp', moeLayers(c).has(layer) ? new MoE(c, rng, layer) : new MLP(c, rng));
  }

  /** (B, T, C) → (B, T, C). Residual dropout sites 2·layer + 1 (attention) and 2·layer + 2 (MLP). */
  forward(x: Tensor, ctx: ForwardContext): Tensor {
    const x1 = lm.add(x, this.attnBranch(x, ctx));
    return lm.add(x1, this.mlpBranch(x1, ctx));
  }

  /** The attention residual branch, dropout(attn(ln_1(x))) (also F of the reversible coupling, reversible.ts). */
  attnBranch(x: Tensor, ctx: ForwardContext): Tensor {
    return dropoutAt(ctx, this.attn.forward(this.ln_1.forward(x), ctx), 2 * this.layer + 1);
  }

  /** The MLP residual branch, dropout(mlp(ln_2(x))) (also G of the reversible coupling). */
  mlpBranch(x: Tensor, ctx: ForwardContext): Tensor {
    return dropoutAt(ctx, this.mlp.forward(this.ln_2.forward(x), ctx), 2 * this.layer + 2);
  }
}
