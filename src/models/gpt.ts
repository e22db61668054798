// GPT: GPT-2's decoder-only Transformer (token + position embeddings, pre-norm blocks of causal self-attention
// and an MLP, final norm, weight-tied head) with modern options: RoPE, RMSNorm, SwiGLU, untied head.
// Parameter names follow Hugging Face's GPT2LMHeadModel. The config spec below is the one place GPT's keys,
// defaults and documentation live (train configs, config.json and --help read it). Not the trainer, not the tokenizer.
import * as lm from '../core/index.js';
import { Rng, type Tensor } from '../core/index.js';
import { parseLocalLayers, type BlockConfig } from '../nn/attention.js';
import { Block, makeNorm, type Norm } from '../nn/block.js';
import { dropoutAt, type ForwardContext } from '../nn/context.js';
import { KVCache } from '../nn/kv-cache.js';
import { Embedding, Linear } from '../nn/layers.js';
import { Module, ModuleList } from '../nn/module.js';
import { reversibleStack } from '../nn/reversible.js';
import { moeLayers } from '../nn/moe.js';
import { RotaryTables } from '../nn/rope.js';
import { shareLayers } from '../nn/sharing.js';
import { blockedHeadCrossEntropy, lossTermsAux, type LossTerms } from './head-loss.js';
import { segmentMask } from '../nn/segments.js';
import { defineConfig, defaultsOf, type ConfigOf } from '../util/config.js';

export { KVCache } from '../nn/kv-cache.js';
export { siteSeed } from '../nn/context.js';
export { mlpHidden } from '../nn/mlp.js';

/** GPT's keys with their defaults (nanoGPT's CPU recipe shape) and documentation. */
export const gptSpec = defineConfig({
  vocab_size: { default: null, type: 'integer', min: 1, doc: "vocabulary size (null = the data's, from meta.json)" },
  block_size: { default: 64, type: 'integer', min: 1, doc: 'context length' },
  n_layer: { default: 4, type: 'integer', min: 1, doc: 'Transformer blocks' },
  n_head: { default: 4, type: 'integer', min: 1, doc: 'attention heads' },
  n_embd: { default: 128, type: 'integer', min: 1, doc: 'model width (a multiple of n_head)' },
  dropout: { default: 0, type: 'number', min: 0, max: 0.99, doc: 'dropout on embeddings, residual branches and attention probabilities' },
  bias: { default: true, doc: 'biases in Linear layers and LayerNorms' },
  activation: { default: 'gelu', choices: ['gelu', 'gelu_tanh'], doc: 'MLP activation (exact GELU as nanoGPT, or GPT-2 tanh approximation)' },
  norm: { default: 'layernorm', choices: ['layernorm', 'rmsnorm'], doc: 'normalisation layer' },
  norm_eps: { default: 1e-5, type: 'number', min: 0, doc: 'epsilon of the normalisation layers' },
  mlp: { default: 'gelu', choices: ['gelu', 'swiglu'], doc: 'MLP type' },
  mlp_hidden: { default: 0, type: 'integer', min: 0, doc: 'MLP hidden width (0 = 4·n_embd, or 8/3·n_embd for SwiGLU)' },
  position: { default: 'learned', choices: ['learned', 'rope'], doc: 'position encoding' },
  rope_base: { default: 10000, type: 'number', min: 1, doc: 'RoPE frequency base' },
  attention_window: { default: 0, type: 'integer', min: 0, doc: 'sliding-window (local) attention: a token in a local layer sees its last N positions (0 = dense everywhere)' },
  local_layers: { default: 'all', type: 'string', doc: "layers that use attention_window: 'all', '' (none) or comma-separated indices like '0,2'" },
  attention: { default: 'dense', choices: ['dense', 'routing', 'lsh'], doc: "attention of the sparse_layers: 'dense' (none are sparse), 'routing' (Routing Transformer: k-means clusters + local heads) or 'lsh' (Reformer: shared-QK angular LSH); attention-probability dropout does not apply to them" },
  sparse_layers: { default: 'all', type: 'string', doc: "layers that use `attention` ('all', '' or indices like '1,3'); a sparse layer is never local, the others follow attention_window/local_layers" },
  routing_clusters: { default: 0, type: 'integer', min: 0, doc: 'Routing: k-means centroids per routing head (0 = ≈√block_size); each cluster holds at most ⌈block_size/clusters⌉ tokens' },
  routing_local_heads: { default: 1, type: 'integer', min: 0, doc: 'Routing: heads of a routing layer that attend to a sliding window of routing_window instead' },
  routing_window: { default: 128, type: 'integer', min: 1, doc: "Routing: the local heads' sliding window" },
  routing_ema: { default: 0.999, type: 'number', min: 0, max: 1, doc: 'Routing: EMA decay of the centroids (mini-batch k-means, training only; saved as buffers)' },
  lsh_bucket_size: { default: 64, type: 'integer', min: 1, doc: 'LSH: mean bucket size at block_size (buckets = block_size/size); a query sees at most the last 2·size − 1 members of its bucket per round' },
  lsh_n_hashes: { default: 2, type: 'integer', min: 1, doc: 'LSH: hash rounds, merged by log-sum-exp weights' },
  tie_embeddings: { default: true, doc: 'share token embedding and output head' },
  // Parameter sharing (ALBERT, Lan et al. 2019) and reversible blocks (RevNet / Reformer): src/nn/sharing.ts, reversible.ts.
  share_layers: { default: 'none', choices: ['none', 'all', 'attention', 'ffn'], doc: "cross-layer sharing: every layer uses layer 0's weights for 'all', its attention (with ln_1) for 'attention', its MLP (with ln_2) for 'ffn'" },
  embedding_dim: { default: 0, type: 'integer', min: 0, doc: 'factorized embedding width E (0 = n_embd): E < n_embd stores wte as (V, E) with projections E→C in and C→E before the tied head' },
  reversible: { default: false, doc: 'reversible residual blocks (y1 = x1 + attn(x2), y2 = x2 + mlp(y1) on a duplicated stream): backward recomputes activations, so their memory does not grow with depth' },
  // Mixture of experts (nn/moe.ts): Switch top-1 / GShard top-2 feed-forward layers.
  moe_experts: { default: 0, type: 'integer', min: 0, doc: 'experts per MoE layer (0 = dense MLP everywhere)' },
  moe_top_k: { default: 2, type: 'integer', min: 1, max: 2, doc: 'experts per token: 1 (Switch) or 2 (GShard)' },
  moe_layers: { default: 'all', type: 'string', doc: "layers whose MLP is a mixture of experts: 'all', '' (none) or comma-separated indices like '1,3'" },
  moe_capacity_factor: { default: 1.25, type: 'number', min: 0, doc: 'training capacity per expert = factor·top_k·tokens/experts; overflow tokens skip the expert (0 = no dropping)' },
  moe_eval_capacity_factor: { default: 0, type: 'number', min: 0, doc: 'capacity factor of evaluation and decoding (0 = no dropping)' },
  moe_balance_coef: { default: 1e-2, type: 'number', min: 0, doc: 'weight of the load-balancing loss E·Σ f_e·P_e' },
  moe_z_coef: { default: 1e-3, type: 'number', min: 0, doc: 'weight of the router z-loss mean(logsumexp(logits)²)' },
  moe_expert_dropout: { default: 0, type: 'number', min: 0, max: 0.99, doc: "dropout on the experts' hidden activations while training" },
  moe_expert_hidden: { default: 0, type: 'integer', min: 0, doc: "hidden width of each expert (0 = the dense MLP's)" },
  moe_second_policy: { default: 'random', choices: ['random', 'all'], doc: "top-2's second expert while training: 'random' (GShard: with probability min(1, 2·gate)) or 'all'" },
  moe_router_jitter: { default: 0, type: 'number', min: 0, max: 0.99, doc: "router input jitter while training: x·U[1−ε, 1+ε] (0 = off)" },
});

/** A GPT's architecture (the spec's keys, with the vocabulary size known). */
export type GPTConfig = Omit<ConfigOf<typeof gptSpec>, 'vocab_size'> & { vocab_size: number } & BlockConfig;

/** The spec's defaults, with GPT-2's padded vocabulary (50304 = 50257 rounded up to a multiple of 64). */
export const GPT_DEFAULTS: GPTConfig = { ...defaultsOf(gptSpec), vocab_size: 50304 };

/** The model keys of a GPT config, in spec order. */
export const GPT_KEYS = Object.keys(gptSpec) as (keyof GPTConfig)[];

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
  if (!Number.isInteger(c.attention_window) || c.attention_window < 0) fail('attention_window', 'an integer ≥ 0 (0 = dense)');
  if (!Number.isInteger(c.embedding_dim) || c.embedding_dim < 0 || c.embedding_dim > c.n_embd) fail('embedding_dim', `an integer in [0, n_embd = ${c.n_embd}] (0 = n_embd)`);
  try {
    parseLocalLayers(c.local_layers, c.n_layer);
  } catch {
    fail('local_layers', `'all', '' or comma-separated distinct layer indices in [0, ${c.n_layer})`);
  }
  if (!Number.isInteger(c.moe_experts) || c.moe_experts < 0) fail('moe_experts', 'an integer ≥ 0 (0 = dense)');
  if (c.moe_experts > 0) {
    if (!(c.moe_top_k === 1 || c.moe_top_k === 2) || c.moe_top_k > c.moe_experts) fail('moe_top_k', `1 or 2, at most moe_experts (${c.moe_experts})`);
    try {
      moeLayers(c);
    } catch {
      fail('moe_layers', `'all', '' or comma-separated distinct layer indices in [0, ${c.n_layer})`);
    }
    if (!Number.isInteger(c.moe_expert_hidden) || c.moe_expert_hidden < 0) fail('moe_expert_hidden', 'an integer ≥ 0 (0 = the MLP width)');
    if (!(c.moe_expert_dropout >= 0 && c.moe_expert_dropout < 1)) fail('moe_expert_dropout', 'a number in [0, 1)');
    for (const f of ['moe_capacity_factor', 'moe_eval_capacity_factor', 'moe_balance_coef', 'moe_z_coef', 'moe_router_jitter'] as const) {
      if (!(c[f] >= 0)) fail(f, 'a number ≥ 0');
    }
  }
  try {
    parseLocalLayers(c.sparse_layers, c.n_layer);
  } catch {
    fail('sparse_layers', `'all', '' or comma-separated distinct layer indices in [0, ${c.n_layer})`);
  }
  // A reversible backward runs each block's forward again: Routing's EMA centroid update and LSH's per-call rotations
  // would differ between the two passes, and a mixture of experts' auxiliary losses are not carried through it.
  if (c.reversible && c.attention !== 'dense' && parseLocalLayers(c.sparse_layers, c.n_layer).size > 0) fail('reversible', `false with attention = ${c.attention} (its backward recomputes each block, which Routing and LSH layers cannot replay)`);
  if (c.reversible && c.moe_experts > 0) fail('reversible', 'false with moe_experts > 0 (a reversible stack does not carry the balance and z-losses)');
  if (c.attention === 'routing' && !(c.routing_local_heads >= 0 && c.routing_local_heads <= c.n_head)) fail('routing_local_heads', `an integer in [0, n_head = ${c.n_head}]`);
  if (c.attention === 'routing' && c.routing_clusters > c.block_size) fail('routing_clusters', `at most block_size (${c.block_size}), or 0 for ≈√block_size`);
}

/** The sliding window the model's local layers use, or 0 when every layer is dense. */
function localWindow(c: GPTConfig): number {
  const sparse = c.attention === 'dense' ? new Set<number>() : parseLocalLayers(c.sparse_layers, c.n_layer);
  return c.attention_window > 0 && [...parseLocalLayers(c.local_layers, c.n_layer)].some((l) => !sparse.has(l)) ? c.attention_window : 0;
}

/** The token embedding's width E: embedding_dim when it factorizes (0 < E < n_embd), else n_embd. */
export function embeddingWidth(c: Pick<GPTConfig, 'embedding_dim' | 'n_embd'>): number {
  return c.embedding_dim > 0 ? c.embedding_dim : c.n_embd;
}

class Transformer extends Module {
  readonly wte: Embedding;
  readonly wpe: Embedding | null;
  readonly h: ModuleList<Block>;
  readonly ln_f: Norm;
  /** Factorized embedding (ALBERT): E → C after wte, and C → E before the tied head (null when E = C). */
  readonly wte_proj: Linear | null;
  readonly head_proj: Linear | null;

  constructor(c: GPTConfig, rng: Rng) {
    super();
    const E = embeddingWidth(c);
    this.wte = this.child('wte', new Embedding(c.vocab_size, E, { rng, std: 0.02 }));
    this.wpe = c.position === 'learned' ? this.child('wpe', new Embedding(c.block_size, c.n_embd, { rng, std: 0.02 })) : null;
    this.h = this.child('h', new ModuleList(Array.from({ length: c.n_layer }, (_, l) => new Block(c, rng, l))));
    this.ln_f = this.child('ln_f', makeNorm(c));
    // The projections start norm-preserving (std 1/√fan_in), so the token signal and the tied head's logits start
    // at an unfactorized model's scale; two 0.02-scale factors in a row would shrink both, and their gradients, ~50×.
    const factorized = E < c.n_embd;
    this.wte_proj = factorized ? this.child('wte_proj', new Linear(E, c.n_embd, { bias: c.bias, rng, std: 1 / Math.sqrt(E) })) : null;
    this.head_proj = factorized && c.tie_embeddings ? this.child('head_proj', new Linear(c.n_embd, E, { bias: c.bias, rng, std: 1 / Math.sqrt(c.n_embd) })) : null;
    shareLayers(this.h.items, c.share_layers);
  }
}

/** Options of one forward pass. */
export interface ForwardOptions {
  /** Seeds this pass's dropout masks (the trainer passes one per micro-step). */
  seed?: number;
  /** Decode incrementally: feed idx after each row's cached positions and extend the cache (no autograd). */
  cache?: KVCache;
  /** With a cache: how many of the T tokens of each row are real (default all; the rest is padding). */
  counts?: readonly number[];
  /**
   * Compute the head for only the last n real positions of each row (evaluation, decoding): logits and hidden
   * are then (B, n, ·). With ragged counts only n = 1 is supported.
   */
  last?: number;
  /** Training terms on the output distribution (z-loss, label smoothing), added to aux when targets are given. */
  terms?: LossTerms;
  /**
   * Document masking of packed rows: (B·T) document ids, row-major; a token attends only to earlier tokens of its own
   * document (segment ids → a block-diagonal causal mask). Dense attention only, no cache.
   */
  segments?: Int32Array;
  /** Reversible models: keep every block's activations for backward instead of recomputing them (the twin tests compare with). */
  storeActivations?: boolean;
  /**
   * (B, T, C) added to the input embeddings before the blocks: per-token features of a caller's own (a QA reader's
   * embedding of "this passage word occurs in the question", DrQA's exact-match feature). Whole-sequence passes only.
   */
  inputFeatures?: Tensor;
}

export interface GPTOutput {
  /** (B, T, V), or (B, n, V) with options.last = n. */
  logits: Tensor;
  /** Mean cross-entropy over targets ≠ −1, when targets were given. */
  loss?: Tensor;
  /** Final hidden states after ln_f, (B, T, C) (or (B, n, C)): input of reward, value and embedding heads. */
  hidden: Tensor;
  /** Auxiliary losses the layers added by name (MoE balance, z-loss); the training loop adds and logs them. */
  aux: Record<string, Tensor>;
  /** Figures the layers logged on the way (MoE routing: moe_dropped, moe_load_max, moe_load_<e>, …). */
  metrics: Record<string, number>;
}

/** forwardLoss's result: GPTOutput without the logits. */
export type GPTLossOutput = Omit<GPTOutput, 'logits' | 'loss'> & { loss: Tensor };

export class GPT extends Module {
  readonly config: GPTConfig;
  readonly transformer: Transformer;
  /** (V, C) in Hugging Face's nn.Linear layout; null when tied to wte. */
  readonly lmHead: Tensor | null;
  /** RoPE tables (null for learned positions); public for pipeline stages, which build their own pass context. */
  readonly rope: RotaryTables | null;

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

  /** A KV cache for `batch` rows of up to block_size positions. */
  newCache(batch = 1): KVCache {
    const c = this.config;
    return new KVCache({ layers: c.n_layer, batch, heads: c.n_head, headDim: c.n_embd / c.n_head, capacity: c.block_size });
  }

  /** Token plus position embeddings of a pass; positions per row when the cache plan is ragged (public for pipeline stages). */
  embed(idx: Tensor, ctx: ForwardContext): Tensor {
    const T = idx.shape[1]!;
    const plan = ctx.cache?.plan;
    const start = plan?.starts[0] ?? 0;
    if (!plan && T > this.config.block_size) {
      throw new RangeError(`GPT: sequence of ${T} tokens exceeds block_size ${this.config.block_size}`);
    }
    const proj = this.transformer.wte_proj;
    const tok = proj ? proj.forward(this.transformer.wte.forward(idx)) : this.transformer.wte.forward(idx); // (B, T, E) → (B, T, C)
    const wpe = this.transformer.wpe;
    if (!wpe) return tok;
    if (plan && !plan.uniform) return lm.add(tok, wpe.forward(plan.positions!)); // (B, T, C)
    return lm.add(tok, lm.slice(wpe.weight, 0, start, start + T)); // (T, C) broadcast over B
  }

  /** The output head (tied or not) over hidden states: (B, T, C) → (B, T, V). */
  head(x: Tensor): Tensor {
    if (this.lmHead) return lm.matmul(x, lm.transpose(this.lmHead)); // (B, T, V)
    const proj = this.transformer.head_proj;
    return lm.matmul(proj ? proj.forward(x) : x, lm.transpose(this.transformer.wte.weight)); // (B, T, E) · (E, V)
  }

  /** The last n real positions of each row of x (B, T, C). */
  private lastPositions(x: Tensor, n: number, counts: readonly number[] | null): Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    if (!counts || counts.every((k) => k === T)) return n === T ? x : lm.slice(x, 1, T - n, T); // (B, n, C)
    if (n !== 1) throw new RangeError(`GPT.forward: options.last = ${n} with ragged counts; only 1 is supported`);
    const rows = lm.tensor(counts.map((k, b) => b * T + Math.max(k, 1) - 1), [B, 1], 'int32');
    return lm.embedding(lm.reshape(x, [B * T, C]), rows); // (B, 1, C)
  }

  forward(idx: Tensor, targets?: Tensor, options: ForwardOptions = {}): GPTOutput {
    const run = (): GPTOutput => {
      const { hidden, ctx } = this.trunk(idx, options);
      const logits = this.head(hidden);
      const metrics = ctx.metrics ?? {};
      if (!targets) return { logits, hidden, aux: ctx.aux, metrics };
      const aux = options.terms ? { ...ctx.aux, ...lossTermsAux(logits, targets, options.terms, -1) } : ctx.aux;
      return { logits, loss: lm.crossEntropy(logits, targets, { ignoreIndex: -1 }), hidden, aux, metrics };
    };
    return options.cache ? lm.noGrad(run) : run();
  }

  /**
   * The mean cross-entropy over targets ≠ −1 without the logits, for training and evaluation: with a frozen head
   * (LoRA, QLoRA, evaluation) through blockedHeadCrossEntropy (models/head-loss.ts), which never holds the (B, T, V)
   * logits or their gradient; a head with trainable weights goes through forward's whole logits. Same loss and
   * gradients as forward's, up to float rounding. Loss terms (options.terms) need the logits: they take forward's path.
   */
  forwardLoss(idx: Tensor, targets: Tensor, options: Omit<ForwardOptions, 'cache' | 'counts' | 'last'> = {}): GPTLossOutput {
    const termsOn = options.terms !== undefined && (options.terms.zLoss !== 0 || options.terms.labelSmoothing !== 0);
    if (this.headTrainable() || (termsOn && lm.isGradEnabled())) {
      const { loss, hidden, aux, metrics } = this.forward(idx, targets, options);
      return { loss: loss!, hidden, aux, metrics };
    }
    const { hidden, ctx } = this.trunk(idx, options);
    const loss = blockedHeadCrossEntropy((h) => this.head(h), hidden, targets, { V: this.config.vocab_size, ignoreIndex: -1 });
    return { loss, hidden, aux: ctx.aux, metrics: ctx.metrics ?? {} };
  }

  /** Whether a weight of the output head would get a gradient now (an untied head, or the tied table and its projection). */
  private headTrainable(): boolean {
    if (!lm.isGradEnabled()) return false;
    // A quantized model's table (QuantizedEmbedding) has no float weight: its head has nothing to train.
    const tied = (this.transformer.wte as { weight?: Tensor }).weight;
    const params = this.lmHead ? [this.lmHead] : [...(tied ? [tied] : []), ...(this.transformer.head_proj?.parameters() ?? [])];
    return params.some((p) => p.requiresGrad);
  }

  /** Embeddings, blocks and the final norm: hidden (B, T, C), or (B, n, C) with options.last = n (public for tensor parallelism). */
  trunk(idx: Tensor, options: ForwardOptions): { hidden: Tensor; ctx: ForwardContext } {
    if (idx.ndim !== 2 || idx.dtype !== 'int32') throw new TypeError(`GPT.forward: idx must be int32 (B, T), got ${idx.describe()}`);
    const [B, T] = idx.shape as [number, number];
    const last = options.last ?? T;
    if (!(Number.isInteger(last) && last >= 1 && last <= T)) throw new RangeError(`GPT.forward: options.last = ${last}, expected 1..${T}`);
    const kv = options.cache ?? null;
    if (kv && kv.batch !== B) throw new RangeError(`GPT.forward: the cache holds ${kv.batch} rows, idx has ${B}`);
    const ctx: ForwardContext = {
      dropout: this.training && !kv ? this.config.dropout : 0,
      seed: options.seed ?? 0,
      rope: this.rope,
      cache: kv ? { kv, plan: kv.plan(T, options.counts, localWindow(this.config)) } : null,
      aux: {},
      metrics: {},
    };
    let e = this.embed(idx, ctx);
    if (options.inputFeatures) {
      const f = options.inputFeatures;
      if (kv) throw new RangeError('GPT.forward: options.inputFeatures are for whole-sequence passes, not with a cache');
      if (f.ndim !== 3 || f.shape[0] !== B || f.shape[1] !== T || f.shape[2] !== this.config.n_embd) throw new RangeError(`GPT.forward: options.inputFeatures must be (${B}, ${T}, ${this.config.n_embd}), got ${f.describe()}`);
      e = lm.add(e, f);
    }
    let x = dropoutAt(ctx, e, 0);
    if (options.segments) {
      if (kv) throw new RangeError('GPT.forward: options.segments (document masking) is for whole-sequence passes, not with a cache');
      ctx.attentionMask = segmentMask(options.segments, B, T, x.dtype); // made here, outside the blocks' scopes, shared by every layer
    }
    // Without autograd nothing needs a block's intermediates afterwards: each block's scope returns them to the
    // pool before the next block takes the same sizes, so a pass holds one block's activations, not n_layer's.
    const scoped = lm.isGradEnabled() ? <R>(f: () => R): R => f() : lm.tidy;
    const blocks = this.transformer.h.items;
    if (this.config.reversible) x = reversibleStack(blocks, x, ctx, { recompute: !options.storeActivations });
    else for (const block of blocks) x = scoped(() => block.forward(x, ctx));
    if (ctx.cache) kv!.advance(ctx.cache.plan);
    const hidden = this.transformer.ln_f.forward(this.lastPositions(x, last, ctx.cache && !ctx.cache.plan.uniform ? ctx.cache.plan.counts : null));
    return { hidden, ctx };
  }

  /** Logits (B, n, V) of the last n positions after feeding idx (B, T) at the cache's position; advances the cache. */
  forwardCachedLast(idx: Tensor, cache: KVCache, n: number): Tensor {
    return this.forward(idx, undefined, { cache, last: n }).logits;
  }

  /** Logits (B, V) of the last position after feeding idx (B, T) at the cache's position; advances the cache. */
  forwardCached(idx: Tensor, cache: KVCache): Tensor {
    return lm.reshape(this.forwardCachedLast(idx, cache, 1), [idx.shape[0]!, this.config.vocab_size]);
  }

  override dispose(): void {
    super.dispose();
    this.rope?.dispose();
  }
}
