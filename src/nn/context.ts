// The per-call context of a forward pass: what changes from call to call but not from layer to layer — the KV
// cache and its plan, RoPE tables, dropout rate and seed — and the auxiliary losses layers add on the way (MoE
// balance, router z-loss). Layers have one forward that reads it, so cached and uncached passes are the same code.
import { hashUniform, type Tensor } from '../core/index.js';
import * as lm from '../core/index.js';
import type { CachePlan, KVCache } from './kv-cache.js';
import type { RotaryTables } from './rope.js';

export interface ForwardContext {
  /** Dropout probability of this pass (0 outside training). */
  dropout: number;
  /** Seeds this pass's dropout masks; each layer derives its own per site (siteSeed). */
  seed: number;
  /** RoPE tables covering the model's block, or null for learned positions. */
  rope: RotaryTables | null;
  /** Incremental decoding: the cache to read and extend, and this pass's plan over it. */
  cache: { kv: KVCache; plan: CachePlan } | null;
  /** Auxiliary losses by name, summed over the layers that add them. */
  aux: Record<string, Tensor>;
  /** Figures of this pass to log (MoE routing: dropped fraction, expert loads), by name; absent = not collected. */
  metrics?: Record<string, number>;
  /** Additive attention mask of a pass over packed documents (nn/segments.ts), shared by every layer; absent = none. */
  attentionMask?: Tensor;
}

/** Adds a named auxiliary loss to the pass (summing with earlier layers' terms of the same name). */
export function addAuxLoss(ctx: ForwardContext, name: string, loss: Tensor): void {
  const prev = ctx.aux[name];
  ctx.aux[name] = prev ? lm.add(prev, loss) : loss;
}

/** Adds a figure to the pass's metrics: summed with earlier layers' values of the same name, or their maximum. */
export function addMetric(ctx: ForwardContext, name: string, value: number, how: 'sum' | 'max' = 'sum'): void {
  if (!ctx.metrics) return;
  const prev = ctx.metrics[name];
  ctx.metrics[name] = prev === undefined ? value : how === 'max' ? Math.max(prev, value) : prev + value;
}

/**
 * A distinct dropout seed per (pass seed, site) pair. GPT's sites: 0 the embeddings, 2l + 1 and 2l + 2 the residual
 * branches of layer l, 2·n_layer + 1 + l the attention probabilities of layer l.
 */
export function siteSeed(seed: number, site: number): number {
  return Math.floor(hashUniform(seed, site) * 2 ** 24) * 256 + (site & 255);
}

/** Dropout at a site of the pass (identity when the pass has none). */
export function dropoutAt(ctx: ForwardContext, x: Tensor, site: number): Tensor {
  return ctx.dropout > 0 ? lm.dropout(x, ctx.dropout, siteSeed(ctx.seed, site)) : x;
}
