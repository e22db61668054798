// GPT: GPT-2's decoder-only Transformer (token + position embeddings, pre-norm blocks of causal self-attention
// and an MLP, final norm, weight-tied head) with modern options: RoPE, RMSNorm, SwiGLU, untied head.
// Parameter names follow Hugging Face's GPT2LMHeadModel. Not the trainer, not the tokenizer.
import * as lm from '../core/index.js';
import { hashUniform, Rng, type Tensor } from '../core/index.js';
import { Embedding, LayerNorm, Linear, RMSNorm } from '../nn/layers.js';
import { Module, ModuleList } from '../nn/module.js';
import { applyRope, RotaryTables } from '../nn/rope.js';

export interface GPTConfig {
  /** Vocabulary size (50304 = GPT-2's 50257 padded to a multiple of 64). */
  vocab_size: number;
  /** Longest context the model sees. */
  block_size: number;
  n_layer: number;
  n_head: number;
  n_embd: number;
  /** Dropout on embeddings and residual branches during training (0 disables). */
  dropout: number;
  /** Biases in Linear layers and LayerNorms, as GPT-2. */
  bias: boolean;
  /** 'gelu' exact (nanoGPT) or 'gelu_tanh' (GPT-2's gelu_new). Ignored by SwiGLU. */
  activation: 'gelu' | 'gelu_tanh';
  norm: 'layernorm' | 'rmsnorm';
  norm_eps: number;
  mlp: 'gelu' | 'swiglu';
  /** MLP hidden width; 0 means 4·n_embd (gelu) or 8/3·n_embd rounded up to a multiple of 64 (SwiGLU). */
  mlp_hidden: number;
  position: 'learned' | 'rope';
  rope_base: number;
  /** Share the token embedding with the output head (GPT-2). */
  tie_embeddings: boolean;
}

export const GPT_DEFAULTS: GPTConfig = {
  vocab_size: 50304,
  block_size: 1024,
  n_layer: 12,
  n_head: 12,
  n_embd: 768,
  dropout: 0,
  bias: true,
  activation: 'gelu',
  norm: 'layernorm',
  norm_eps: 1e-5,
  mlp: 'gelu',
  mlp_hidden: 0,
  position: 'learned',
  rope_base: 10000,
  tie_embeddings: true,
};

export function mlpHidden(c: GPTConfig): number {
  if (c.mlp_hidden > 0) return c.mlp_hidden;
  return c.mlp === 'swiglu' ? Math.ceil((8 * c.n_embd) / 3 / 64) * 64 : 4 * c.n_embd;
}

export function validateGPTConfig(c: GPTConfig): void {
  const fail = (field: string, want: string): never => {
    throw new RangeError(`GPT config: ${field} = ${JSON.stringify(c[field as keyof GPTConfig])}, expected ${want}`);
  };
  for (const f of ['vocab_size', 'block_size', 'n_layer', 'n_head', 'n_embd'] as const) {
    if (!Number.isInteger(c[f]) || c[f] < 1) fail(f, 'a positive integer');
  }
  if (c.n_embd % c.n_head !== 0) fail('n_embd', `a multiple of n_head (${c.n_head})`);
  if (c.position === 'rope' && (c.n_embd / c.n_head) % 2 !== 0) fail('n_head', 'a head size n_embd/n_head that is even (RoPE)');
  if (!(c.dropout >= 0 && c.dropout < 1)) fail('dropout', 'a number in [0, 1)');
}

type Norm = LayerNorm | RMSNorm;

function makeNorm(c: GPTConfig): Norm {
  return c.norm === 'rmsnorm' ? new RMSNorm(c.n_embd, c.norm_eps) : new LayerNorm(c.n_embd, { bias: c.bias, eps: c.norm_eps });
}

/** Options of one forward pass. */
export interface ForwardOptions {
  /** Seeds this pass's dropout masks (the trainer passes one per micro-step). */
  seed?: number;
}

/** Per-layer key/value cache for incremental decoding: (B, H, block_size, D) each. */
export class KVCache {
  readonly k: Tensor[];
  readonly v: Tensor[];
  length = 0;

  constructor(readonly config: GPTConfig, readonly B: number) {
    const D = config.n_embd / config.n_head;
    const shape = [B, config.n_head, config.block_size, D];
    this.k = Array.from({ length: config.n_layer }, () => lm.keep(lm.zeros(shape)));
    this.v = Array.from({ length: config.n_layer }, () => lm.keep(lm.zeros(shape)));
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v]) t.dispose();
  }
}

/** Dropout on a layer's attention probabilities: rate and mask seed (see core/ops/attention.ts). */
interface AttentionDropout {
  dropout: number;
  dropoutSeed: number;
}

class CausalSelfAttention extends Module {
  readonly c_attn: Linear;
  readonly c_proj: Linear;

  constructor(readonly c: GPTConfig, rng: Rng) {
    super();
    const std = 0.02;
    this.c_attn = this.child('c_attn', new Linear(c.n_embd, 3 * c.n_embd, { bias: c.bias, rng, std }));
    // GPT-2: residual projections scaled by 1/√(2·n_layer).
    this.c_proj = this.child('c_proj', new Linear(c.n_embd, c.n_embd, { bias: c.bias, rng, std: std / Math.sqrt(2 * c.n_layer) }));
  }

  /** attnDrop: dropout on the attention probabilities (nanoGPT's attn_dropout), p = 0 outside training. */
  forward(x: Tensor, rope: RotaryTables | null, attnDrop: AttentionDropout): Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    let qkv = this.c_attn.forward(x); // (B, T, 3C)
    if (rope) {
      const H = this.c.n_head;
      const D = C / H;
      const [q, k, v] = lm.split(qkv, [C, C, C], 2);
      const cos = lm.slice(rope.cos, 0, 0, T);
      const sin = lm.slice(rope.sin, 0, 0, T);
      const tables = { cos, sin } as RotaryTables;
      const qr = lm.reshape(applyRope(lm.reshape(q!, [B, T, H, D]), tables), [B, T, C]);
      const kr = lm.reshape(applyRope(lm.reshape(k!, [B, T, H, D]), tables), [B, T, C]);
      qkv = lm.concat([qr, kr, v!], 2);
    }
    const y = lm.selfAttention(qkv, this.c.n_head, attnDrop); // (B, T, C)
    return this.c_proj.forward(y);
  }

  /** Incremental attention for positions [cache.length, cache.length + T) (no autograd). */
  forwardCached(x: Tensor, layer: number, cache: KVCache, rope: RotaryTables | null): Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    const H = this.c.n_head;
    const D = C / H;
    const pos = cache.length;
    const qkv = this.c_attn.forward(x); // (B, T, 3C)
    const parts = lm.split(qkv, [C, C, C], 2).map((t) => lm.reshape(t, [B, T, H, D]));
    let q = parts[0]!;
    let k = parts[1]!;
    const v = parts[2]!;
    if (rope) {
      const tables = { cos: lm.slice(rope.cos, 0, pos, pos + T), sin: lm.slice(rope.sin, 0, pos, pos + T) } as RotaryTables;
      q = applyRope(q, tables);
      k = applyRope(k, tables);
    }
    // Write k and v (B, T, H, D) into the cache rows [pos, pos + T) of (B, H, block, D).
    const kern = lm.kernelsFor('float32');
    for (const [src, dst] of [[k, cache.k[layer]!], [v, cache.v[layer]!]] as const) {
      const srcPerm = lm.permute(src, [0, 2, 1, 3]);
      kern.copyStrided(
        { data: srcPerm.data, offset: srcPerm.offset, strides: srcPerm.strides },
        { data: dst.data, offset: pos * dst.strides[2]!, strides: dst.strides },
        srcPerm.shape,
      );
    }
    const kAll = lm.slice(cache.k[layer]!, 2, 0, pos + T);
    const vAll = lm.slice(cache.v[layer]!, 2, 0, pos + T);
    const y = lm.attention(lm.permute(q, [0, 2, 1, 3]), kAll, vAll, { causal: true }); // (B, H, T, D)
    const merged = lm.reshape(lm.permute(y, [0, 2, 1, 3]), [B, T, C]);
    return this.c_proj.forward(merged);
  }
}

class MLP extends Module {
  readonly c_fc: Linear;
  readonly c_proj: Linear;
  private readonly hidden: number;

  constructor(readonly c: GPTConfig, rng: Rng) {
    super();
    this.hidden = mlpHidden(c);
    const std = 0.02;
    // SwiGLU packs [gate | up] into one projection of twice the hidden width.
    const fcOut = c.mlp === 'swiglu' ? 2 * this.hidden : this.hidden;
    this.c_fc = this.child('c_fc', new Linear(c.n_embd, fcOut, { bias: c.bias, rng, std }));
    this.c_proj = this.child('c_proj', new Linear(this.hidden, c.n_embd, { bias: c.bias, rng, std: std / Math.sqrt(2 * c.n_layer) }));
  }

  forward(x: Tensor): Tensor {
    const h = this.c_fc.forward(x);
    if (this.c.mlp === 'swiglu') {
      const [gate, up] = lm.split(h, [this.hidden, this.hidden], -1);
      return this.c_proj.forward(lm.mul(lm.silu(gate!), up!));
    }
    return this.c_proj.forward(lm.gelu(h, this.c.activation === 'gelu_tanh' ? 'tanh' : 'none'));
  }
}

class Block extends Module {
  readonly ln_1: Norm;
  readonly attn: CausalSelfAttention;
  readonly ln_2: Norm;
  readonly mlp: MLP;

  constructor(readonly c: GPTConfig, rng: Rng) {
    super();
    this.ln_1 = this.child('ln_1', makeNorm(c));
    this.attn = this.child('attn', new CausalSelfAttention(c, rng));
    this.ln_2 = this.child('ln_2', makeNorm(c));
    this.mlp = this.child('mlp', new MLP(c, rng));
  }

  forward(x: Tensor, rope: RotaryTables | null, drop: (t: Tensor, site: number) => Tensor, layer: number, attnDrop: AttentionDropout): Tensor {
    const a = drop(this.attn.forward(this.ln_1.forward(x), rope, attnDrop), 2 * layer + 1);
    const x1 = lm.add(x, a);
    const m = drop(this.mlp.forward(this.ln_2.forward(x1)), 2 * layer + 2);
    return lm.add(x1, m);
  }
}

class Transformer extends Module {
  readonly wte: Embedding;
  readonly wpe: Embedding | null;
  readonly h: ModuleList<Block>;
  readonly ln_f: Norm;

  constructor(c: GPTConfig, rng: Rng) {
    super();
    this.wte = this.child('wte', new Embedding(c.vocab_size, c.n_embd, { rng, std: 0.02 }));
    this.wpe = c.position === 'learned' ? this.child('wpe', new Embedding(c.block_size, c.n_embd, { rng, std: 0.02 })) : null;
    this.h = this.child('h', new ModuleList(Array.from({ length: c.n_layer }, () => new Block(c, rng))));
    this.ln_f = this.child('ln_f', makeNorm(c));
  }
}

export interface GPTOutput {
  /** (B, T, V) */
  logits: Tensor;
  /** Mean cross-entropy over targets ≠ −1, when targets were given. */
  loss?: Tensor;
}

export class GPT extends Module {
  readonly config: GPTConfig;
  readonly transformer: Transformer;
  /** (V, C) in Hugging Face's nn.Linear layout; null when tied to wte. */
  readonly lmHead: Tensor | null;
  private readonly rope: RotaryTables | null;

  constructor(config: Partial<GPTConfig>, seed = 1337) {
    super();
    const c = { ...GPT_DEFAULTS, ...config };
    validateGPTConfig(c);
    this.config = c;
    const rng = new Rng(seed);
    this.transformer = this.child('transformer', new Transformer(c, rng));
    this.lmHead = c.tie_embeddings ? null : this.param('lm_head.weight', lm.randn([c.vocab_size, c.n_embd], rng, 0.02));
    this.rope = c.position === 'rope' ? new RotaryTables(c.block_size, c.n_embd / c.n_head, c.rope_base) : null;
  }

  /** Parameters excluding the position embedding, as nanoGPT counts them. */
  numParametersNonEmbedding(): number {
    return this.numParameters() - (this.transformer.wpe?.weight.size ?? 0);
  }

  private embed(idx: Tensor, start: number): Tensor {
    const T = idx.shape[1]!;
    if (start + T > this.config.block_size) {
      throw new RangeError(`GPT: sequence of ${start + T} tokens exceeds block_size ${this.config.block_size}`);
    }
    const tok = this.transformer.wte.forward(idx); // (B, T, C)
    if (!this.transformer.wpe) return tok;
    const pos = lm.slice(this.transformer.wpe.weight, 0, start, start + T); // (T, C)
    return lm.add(tok, pos);
  }

  private head(x: Tensor): Tensor {
    const w = this.lmHead ?? this.transformer.wte.weight; // (V, C)
    return lm.matmul(x, lm.transpose(w)); // (B, T, V)
  }

  forward(idx: Tensor, targets?: Tensor, options: ForwardOptions = {}): GPTOutput {
    if (idx.ndim !== 2 || idx.dtype !== 'int32') throw new TypeError(`GPT.forward: idx must be int32 (B, T), got ${idx.describe()}`);
    const p = this.training ? this.config.dropout : 0;
    const seed = options.seed ?? 0;
    const drop = (t: Tensor, site: number): Tensor => (p > 0 ? lm.dropout(t, p, siteSeed(seed, site)) : t);
    let x = drop(this.embed(idx, 0), 0);
    // Residual dropout uses sites 0..2·n_layer; the attention probabilities of layer l use site 2·n_layer + 1 + l.
    const attnSite = 2 * this.config.n_layer + 1;
    // Without autograd nothing needs a block's intermediates afterwards: free them block by block (see forwardCachedLast).
    const scoped = lm.isGradEnabled() ? <T>(f: () => T): T => f() : lm.tidy;
    this.transformer.h.items.forEach((block, l) => {
      x = scoped(() => block.forward(x, this.rope, drop, l, { dropout: p, dropoutSeed: p > 0 ? siteSeed(seed, attnSite + l) : 0 }));
    });
    x = this.transformer.ln_f.forward(x);
    const logits = this.head(x);
    if (!targets) return { logits };
    const loss = lm.crossEntropy(logits, targets, { ignoreIndex: -1 });
    return { logits, loss };
  }

  /** Logits (B, V) of the last position after feeding idx (B, T) at the cache's position; advances the cache. */
  forwardCached(idx: Tensor, cache: KVCache): Tensor {
    const logits = this.forwardCachedLast(idx, cache, 1); // (B, 1, V)
    return lm.reshape(logits, [idx.shape[0]!, this.config.vocab_size]);
  }

  /**
   * Logits (B, n, V) of the last n positions after feeding idx (B, T) at the cache's position; advances the cache.
   * The head runs on those n positions only (the evaluation harness scores continuations this way).
   */
  forwardCachedLast(idx: Tensor, cache: KVCache, n: number): Tensor {
    return lm.noGrad(() => {
      const T = idx.shape[1]!;
      if (!(Number.isInteger(n) && n >= 1 && n <= T)) throw new RangeError(`GPT.forwardCachedLast: n = ${n}, expected 1..${T}`);
      let x = this.embed(idx, cache.length);
      // One scope per block: its intermediates go back to the pool before the next block takes the same sizes,
      // so a pass holds one block's activations, not n_layer blocks' worth of fresh memory.
      this.transformer.h.items.forEach((block, l) => {
        x = lm.tidy(() => {
          const x1 = lm.add(x, block.attn.forwardCached(block.ln_1.forward(x), l, cache, this.rope));
          return lm.add(x1, block.mlp.forward(block.ln_2.forward(x1)));
        });
      });
      cache.length += T;
      const last = n === T ? x : lm.slice(x, 1, T - n, T); // (B, n, C)
      return this.head(this.transformer.ln_f.forward(last));
    });
  }

  override dispose(): void {
    super.dispose();
    this.rope?.dispose();
  }
}

/**
 * A distinct dropout seed per (forward seed, site) pair. Sites: 0 the embeddings, 2l + 1 and 2l + 2 the residual
 * branches of layer l, 2·n_layer + 1 + l the attention probabilities of layer l.
 */
export function siteSeed(seed: number, site: number): number {
  return Math.floor(hashUniform(seed, site) * 2 ** 24) * 256 + (site & 255);
}
