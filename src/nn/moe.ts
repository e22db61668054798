// Mixture-of-experts feed-forward layer (Switch Transformer top-1, GShard top-2) that replaces the MLP in chosen blocks:
// a router picks k experts per token, tokens are sorted by expert up to each expert's capacity (overflow tokens get
// nothing from that expert; the residual carries them), each expert is a GELU or SwiGLU MLP run for all experts at
// once by the grouped matrix product (core/ops/grouped.ts, native/src/moe.cc), and the outputs are summed back into
// their tokens weighted by the gates. Adds the balance loss and router z-loss (addAuxLoss) and per-step routing
// metrics (addMetric). Not the dense MLP (mlp.ts) and not the block (block.ts).
//
// Parameters, under the block's `mlp.`:
//   router.weight        (C, E)    router logits = x·W (no bias, Linear's (in, out) layout)
//   experts.c_fc.weight  (E, C, F) F = H (GELU) or 2H ([gate | up], SwiGLU), H = moe_expert_hidden or the MLP's width
//   experts.c_fc.bias    (E, F)    when bias
//   experts.c_proj.weight (E, H, C)
//   experts.c_proj.bias  (E, C)    when bias
//
// Routing (math names: N tokens, E experts, k choices, p the router's softmax in fp32):
//   top-k of p per token (ties: lower expert first). Gates: top-1 (Switch) g = p_e1; top-2 (GShard) g_j = p_ej/(p_e1 + p_e2).
//   Second choice (top-2, training, moe_second_policy 'random'): dispatched only when u < 2·g_2 (u uniform, GShard);
//   'all' always dispatches it. Evaluation dispatches every choice.
//   Capacity c = ceil(cf·k·N/E) per expert (cf ≤ 0: no limit). Slots by GShard's priority: every first choice in token
//   order, then every second choice; an assignment whose slot would be ≥ c is dropped.
//   Balance loss E·Σ_e f_e·P_e (f_e = fraction of tokens whose first choice is e, P_e = mean p_e over tokens);
//   z-loss mean_t(logsumexp(logits_t)²).
// Causality: without dropping (evaluation and decoding by default, moe_eval_capacity_factor 0) each token's output
// depends on that token alone. With dropping (training) tokens of a batch compete for slots, so a later token can take
// an earlier one's slot; that is the Switch/GShard design, not a leak into evaluation.
import * as lm from '../core/index.js';
import type { Rng, Tensor } from '../core/index.js';
import type { FloatArray } from '../core/kernels.js';
import { INIT_STD, type BlockConfig } from './attention.js';
import { addAuxLoss, addMetric, siteSeed, type ForwardContext } from './context.js';
import { Linear } from './layers.js';
import { mlpHidden } from './mlp.js';
import { Module } from './module.js';

/** The MoE keys of a model config (gptSpec declares them with defaults and documentation). */
export interface MoEConfig {
  /** Experts per MoE layer; 0 = dense MLP everywhere. */
  moe_experts: number;
  /** Experts per token: 1 (Switch) or 2 (GShard). */
  moe_top_k: number;
  /** Which layers are MoE: 'all', '' or comma-separated indices such as '1,3'. */
  moe_layers: string;
  /** Training capacity factor (≤ 0: no token dropping). */
  moe_capacity_factor: number;
  /** Capacity factor of evaluation and decoding (≤ 0: no token dropping). */
  moe_eval_capacity_factor: number;
  moe_balance_coef: number;
  moe_z_coef: number;
  /** Dropout on the experts' hidden activations while training (Switch's expert dropout). */
  moe_expert_dropout: number;
  /** Hidden width of each expert (0 = the dense MLP's). */
  moe_expert_hidden: number;
  /** Second choice while training: 'random' (GShard: dispatched with probability min(1, 2·g_2)) or 'all'. */
  moe_second_policy: 'random' | 'all';
  /** Router input jitter while training: x·u, u ~ U[1 − ε, 1 + ε] (Switch; 0 = off). */
  moe_router_jitter: number;
}

/** MoE keys as a block sees them (absent = dense). */
export type MoEFields = Partial<MoEConfig>;

/** The MoE layer indices of a config: 'all' → every layer, '' → none, '1,3' → {1, 3}; none when moe_experts is 0. */
export function moeLayers(c: Pick<BlockConfig, 'n_layer'> & MoEFields): Set<number> {
  if (!c.moe_experts) return new Set();
  const spec = (c.moe_layers ?? 'all').trim();
  if (spec === 'all') return new Set(Array.from({ length: c.n_layer }, (_, l) => l));
  const layers = new Set<number>();
  if (spec === '') return layers;
  for (const part of spec.split(',')) {
    const t = part.trim();
    const l = /^\d+$/.test(t) ? Number(t) : Number.NaN;
    if (!(l < c.n_layer) || layers.has(l)) {
      throw new RangeError(`moe_layers = ${JSON.stringify(spec)}: ${JSON.stringify(t)} is not a distinct layer index in [0, ${c.n_layer}) ('all', '' or a list like '1,3')`);
    }
    layers.add(l);
  }
  return layers;
}

/** The hidden width of one expert. */
export function expertHidden(c: BlockConfig & MoEFields): number {
  return c.moe_expert_hidden && c.moe_expert_hidden > 0 ? c.moe_expert_hidden : mlpHidden(c);
}

/** Expert parameters a token does not use (all but k of E experts in every MoE layer), for FLOP and MFU estimates. */
export function moeInactiveParameters(c: BlockConfig & MoEFields): number {
  const layers = moeLayers(c).size;
  if (layers === 0) return 0;
  const E = c.moe_experts!;
  const k = Math.min(c.moe_top_k ?? 2, E);
  const H = expertHidden(c);
  const F = c.mlp === 'swiglu' ? 2 * H : H;
  const perExpert = c.n_embd * F + H * c.n_embd + (c.bias ? F + c.n_embd : 0);
  return layers * (E - k) * perExpert;
}

/** Router input jitter site and expert dropout site of layer l (after GPT's 3·n_layer + 1 sites). */
const jitterSite = (nLayer: number, l: number): number => 3 * nLayer + 1 + 3 * l;
const dropoutSite = (nLayer: number, l: number): number => 3 * nLayer + 2 + 3 * l;
const secondSite = (nLayer: number, l: number): number => 3 * nLayer + 3 + 3 * l;

/** The result of routing N tokens: who goes where, in the sorted (expert-major) row order of the dispatch buffer. */
export interface Routing {
  /** (N, k) chosen experts per token, best first. */
  experts: Int32Array;
  /** Rows per expert in the dispatch buffer (kept assignments). */
  counts: number[];
  /** Per row of the dispatch buffer: its token, and its (token, choice) index t·k + j. */
  rowToken: Int32Array;
  rowChoice: Int32Array;
  /** Per (token, choice): its slot in its expert, or −1 when dropped or not dispatched. */
  slot: Int32Array;
  /** Assignments routed to each expert before the capacity cut (dispatched choices only). */
  demand: number[];
  /** Dispatched assignments dropped by the capacity limit. */
  dropped: number;
  /** The capacity c per expert (N·k when unlimited). */
  capacity: number;
}

/**
 * Routing of N tokens from their router probabilities p (N, E) and normalised gates (N, k): top-k, the optional
 * random second choice (u(t) < 2·g_2), capacity and GShard's slot priority. Pure integer bookkeeping.
 */
export function route(p: ArrayLike<number>, N: number, E: number, k: number, o: { capacityFactor: number; secondUniform: ((t: number) => number) | null }): Routing {
  const experts = new Int32Array(N * k);
  for (let t = 0; t < N; t++) {
    // Top-k by value, lower index first on ties (k ≤ 2, so two passes).
    for (let j = 0; j < k; j++) {
      let best = -1;
      for (let e = 0; e < E; e++) {
        if (j === 1 && e === experts[t * k]) continue;
        if (best < 0 || p[t * E + e]! > p[t * E + best]!) best = e;
      }
      experts[t * k + j] = best;
    }
  }
  const capacity = o.capacityFactor > 0 ? Math.ceil((o.capacityFactor * k * N) / E) : N * k;
  const counts = new Array<number>(E).fill(0);
  const demand = new Array<number>(E).fill(0);
  const slot = new Int32Array(N * k).fill(-1);
  let dropped = 0;
  for (let j = 0; j < k; j++) {
    for (let t = 0; t < N; t++) {
      if (j === 1 && o.secondUniform) {
        const p1 = p[t * E + experts[t * k]!]!;
        const p2 = p[t * E + experts[t * k + 1]!]!;
        const g2 = p2 / (p1 + p2);
        if (!(o.secondUniform(t) < 2 * g2)) continue;
      }
      const e = experts[t * k + j]!;
      demand[e]!++;
      if (counts[e]! < capacity) slot[t * k + j] = counts[e]!++;
      else dropped++;
    }
  }
  const S = counts.reduce((a, b) => a + b, 0);
  const offsets = lm.groupOffsets(counts);
  const rowToken = new Int32Array(S);
  const rowChoice = new Int32Array(S);
  for (let i = 0; i < N * k; i++) {
    const s = slot[i]!;
    if (s < 0) continue;
    const r = offsets[experts[i]!]! + s;
    rowToken[r] = Math.floor(i / k);
    rowChoice[r] = i;
  }
  return { experts, counts, rowToken, rowChoice, slot, demand, dropped, capacity };
}

/** Every expert's two projections, stacked along a leading expert axis. */
class Experts extends Module {
  readonly w1: Tensor;
  readonly b1: Tensor | null;
  readonly w2: Tensor;
  readonly b2: Tensor | null;

  constructor(E: number, C: number, F: number, H: number, bias: boolean, nLayer: number, rng: Rng) {
    super();
    this.w1 = this.param('c_fc.weight', lm.randn([E, C, F], rng, INIT_STD));
    this.b1 = bias ? this.param('c_fc.bias', lm.zeros([E, F])) : null;
    this.w2 = this.param('c_proj.weight', lm.randn([E, H, C], rng, INIT_STD / Math.sqrt(2 * nLayer)));
    this.b2 = bias ? this.param('c_proj.bias', lm.zeros([E, C])) : null;
  }
}

export class MoE extends Module {
  readonly router: Linear;
  readonly experts: Experts;
  readonly E: number;
  readonly k: number;
  readonly H: number;

  constructor(readonly c: BlockConfig & MoEFields, rng: Rng, readonly layer: number) {
    super();
    this.E = c.moe_experts ?? 0;
    this.k = c.moe_top_k ?? 2;
    if (!(Number.isInteger(this.E) && this.E >= 1)) throw new RangeError(`MoE: moe_experts = ${this.E}, expected an integer ≥ 1`);
    if (!(this.k === 1 || this.k === 2) || this.k > this.E) throw new RangeError(`MoE: moe_top_k = ${this.k}, expected 1 or 2 (and ≤ moe_experts)`);
    this.H = expertHidden(c);
    this.router = this.child('router', new Linear(c.n_embd, this.E, { bias: false, rng, std: INIT_STD }));
    const F = c.mlp === 'swiglu' ? 2 * this.H : this.H;
    this.experts = this.child('experts', new Experts(this.E, c.n_embd, F, this.H, c.bias, c.n_layer, rng));
  }

  /**
   * (B, T, C) → (B, T, C). Training drops by moe_capacity_factor; evaluation and decoding by the eval factor. Without
   * a context (a caller of the MLP's signature) nothing is collected and the pass is seeded with 0.
   */
  forward(x: Tensor, ctx: ForwardContext = { dropout: 0, seed: 0, rope: null, cache: null, aux: {} }): Tensor {
    const ex = this.experts;
    const weights: MoEWeights = { router: this.router.weight, w1: ex.w1, b1: ex.b1, w2: ex.w2, b2: ex.b2 };
    return moeForward(x, weights, this.c, ctx, { layer: this.layer, training: this.training && !ctx.cache });
  }
}

/** The tensors of one MoE layer (shapes in the file header). */
export interface MoEWeights {
  router: Tensor;
  w1: Tensor;
  b1: Tensor | null;
  w2: Tensor;
  b2: Tensor | null;
}

/**
 * The MoE layer as a function of its weights (any float dtype; the module calls it with its parameters, tests with
 * float64 copies). training: capacity factor, random second choice, jitter, expert dropout, losses and metrics.
 */
export function moeForward(
  x: Tensor, wt: MoEWeights, c: BlockConfig & MoEFields, ctx: ForwardContext, o: { layer: number; training: boolean; losses?: boolean },
): Tensor {
  const [B, T, C] = x.shape as [number, number, number];
  const N = B * T;
  const E = wt.w1.shape[0]!;
  const H = wt.w2.shape[1]!;
  const k = c.moe_top_k ?? 2;
  const { training } = o;
  const xf = lm.reshape(x, [N, C]); // (N, C)
  let xr = xf;
  const jitter = c.moe_router_jitter ?? 0;
  if (training && jitter > 0) {
    const seed = siteSeed(ctx.seed, jitterSite(c.n_layer, o.layer));
    const u = new Array<number>(N * C);
    for (let i = 0; i < N * C; i++) u[i] = 1 - jitter + 2 * jitter * lm.hashUniform(seed, i);
    xr = lm.mul(xf, lm.tensor(u, [N, C], x.dtype));
  }
  const logits = lm.linear(xr, wt.router, null); // (N, E)
  const probs = lm.softmax(logits, -1); // (N, E), fresh and contiguous
  const second = k === 2 && training && (c.moe_second_policy ?? 'random') === 'random';
  const sseed = siteSeed(ctx.seed, secondSite(c.n_layer, o.layer));
  const r = route(probs.data as FloatArray, N, E, k, {
    capacityFactor: training ? c.moe_capacity_factor ?? 1.25 : c.moe_eval_capacity_factor ?? 0,
    secondUniform: second ? (t) => lm.hashUniform(sseed, t) : null,
  });
  // Gates (N, k) with gradients to the router: top-1 p_e1; top-2 renormalised over the two choices.
  const picked = lm.gather(probs, 1, lm.fromArray(r.experts, [N, k])); // (N, k)
  const gates = k === 2 ? lm.div(picked, lm.sum(picked, 1, true)) : picked;
  const S = r.rowToken.length;
  const offsets = lm.fromArray(lm.groupOffsets(r.counts), [E + 1]);
  const rowToken = lm.fromArray(r.rowToken, [S]);
  const rowExpert = wt.b1 || wt.b2 ? lm.fromArray(expertOfRows(r.counts), [S]) : null;
  let h = lm.groupedMatmul(lm.embedding(xf, rowToken), wt.w1, offsets); // (S, F)
  if (wt.b1) h = lm.add(h, lm.embedding(wt.b1, rowExpert!));
  if (c.mlp === 'swiglu') {
    const [gate, up] = lm.split(h, [H, H], -1);
    h = lm.mul(lm.silu(gate!), up!); // (S, H)
  } else {
    h = lm.gelu(h, c.activation === 'gelu_tanh' ? 'tanh' : 'none'); // (S, H)
  }
  const pe = c.moe_expert_dropout ?? 0;
  if (training && pe > 0) h = lm.mul(h, expertDropoutMask(r.rowChoice, H, pe, siteSeed(ctx.seed, dropoutSite(c.n_layer, o.layer)), x.dtype));
  let y = lm.groupedMatmul(h, wt.w2, offsets); // (S, C)
  if (wt.b2) y = lm.add(y, lm.embedding(wt.b2, rowExpert!));
  y = lm.mul(y, lm.embedding(lm.reshape(gates, [N * k, 1]), lm.fromArray(r.rowChoice, [S]))); // (S, C) · (S, 1)
  const out = lm.scatterAddRows(y, rowToken, N); // (N, C)
  if (training) auxiliary(ctx, c, o.layer, logits, probs, r, N, k, o.losses ?? lm.isGradEnabled());
  return lm.reshape(out, [B, T, C]);
}

/** Balance loss, z-loss (weighted, into ctx.aux when `losses`) and the routing metrics (this layer's share of their mean). */
function auxiliary(
  ctx: ForwardContext, c: BlockConfig & MoEFields, layer: number, logits: Tensor, probs: Tensor, r: Routing, N: number, k: number, losses: boolean,
): void {
  const E = r.counts.length;
  const share = 1 / Math.max(1, moeLayers(c).size);
  const f = new Array<number>(E).fill(0);
  for (let t = 0; t < N; t++) f[r.experts[t * k]!]! += 1 / N;
  const P = lm.mean(probs, 0); // (E)
  const balance = lm.mulScalar(lm.sum(lm.mul(P, lm.tensor(f, [E], probs.dtype))), E);
  const m = lm.detach(lm.max(logits, 1, true)); // (N, 1), a constant shift: d lse/d logits is still softmax
  const lse = lm.add(lm.log(lm.sum(lm.exp(lm.sub(logits, m)), 1, true)), m); // (N, 1)
  const z = lm.mean(lm.square(lse));
  const bc = c.moe_balance_coef ?? 1e-2;
  const zc = c.moe_z_coef ?? 1e-3;
  // Without autograd (losses defaults to isGradEnabled()) the losses train nothing, and GPT releases each block's
  // tensors before the next block runs, so they are not added.
  if (bc > 0 && losses) addAuxLoss(ctx, 'moe_balance', lm.mulScalar(balance, bc));
  if (zc > 0 && losses) addAuxLoss(ctx, 'moe_z', lm.mulScalar(z, zc));
  if (!ctx.metrics) return;
  addMetric(ctx, 'moe_balance_loss', balance.item() * share);
  addMetric(ctx, 'moe_z_loss', z.item() * share);
  const dispatched = r.demand.reduce((a, b) => a + b, 0);
  addMetric(ctx, 'moe_dropped', (dispatched > 0 ? r.dropped / dispatched : 0) * share);
  // Load of expert e: the fraction f_e of tokens whose first choice it is (what the balance loss evens out, Switch's
  // "fraction of tokens dispatched"); max/mean = E·max f. moe_load_max_all counts every dispatched choice (second ones too).
  const maxLoad = E * Math.max(...f);
  addMetric(ctx, 'moe_load_max', maxLoad * share);
  addMetric(ctx, 'moe_load_max_worst', maxLoad, 'max');
  addMetric(ctx, 'moe_load_max_all', ((Math.max(...r.demand) * E) / Math.max(dispatched, 1)) * share);
  for (let e = 0; e < E; e++) {
    addMetric(ctx, `moe_load_${e}`, f[e]! * share);
    addMetric(ctx, `moe_load_l${layer}_${e}`, f[e]!); // per layer, so loads can be summed over steps
  }
}

/**
 * Switch's expert dropout as a mask (S, H) of keep/(1 − p): unit j of the row holding (token, choice) i is kept iff
 * hashUniform(seed, i·H + j) ≥ p. Keyed by the assignment, not the row, so a token's mask does not move when other
 * tokens' routing shifts the rows (which would leak later tokens into earlier ones).
 */
function expertDropoutMask(rowChoice: Int32Array, H: number, p: number, seed: number, dtype: lm.DType): Tensor {
  const S = rowChoice.length;
  const mask = new Array<number>(S * H);
  const keep = 1 / (1 - p);
  for (let r = 0; r < S; r++) {
    const base = rowChoice[r]! * H;
    for (let j = 0; j < H; j++) mask[r * H + j] = lm.hashUniform(seed, base + j) >= p ? keep : 0;
  }
  return lm.tensor(mask, [S, H], dtype);
}

/** The expert of each row of the dispatch buffer (rows are expert-major). */
function expertOfRows(counts: readonly number[]): Int32Array {
  const out = new Int32Array(counts.reduce((a, b) => a + b, 0));
  let at = 0;
  counts.forEach((n, e) => {
    out.fill(e, at, at + n);
    at += n;
  });
  return out;
}
