// Tensor parallelism (Megatron-LM, Shoeybi et al. 2019) over a ModelComm of tp ranks: each rank holds 1/tp of every
// attention layer's heads (Q/K/V column-parallel, c_proj row-parallel), 1/tp of every MLP's hidden units (c_fc
// column-parallel, c_proj row-parallel), and 1/tp of the vocabulary (embedding rows and the tied head's logits).
// One all-reduce per parallel region forward (g: after a row-parallel layer, the embedding) and one backward (f: the
// input gradient of a column-parallel layer, the head's input); the cross-entropy all-reduces the row max, the
// row sum of exponentials and the target logit over the vocabulary shards, never the logits themselves.
// A TP model is a full GPT built with the same seed on every rank whose blocks and embedding are then replaced by
// their shards, so it starts from the single-process weights exactly. Not pipeline or expert parallelism.
import * as lm from '../../core/index.js';
import type { Tensor } from '../../core/index.js';
import { GPT } from '../../models/gpt.js';
import { CausalSelfAttention } from '../../nn/attention.js';
import { siteSeed, type ForwardContext } from '../../nn/context.js';
import { Module } from '../../nn/module.js';
import { MLP, mlpHidden } from '../../nn/mlp.js';
import { applyRope } from '../../nn/rope.js';
import { bytesForCall } from './comm.js';
import { copyToRegion, reduceFromRegion, type ModelComm } from './collectives.js';

/** The contiguous part [start, end) of n items that rank r of p holds (n must divide by p). */
export function shardRange(n: number, p: number, r: number, what: string): [number, number] {
  if (n % p !== 0) throw new RangeError(`tensor parallelism: ${what} = ${n} does not divide by tp = ${p} (choose a multiple of ${p}; a larger model.vocab_size only adds rows no token uses)`);
  const k = n / p;
  return [r * k, (r + 1) * k];
}

/** Columns [a, b) of each of the given blocks of w's last axis, concatenated: (…, n·blocks) → (…, Σ (b − a)). */
export function columnShard(w: Tensor, blocks: number, a: number, b: number): Tensor {
  const n = w.shape[w.ndim - 1]! / blocks;
  return lm.noGrad(() => {
    const parts = Array.from({ length: blocks }, (_, i) => lm.slice(w, w.ndim - 1, i * n + a, i * n + b));
    return copyOf(parts.length === 1 ? parts[0]! : lm.concat(parts, w.ndim - 1));
  });
}

/** Rows [a, b) of w's first axis. */
export function rowShard(w: Tensor, a: number, b: number): Tensor {
  return lm.noGrad(() => copyOf(lm.slice(w, 0, a, b)));
}

/** A fresh dense copy of t's values: a leaf of its own, sharing neither storage nor graph with t. */
export function copyOf(t: Tensor): Tensor {
  return lm.fromArray(t.toTypedArray(), t.shape);
}

/** A Module holding the given tensors as parameters under the given names. */
class Params extends Module {
  constructor(entries: [string, Tensor][]) {
    super();
    for (const [n, t] of entries) this.param(n, t);
  }

  get(name: string): Tensor {
    return this.namedParameters().find(([n]) => n === name)![1];
  }
}

/** This rank's heads of a dense causal self-attention: c_attn's Q, K and V columns of its heads, c_proj's rows. */
export class ParallelAttention extends Module {
  private readonly c_attn: Params;
  private readonly c_proj: Params;
  private readonly heads: number;
  readonly layer: number;
  readonly window: number;
  private readonly nLayer: number;

  constructor(full: CausalSelfAttention, readonly comm: ModelComm) {
    super();
    if (full.sparse) throw new RangeError(`tensor parallelism: layer ${full.layer} uses ${full.c.attention} attention; only dense and local layers split by heads`);
    const c = full.c;
    const [h0, h1] = shardRange(c.n_head, comm.size, comm.rank, 'model.n_head');
    const D = c.n_embd / c.n_head;
    this.heads = h1 - h0;
    const a = full.c_attn;
    const p = full.c_proj;
    this.c_attn = this.child('c_attn', new Params([
      ['weight', columnShard(a.weight, 3, h0 * D, h1 * D)], // (C, 3·C/tp): [q | k | v] of this rank's heads
      ...(a.bias ? [['bias', columnShard(a.bias, 3, h0 * D, h1 * D)] as [string, Tensor]] : []),
    ]));
    this.c_proj = this.child('c_proj', new Params([
      ['weight', rowShard(p.weight, h0 * D, h1 * D)], // (C/tp, C)
      ...(p.bias ? [['bias', copyOf(p.bias)] as [string, Tensor]] : []), // added once, after the all-reduce
    ]));
    this.layer = full.layer;
    this.window = full.window;
    this.nLayer = c.n_layer;
  }

  /** (B, T, C) → (B, T, C), the sum over ranks of their heads' projections. */
  forward(x: Tensor, ctx: ForwardContext): Tensor {
    if (ctx.cache) throw new Error('tensor parallelism: cached decoding is not supported (sample from the saved full model)');
    const [B, T] = x.shape as [number, number, number];
    const H = this.heads;
    const bias = this.c_attn.namedParameters().find(([n]) => n === 'bias')?.[1] ?? null;
    let qkv = lm.linear(copyToRegion(x, this.comm), this.c_attn.get('weight'), bias); // (B, T, 3·C/tp)
    const Cl = qkv.shape[2]! / 3;
    if (ctx.rope) {
      const [q, k, v] = lm.split(qkv, [Cl, Cl, Cl], 2);
      const tables = { cos: lm.slice(ctx.rope.cos, 0, 0, T), sin: lm.slice(ctx.rope.sin, 0, 0, T) } as typeof ctx.rope;
      const rot = (t: Tensor): Tensor => lm.reshape(applyRope(lm.reshape(t, [B, T, H, Cl / H]), tables), [B, T, Cl]);
      qkv = lm.concat([rot(q!), rot(k!), v!], 2);
    }
    // Attention-probability dropout: rank 0 keeps the one-process site's seed, the others derive their own, so
    // heads on different ranks never share a mask (the kernel keys masks by local head index).
    const site = siteSeed(ctx.seed, 2 * this.nLayer + 1 + this.layer);
    const dropoutSeed = ctx.dropout > 0 ? (this.comm.rank === 0 ? site : siteSeed(site, this.comm.rank)) : 0;
    const y = lm.selfAttention(qkv, H, { dropout: ctx.dropout, dropoutSeed, window: this.window }); // (B, T, C/tp)
    const out = reduceFromRegion(lm.linear(y, this.c_proj.get('weight'), null), this.comm); // (B, T, C)
    const pb = this.c_proj.namedParameters().find(([n]) => n === 'bias')?.[1];
    return pb ? lm.add(out, pb) : out;
  }
}

/** This rank's hidden units of a GELU or SwiGLU MLP: c_fc's columns (gate and up alike), c_proj's rows. */
export class ParallelMLP extends Module {
  private readonly c_fc: Params;
  private readonly c_proj: Params;
  private readonly hidden: number;
  private readonly swiglu: boolean;
  private readonly exact: boolean;

  constructor(full: MLP, readonly comm: ModelComm) {
    super();
    const c = full.c;
    const F = mlpHidden(c);
    const [u0, u1] = shardRange(F, comm.size, comm.rank, 'the MLP width (model.mlp_hidden)');
    this.hidden = u1 - u0;
    this.swiglu = c.mlp === 'swiglu';
    this.exact = c.activation !== 'gelu_tanh';
    const blocks = this.swiglu ? 2 : 1;
    this.c_fc = this.child('c_fc', new Params([
      ['weight', columnShard(full.c_fc.weight, blocks, u0, u1)], // (C, F/tp) or (C, 2F/tp) = [gate | up]
      ...(full.c_fc.bias ? [['bias', columnShard(full.c_fc.bias, blocks, u0, u1)] as [string, Tensor]] : []),
    ]));
    this.c_proj = this.child('c_proj', new Params([
      ['weight', rowShard(full.c_proj.weight, u0, u1)], // (F/tp, C)
      ...(full.c_proj.bias ? [['bias', copyOf(full.c_proj.bias)] as [string, Tensor]] : []),
    ]));
  }

  forward(x: Tensor, _ctx?: ForwardContext): Tensor {
    const bias = this.c_fc.namedParameters().find(([n]) => n === 'bias')?.[1] ?? null;
    let h = lm.linear(copyToRegion(x, this.comm), this.c_fc.get('weight'), bias); // (B, T, F/tp)
    if (this.swiglu) {
      const [gate, up] = lm.split(h, [this.hidden, this.hidden], -1);
      h = lm.mul(lm.silu(gate!), up!);
    } else {
      h = lm.gelu(h, this.exact ? 'none' : 'tanh');
    }
    const out = reduceFromRegion(lm.linear(h, this.c_proj.get('weight'), null), this.comm); // (B, T, C)
    const pb = this.c_proj.namedParameters().find(([n]) => n === 'bias')?.[1];
    return pb ? lm.add(out, pb) : out;
  }
}

/** Rows [v0, v1) of the token embedding; each rank embeds the ids it holds, zeros the rest, and the ranks sum. */
export class VocabParallelEmbedding extends Module {
  readonly weight: Tensor;

  constructor(full: Tensor, readonly v0: number, readonly v1: number, readonly comm: ModelComm) {
    super();
    this.weight = this.param('weight', rowShard(full, v0, v1)); // (V/tp, C)
  }

  /** ids (B, T) → (B, T, C). */
  forward(ids: Tensor): Tensor {
    const { local, mask } = localIds(ids, this.v0, this.v1);
    const e = lm.mul(lm.embedding(this.weight, local), lm.unsqueeze(mask, -1)); // (B, T, C), zero off-shard
    return reduceFromRegion(e, this.comm);
  }
}

/** ids shifted into [0, v1 − v0) (off-shard ids → 0) and a float mask of the on-shard ones (ignoreIndex counts as off). */
function localIds(ids: Tensor, v0: number, v1: number): { local: Tensor; mask: Tensor } {
  const src = ids.toTypedArray();
  const local = new Int32Array(src.length);
  const mask = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const v = src[i]!;
    if (v >= v0 && v < v1) {
      local[i] = v - v0;
      mask[i] = 1;
    }
  }
  return { local: lm.fromArray(local, ids.shape), mask: lm.fromArray(mask, ids.shape) };
}

/**
 * Mean cross-entropy over targets ≠ ignoreIndex from vocabulary-parallel logits (…, V/tp) holding columns
 * [v0, v0 + V/tp): loss_i = log Σ_v exp(z_iv − m_i) + m_i − z_i,t with m the row max over all ranks. Three all-reduces
 * of one value per row (max, sum of exponentials, target logit); every rank returns the same loss, and backward
 * leaves each rank the gradient of its own logits, (softmax − onehot)/count.
 */
export function vocabParallelCrossEntropy(logits: Tensor, targets: Tensor, v0: number, comm: ModelComm, ignoreIndex = -1): Tensor {
  const Vl = logits.shape[logits.ndim - 1]!;
  const N = logits.size / Vl;
  const z = lm.reshape(logits, [N, Vl]); // (N, V/tp)
  const m = lm.noGrad(() => {
    const local = lm.max(z, 1, true).toTypedArray() as Float32Array; // (N, 1)
    comm.allReduce(local, 'max');
    return lm.fromArray(local, [N, 1]);
  });
  const s = reduceFromRegion(lm.sum(lm.exp(lm.sub(z, m)), 1, true), comm); // (N, 1): Σ over the whole vocabulary
  const t = lm.reshape(targets, [N]);
  const { local, mask } = localIds(t, v0, v0 + Vl);
  const zt = reduceFromRegion(lm.mul(lm.gather(z, 1, lm.reshape(local, [N, 1])), lm.reshape(mask, [N, 1])), comm); // (N, 1)
  const tv = t.toTypedArray();
  let count = 0;
  for (let i = 0; i < N; i++) if (tv[i] !== ignoreIndex) count++;
  const w = new Float32Array(N);
  for (let i = 0; i < N; i++) w[i] = tv[i] !== ignoreIndex ? 1 / Math.max(count, 1) : 0;
  const nll = lm.sub(lm.add(lm.log(s), m), zt); // (N, 1)
  return lm.sum(lm.mul(nll, lm.fromArray(w, [N, 1])));
}

/** A GPT split over the ranks of comm, with its forward and loss. */
export class TensorParallelGPT {
  readonly v0: number;
  readonly v1: number;

  /** model: a full GPT built with the same config and seed on every rank; its blocks and embedding are replaced in place. */
  constructor(readonly model: GPT, readonly comm: ModelComm) {
    const c = model.config;
    if (c.reversible || c.moe_experts > 0 || c.embedding_dim > 0 || c.share_layers !== 'none') {
      throw new RangeError('tensor parallelism: supports plain GPTs (no reversible, MoE, factorized embedding or shared layers)');
    }
    if (!c.tie_embeddings) throw new RangeError('tensor parallelism: needs model.tie_embeddings = true (the head is the vocabulary-parallel embedding)');
    [this.v0, this.v1] = shardRange(c.vocab_size, comm.size, comm.rank, 'model.vocab_size');
    const t = model.transformer;
    t.h.items.forEach((_, l) => {
      model.replaceModule(`transformer.h.${l}.attn`, (old) => new ParallelAttention(old as CausalSelfAttention, comm));
      model.replaceModule(`transformer.h.${l}.mlp`, (old) => new ParallelMLP(old as MLP, comm));
    });
    model.replaceModule('transformer.wte', (old) => new VocabParallelEmbedding((old as unknown as { weight: Tensor }).weight, this.v0, this.v1, comm));
  }

  /** Hidden states (B, T, C) after ln_f, and the pass's auxiliary losses and metrics. */
  private trunk(idx: Tensor, seed: number): { hidden: Tensor; ctx: ForwardContext } {
    return this.model.trunk(idx, { seed });
  }

  /** This rank's logits (B, T, V/tp): columns [v0, v1) of the full model's. */
  logits(idx: Tensor, seed = 0): Tensor {
    return this.head(this.trunk(idx, seed).hidden);
  }

  private head(hidden: Tensor): Tensor {
    const wte = (this.model.transformer.wte as unknown as VocabParallelEmbedding).weight;
    return lm.matmul(copyToRegion(hidden, this.comm), lm.transpose(wte)); // (B, T, V/tp)
  }

  /** The mean next-token loss (the same on every rank) with the auxiliary losses and metrics of the pass. */
  loss(idx: Tensor, targets: Tensor, seed = 0): { loss: Tensor; aux: Record<string, Tensor>; metrics: Record<string, number> } {
    const { hidden, ctx } = this.trunk(idx, seed);
    return { loss: vocabParallelCrossEntropy(this.head(hidden), targets, this.v0, this.comm), aux: ctx.aux, metrics: ctx.metrics ?? {} };
  }
}

/**
 * Bytes one rank sends per training step of a TP model under ring all-reduces (2(N − 1)/N of each buffer): the
 * (4·n_layer + 2)·B·T·C activations (forward: 2 per block and the embedding; backward: 2 per block and the head's
 * input), the loss's 3·B·T row values (max, sum of exponentials, target logit) and the gradient norm's one value.
 */
export function tensorParallelBytesPerStep(o: { nLayer: number; B: number; T: number; C: number; size: number }): number {
  const floats = (4 * o.nLayer + 2) * o.B * o.T * o.C + 3 * o.B * o.T + 1;
  return bytesForCall('allReduce', 4 * floats, o.size);
}

/**
 * Where a rank's tensor sits in the full model's tensor of the same name: whole, rows [a, b) of the first axis, or
 * columns [a, b) of each of `blocks` equal blocks of the last axis (Q/K/V, SwiGLU's gate/up).
 */
export type ShardSpec = { kind: 'whole' } | { kind: 'rows'; a: number; b: number } | { kind: 'cols'; blocks: number; a: number; b: number };

/** The tensor-parallel cut of a GPT parameter by its name (the layout TensorParallelGPT's constructor makes). */
export function tensorParallelSpec(name: string, c: GPT['config'], comm: Pick<ModelComm, 'rank' | 'size'>): ShardSpec {
  const p = comm.size;
  const r = comm.rank;
  const D = c.n_embd / c.n_head;
  if (name === 'transformer.wte.weight') {
    const [a, b] = shardRange(c.vocab_size, p, r, 'model.vocab_size');
    return { kind: 'rows', a, b };
  }
  const m = /^transformer\.h\.\d+\.(attn|mlp)\.(c_attn|c_fc|c_proj)\.(weight|bias)$/.exec(name);
  if (!m) return { kind: 'whole' };
  const [, part, layer, kind] = m as unknown as [string, string, string, string];
  const [h0, h1] = shardRange(c.n_head, p, r, 'model.n_head');
  const [u0, u1] = shardRange(mlpHidden(c), p, r, 'the MLP width');
  if (layer === 'c_attn') return { kind: 'cols', blocks: 3, a: h0 * D, b: h1 * D };
  if (layer === 'c_fc') return { kind: 'cols', blocks: c.mlp === 'swiglu' ? 2 : 1, a: u0, b: u1 };
  if (kind === 'bias') return { kind: 'whole' }; // c_proj's bias is added after the all-reduce, whole on every rank
  return part === 'attn' ? { kind: 'rows', a: h0 * D, b: h1 * D } : { kind: 'rows', a: u0, b: u1 };
}

/** The part of a full-model tensor a spec names (a fresh copy). */
export function cut(full: Tensor, spec: ShardSpec): Tensor {
  if (spec.kind === 'rows') return rowShard(full, spec.a, spec.b);
  if (spec.kind === 'cols') return columnShard(full, spec.blocks, spec.a, spec.b);
  return full;
}

/** This rank's shard of a full-model tensor (a weight or a gradient) by its parameter name. */
export function shardOf(name: string, full: Tensor, c: GPT['config'], comm: Pick<ModelComm, 'rank' | 'size'>): Tensor {
  return cut(full, tensorParallelSpec(name, c, comm));
}
