// Causal multi-head self-attention with a fused QKV projection (GPT-2's c_attn / c_proj), optional RoPE, dropout
// on the attention probabilities, an optional sliding window (local attention, per layer), Routing or LSH attention
// per layer (routing-attention.ts, lsh-attention.ts), and KV-cache decoding. One forward: without a cache it runs the fused
// self-attention kernel over the whole sequence; with one it writes the new keys and values at each row's own
// positions and attends over the row's cache. Not the MLP or the block (mlp.ts, block.ts).
import * as lm from '../core/index.js';
import type { Rng, Tensor } from '../core/index.js';
import { siteSeed, type ForwardContext } from './context.js';
import { Linear } from './layers.js';
import { Module } from './module.js';
import { lshBucketCount, LshAttention } from './lsh-attention.js';
import { applyRope, type RotaryTables } from './rope.js';
import { routingShape, RoutingAttention } from './routing-attention.js';

/** The shape of a Transformer block, shared by attention, MLP and block. */
export interface BlockConfig {
  n_layer: number;
  n_head: number;
  n_embd: number;
  bias: boolean;
  activation: 'gelu' | 'gelu_tanh';
  norm: 'layernorm' | 'rmsnorm';
  norm_eps: number;
  mlp: 'gelu' | 'swiglu';
  /** MLP hidden width; 0 means 4·n_embd (gelu) or 8/3·n_embd rounded up to a multiple of 64 (SwiGLU). */
  mlp_hidden: number;
  /** Sliding window of the local layers (each token sees its last attention_window positions); 0 / absent = dense. */
  attention_window?: number;
  /** Which layers are local: 'all' (default), '' (none) or comma-separated indices such as '0,2'. */
  local_layers?: string;
  /** Context length (sparse layers size their clusters and buckets by it). */
  block_size?: number;
  /** The attention of the sparse layers: 'dense' (default: no sparse layers), 'routing' or 'lsh'. */
  attention?: 'dense' | 'routing' | 'lsh';
  /** Which layers use `attention` (same syntax as local_layers; a sparse layer is never local). */
  sparse_layers?: string;
  routing_clusters?: number;
  routing_local_heads?: number;
  routing_window?: number;
  routing_ema?: number;
  lsh_bucket_size?: number;
  lsh_n_hashes?: number;
}

/** The attention a layer runs: 'routing' / 'lsh' when it is one of sparse_layers, else 'local' or 'dense'. */
export function layerAttention(c: Pick<BlockConfig, 'n_layer' | 'attention_window' | 'local_layers' | 'attention' | 'sparse_layers'>, layer: number): 'dense' | 'local' | 'routing' | 'lsh' {
  const kind = c.attention ?? 'dense';
  if (kind !== 'dense' && parseLocalLayers(c.sparse_layers ?? 'all', c.n_layer).has(layer)) return kind;
  return layerWindow(c, layer) > 0 ? 'local' : 'dense';
}

/**
 * The layer indices a local_layers string names: 'all' → every layer, '' → none, '0, 2' → {0, 2}.
 * Throws a RangeError naming the bad entry (not an integer in [0, nLayer), or repeated).
 */
export function parseLocalLayers(spec: string, nLayer: number): Set<number> {
  const s = spec.trim();
  if (s === 'all') return new Set(Array.from({ length: nLayer }, (_, l) => l));
  const layers = new Set<number>();
  if (s === '') return layers;
  for (const part of s.split(',')) {
    const t = part.trim();
    const l = /^\d+$/.test(t) ? Number(t) : Number.NaN;
    if (!(l < nLayer) || layers.has(l)) {
      throw new RangeError(`local_layers = ${JSON.stringify(spec)}: ${JSON.stringify(t)} is not a distinct layer index in [0, ${nLayer}) ('all', '' or a list like '0,2')`);
    }
    layers.add(l);
  }
  return layers;
}

/** The sliding window of one layer: attention_window when the layer is local, else 0 (dense). */
export function layerWindow(c: Pick<BlockConfig, 'n_layer' | 'attention_window' | 'local_layers' | 'attention' | 'sparse_layers'>, layer: number): number {
  if ((c.attention ?? 'dense') !== 'dense' && parseLocalLayers(c.sparse_layers ?? 'all', c.n_layer).has(layer)) return 0;
  const w = c.attention_window ?? 0;
  return w > 0 && parseLocalLayers(c.local_layers ?? 'all', c.n_layer).has(layer) ? w : 0;
}

/** GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/√(2·n_layer). */
export const INIT_STD = 0.02;

/** RoPE tables for this pass: positions [start, start + T) when every row shares them, else gathered per row. */
function ropeTables(rope: RotaryTables, ctx: ForwardContext, T: number): RotaryTables {
  const plan = ctx.cache?.plan;
  if (!plan || plan.uniform) {
    const start = plan?.starts[0] ?? 0;
    return { cos: lm.slice(rope.cos, 0, start, start + T), sin: lm.slice(rope.sin, 0, start, start + T) } as RotaryTables;
  }
  const [L, , half] = rope.cos.shape as [number, number, number];
  const B = plan.positions!.shape[0]!;
  const rows = (t: Tensor): Tensor => lm.reshape(lm.embedding(lm.reshape(t, [L, half]), plan.positions!), [B, T, 1, half]);
  return { cos: rows(rope.cos), sin: rows(rope.sin) } as RotaryTables;
}

/** The heads of a fused (B, T, 3C) projection: q, k, v as (B, T, H, D), q and k rotated when the model uses RoPE. */
function headsOf(qkv: Tensor, H: number, ctx: ForwardContext): { q: Tensor; k: Tensor; v: Tensor } {
  const [B, T, C3] = qkv.shape as [number, number, number];
  const C = C3 / 3;
  const [q, k, v] = lm.split(qkv, [C, C, C], 2).map((t) => lm.reshape(t, [B, T, H, C / H])) as [Tensor, Tensor, Tensor];
  if (!ctx.rope) return { q, k, v };
  const tables = ropeTables(ctx.rope, ctx, T);
  return { q: applyRope(q, tables), k: applyRope(k, tables), v };
}

export class CausalSelfAttention extends Module {
  readonly c_attn: Linear;
  readonly c_proj: Linear;
  /** Sliding window of this layer (0 = dense attention). */
  readonly window: number;
  /** Routing or LSH attention of a sparse layer (null: dense or local). */
  readonly sparse: RoutingAttention | LshAttention | null;
  /** Causal (a decoder's, the default); false makes whole-sequence passes bidirectional (ViT, encoders). */
  causal = true;

  /** layer: this block's index (its cache slot, dropout site and whether it is local). */
  constructor(readonly c: BlockConfig, rng: Rng, readonly layer: number) {
    super();
    this.window = layerWindow(c, layer);
    this.c_attn = this.child('c_attn', new Linear(c.n_embd, 3 * c.n_embd, { bias: c.bias, rng, std: INIT_STD }));
    this.c_proj = this.child('c_proj', new Linear(c.n_embd, c.n_embd, { bias: c.bias, rng, std: INIT_STD / Math.sqrt(2 * c.n_layer) }));
    this.sparse = makeSparse(c, layer);
    if (this.sparse) this.child(this.sparse instanceof RoutingAttention ? 'routing' : 'lsh', this.sparse);
  }

  forward(x: Tensor, ctx: ForwardContext): Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    const H = this.c.n_head;
    const D = C / H;
    const qkv = this.c_attn.forward(x, ctx); // (B, T, 3C)
    const cache = ctx.cache;
    if (this.sparse) return this.c_proj.forward(this.sparseForward(qkv, ctx), ctx);
    if (!cache) {
      // Training and whole-sequence passes: the fused kernel reads q, k, v out of (B, T, 3C) through strides.
      let fused = qkv;
      if (ctx.rope) {
        const [q, k, v] = lm.split(qkv, [C, C, C], 2);
        const tables = ropeTables(ctx.rope, ctx, T);
        const qr = lm.reshape(applyRope(lm.reshape(q!, [B, T, H, D]), tables), [B, T, C]);
        const kr = lm.reshape(applyRope(lm.reshape(k!, [B, T, H, D]), tables), [B, T, C]);
        fused = lm.concat([qr, kr, v!], 2);
      }
      // Attention-probability sites follow the 2·n_layer + 1 residual sites (see context.ts siteSeed).
      const dropoutSeed = ctx.dropout > 0 ? siteSeed(ctx.seed, 2 * this.c.n_layer + 1 + this.layer) : 0;
      const window = this.window;
      return this.c_proj.forward(lm.selfAttention(fused, H, { causal: this.causal, dropout: ctx.dropout, dropoutSeed, window, mask: ctx.attentionMask ?? null }), ctx); // (B, T, C)
    }
    const { q, k, v } = headsOf(qkv, H, ctx);
    cache.kv.write(this.layer, k, v, cache.plan);
    const kv = cache.kv.view(this.layer, cache.plan); // (B, H, Tk, D)
    // Uniform rows: causal (and the window) with the kernel's cache offset. Ragged rows: the plan's additive mask,
    // which for a local layer also hides keys more than `window` positions back (KVCache.plan builds both).
    const plan = cache.plan;
    if (this.window > 0 && plan.window !== this.window) {
      throw new Error(`CausalSelfAttention: layer ${this.layer} has window ${this.window} but the cache plan was made for window ${plan.window}`);
    }
    const opts = plan.uniform ? { causal: true, window: this.window } : { mask: this.window > 0 ? plan.windowMask : plan.mask };
    const y = lm.attention(lm.permute(q, [0, 2, 1, 3]), kv.k, kv.v, opts); // (B, H, T, D)
    return this.c_proj.forward(lm.reshape(lm.permute(y, [0, 2, 1, 3]), [B, T, C]), ctx);
  }

  /** A sparse layer: q, k, v (after RoPE) to its Routing or LSH attention, whole-sequence or cached → (B, T, C). */
  private sparseForward(qkv: Tensor, ctx: ForwardContext): Tensor {
    const [B, T, C3] = qkv.shape as [number, number, number];
    const C = C3 / 3;
    const { q, k, v } = headsOf(qkv, this.c.n_head, ctx);
    const sp = this.sparse!;
    const heads = (t: Tensor): Tensor => lm.permute(t, [0, 2, 1, 3]); // (B, H, T, D)
    let y: Tensor; // (B, H, T, D)
    if (ctx.cache) {
      const { kv, plan } = ctx.cache;
      y = sp instanceof RoutingAttention ? sp.forwardCached(q, k, v, kv, this.layer, plan) : sp.forwardCached(q, v, kv, this.layer, plan);
    } else {
      y = sp instanceof RoutingAttention ? sp.forward(heads(q), heads(k), heads(v)) : sp.forward(heads(q), heads(v));
    }
    return lm.reshape(lm.permute(y, [0, 2, 1, 3]), [B, T, C]);
  }
}

/** The Routing or LSH module of a sparse layer (null otherwise), sized by the config. */
function makeSparse(c: BlockConfig, layer: number): RoutingAttention | LshAttention | null {
  const kind = layerAttention(c, layer);
  if (kind !== 'routing' && kind !== 'lsh') return null;
  const blockSize = c.block_size;
  if (!blockSize) throw new RangeError(`CausalSelfAttention: layer ${layer} is ${kind} attention and needs block_size in its config`);
  const heads = c.n_head;
  const headDim = c.n_embd / c.n_head;
  const seed = 0x5eed + 7919 * layer;
  if (kind === 'lsh') {
    const bucketSize = c.lsh_bucket_size ?? 64;
    return new LshAttention({ heads, headDim, nHashes: c.lsh_n_hashes ?? 2, bucketSize, nBuckets: lshBucketCount(blockSize, bucketSize), seed });
  }
  const shape = routingShape(blockSize, c.routing_clusters ?? 0);
  return new RoutingAttention({
    heads, headDim, ...shape, localHeads: c.routing_local_heads ?? 1, window: c.routing_window ?? 128, ema: c.routing_ema ?? 0.999,
  }, seed);
}
