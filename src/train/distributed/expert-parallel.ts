// Expert parallelism for mixture-of-experts layers (GShard, Lepikhin et al. 2020): each of ep ranks holds E/ep of
// every MoE layer's experts and its own slice of the batch; the router runs on every rank over its own tokens, an
// all-to-all sends each routed row to the rank that holds its expert, the experts run there (one grouped matrix
// product), and a second all-to-all brings the outputs home, where they are weighted by the gates and summed into
// their tokens. Everything else (attention, norms, router, embeddings) is replicated and trained data-parallel:
// its gradients are averaged over the ranks, the experts' scaled by 1/ep (each rank's loss is its slice's mean).
// The balance loss uses the expert fractions f_e of the whole batch (all-reduced) with the rank's own mean
// probabilities P_e, so the ranks' mean objective is the single-process one. Capacity is per rank (GShard's
// groups): with capacity-factor dropping a rank's tokens compete only among themselves.
// Not tensor or pipeline parallelism; not the dense MoE layer (nn/moe.ts), whose routing it reuses.
import * as lm from '../../core/index.js';
import type { Tensor } from '../../core/index.js';
import type { FloatArray } from '../../core/kernels.js';
import type { GPT } from '../../models/gpt.js';
import { addAuxLoss, addMetric, siteSeed, type ForwardContext } from '../../nn/context.js';
import { Module } from '../../nn/module.js';
import { MoE, moeLayers, route } from '../../nn/moe.js';
import { bytesForCall } from './comm.js';
import { allReduced, allToAllRows, type HeldParam, type ModelComm } from './collectives.js';
import { copyOf } from './tensor-parallel.js';

/** The experts [e0, e1) rank r of p holds: a contiguous E/p of them. */
export function expertRange(E: number, p: number, r: number): [number, number] {
  if (E % p !== 0) throw new RangeError(`expert parallelism: model.moe_experts = ${E} does not divide by ep = ${p}`);
  return [(r * E) / p, ((r + 1) * E) / p];
}

/** The rank holding expert e when E experts are spread over p ranks. */
export function expertOwner(E: number, p: number, e: number): number {
  return Math.floor(e / (E / p));
}

/**
 * The order that turns rows received from each rank (rank-major, then local expert) into expert-major rows:
 * perm[j] = the received row that goes to position j. recv[r][e] = rows from rank r for local expert e.
 */
export function expertMajorOrder(recv: readonly (readonly number[])[]): Int32Array {
  const R = recv.length;
  const El = recv[0]?.length ?? 0;
  const start: number[][] = [];
  let at = 0;
  for (let r = 0; r < R; r++) {
    start.push([]);
    for (let e = 0; e < El; e++) {
      start[r]!.push(at);
      at += recv[r]![e]!;
    }
  }
  const perm = new Int32Array(at);
  let j = 0;
  for (let e = 0; e < El; e++) for (let r = 0; r < R; r++) for (let i = 0; i < recv[r]![e]!; i++) perm[j++] = start[r]![e]! + i;
  return perm;
}

/** The inverse of a permutation. */
function inverse(perm: Int32Array): Int32Array {
  const inv = new Int32Array(perm.length);
  perm.forEach((p, j) => (inv[p] = j));
  return inv;
}

/** One MoE layer with this rank's experts. Parameter names are the dense layer's (experts.* hold E/ep experts). */
export class ExpertParallelMoE extends Module {
  readonly router: Module;
  readonly experts: Module;
  private readonly routerW: Tensor;
  private readonly w1: Tensor;
  private readonly b1: Tensor | null;
  private readonly w2: Tensor;
  private readonly b2: Tensor | null;
  readonly e0: number;
  readonly e1: number;

  /** tokenOffset: the global index of this rank's first token (its slice of the batch), for the hash-seeded choices. */
  constructor(readonly full: MoE, readonly comm: ModelComm, readonly tokenOffset: () => number) {
    super();
    const c = full.c;
    if ((c.moe_expert_dropout ?? 0) > 0) throw new RangeError('expert parallelism: model.moe_expert_dropout must be 0 (its masks are keyed by the global assignment)');
    [this.e0, this.e1] = expertRange(full.E, comm.size, comm.rank);
    const slice = (t: Tensor): Tensor => lm.noGrad(() => copyOf(lm.slice(t, 0, this.e0, this.e1)));
    const ex = full.experts;
    this.routerW = full.router.weight;
    this.router = this.child('router', full.router);
    this.w1 = slice(ex.w1);
    this.b1 = ex.b1 ? slice(ex.b1) : null;
    this.w2 = slice(ex.w2);
    this.b2 = ex.b2 ? slice(ex.b2) : null;
    this.experts = this.child('experts', new ExpertShard(this.w1, this.b1, this.w2, this.b2));
  }

  /** (B, T, C) → (B, T, C) over this rank's tokens; the experts run wherever they live. */
  forward(x: Tensor, ctx: ForwardContext = { dropout: 0, seed: 0, rope: null, cache: null, aux: {} }): Tensor {
    const c = this.full.c;
    const layer = this.full.layer;
    const training = this.training && !ctx.cache;
    const [B, T, C] = x.shape as [number, number, number];
    const N = B * T;
    const E = this.full.E;
    const k = this.full.k;
    const H = this.full.H;
    const P = this.comm.size;
    const El = E / P;
    const off = this.tokenOffset();
    const xf = lm.reshape(x, [N, C]); // (N, C)
    let xr = xf;
    const jitter = c.moe_router_jitter ?? 0;
    if (training && jitter > 0) {
      const seed = siteSeed(ctx.seed, 3 * c.n_layer + 1 + 3 * layer);
      const u = new Float32Array(N * C);
      for (let i = 0; i < N * C; i++) u[i] = 1 - jitter + 2 * jitter * lm.hashUniform(seed, off * C + i);
      xr = lm.mul(xf, lm.fromArray(u, [N, C]));
    }
    const logits = lm.linear(xr, this.routerW, null); // (N, E)
    const probs = lm.softmax(logits, -1);
    const second = k === 2 && training && (c.moe_second_policy ?? 'random') === 'random';
    const sseed = siteSeed(ctx.seed, 3 * c.n_layer + 3 + 3 * layer);
    const r = route(probs.data as FloatArray, N, E, k, {
      capacityFactor: training ? c.moe_capacity_factor ?? 1.25 : c.moe_eval_capacity_factor ?? 0,
      secondUniform: second ? (t) => lm.hashUniform(sseed, off + t) : null,
    });
    const picked = lm.gather(probs, 1, lm.fromArray(r.experts, [N, k])); // (N, k)
    const gates = k === 2 ? lm.div(picked, lm.sum(picked, 1, true)) : picked;
    // Rows are expert-major, so the rows for rank q's experts are one contiguous run; first tell each rank how many
    // rows of each of its experts are coming.
    const sendCounts = new Float32Array(E);
    r.counts.forEach((n, e) => (sendCounts[e] = n));
    const recvCounts = lm.noGrad(() => allToAllRows(lm.fromArray(sendCounts, [E, 1]), new Array<number>(P).fill(El), new Array<number>(P).fill(El), this.comm).toTypedArray());
    const recv = Array.from({ length: P }, (_, q) => Array.from({ length: El }, (_, e) => recvCounts[q * El + e]!));
    const sendRows = Array.from({ length: P }, (_, q) => r.counts.slice(q * El, (q + 1) * El).reduce((a, b) => a + b, 0));
    const recvRows = recv.map((n) => n.reduce((a, b) => a + b, 0));
    const perm = expertMajorOrder(recv);
    const R = perm.length;
    const S = r.rowToken.length;
    const rowToken = lm.fromArray(r.rowToken, [S]);
    const arrived = allToAllRows(lm.embedding(xf, rowToken), sendRows, recvRows, this.comm); // (R, C), rank-major
    const xe = lm.embedding(arrived, lm.fromArray(perm, [R])); // (R, C), expert-major over this rank's experts
    const localCounts = Array.from({ length: El }, (_, e) => recv.reduce((a, n) => a + n[e]!, 0));
    const offsets = lm.fromArray(lm.groupOffsets(localCounts), [El + 1]);
    const rowExpert = this.b1 || this.b2 ? lm.fromArray(expertOfRows(localCounts), [R]) : null;
    let h = lm.groupedMatmul(xe, this.w1, offsets); // (R, F)
    if (this.b1) h = lm.add(h, lm.embedding(this.b1, rowExpert!));
    if (c.mlp === 'swiglu') {
      const [gate, up] = lm.split(h, [H, H], -1);
      h = lm.mul(lm.silu(gate!), up!);
    } else {
      h = lm.gelu(h, c.activation === 'gelu_tanh' ? 'tanh' : 'none');
    }
    let ye = lm.groupedMatmul(h, this.w2, offsets); // (R, C)
    if (this.b2) ye = lm.add(ye, lm.embedding(this.b2, rowExpert!));
    const back = lm.embedding(ye, lm.fromArray(inverse(perm), [R])); // (R, C), rank-major again
    let y = allToAllRows(back, recvRows, sendRows, this.comm); // (S, C): this rank's rows, expert-major
    y = lm.mul(y, lm.embedding(lm.reshape(gates, [N * k, 1]), lm.fromArray(r.rowChoice, [S])));
    const out = lm.scatterAddRows(y, rowToken, N); // (N, C)
    if (training) this.auxiliary(ctx, logits, probs, r.experts, r.dropped, r.demand, N, k);
    return lm.reshape(out, [B, T, C]);
  }

  /** Balance loss with the whole batch's f (all-reduced) and this rank's P; z-loss over this rank's tokens. */
  private auxiliary(ctx: ForwardContext, logits: Tensor, probs: Tensor, experts: Int32Array, dropped: number, demand: number[], N: number, k: number): void {
    const c = this.full.c;
    const E = this.full.E;
    const share = 1 / Math.max(1, moeLayers(c).size);
    const counts = new Float32Array(E + 2);
    for (let t = 0; t < N; t++) counts[experts[t * k]!]! += 1;
    counts[E] = dropped;
    counts[E + 1] = demand.reduce((a, b) => a + b, 0);
    const total = lm.noGrad(() => allReduced(lm.fromArray(counts, [E + 2]), this.comm).toTypedArray());
    const f = Array.from({ length: E }, (_, e) => total[e]! / (N * this.comm.size));
    const Pm = lm.mean(probs, 0); // (E)
    const balance = lm.mulScalar(lm.sum(lm.mul(Pm, lm.tensor(f, [E], probs.dtype))), E);
    const m = lm.detach(lm.max(logits, 1, true));
    const lse = lm.add(lm.log(lm.sum(lm.exp(lm.sub(logits, m)), 1, true)), m);
    const z = lm.mean(lm.square(lse));
    const bc = c.moe_balance_coef ?? 1e-2;
    const zc = c.moe_z_coef ?? 1e-3;
    if (bc > 0 && lm.isGradEnabled()) addAuxLoss(ctx, 'moe_balance', lm.mulScalar(balance, bc));
    if (zc > 0 && lm.isGradEnabled()) addAuxLoss(ctx, 'moe_z', lm.mulScalar(z, zc));
    if (!ctx.metrics) return;
    addMetric(ctx, 'moe_balance_loss', balance.item() * share);
    addMetric(ctx, 'moe_z_loss', z.item() * share);
    addMetric(ctx, 'moe_dropped', (total[E + 1]! > 0 ? total[E]! / total[E + 1]! : 0) * share);
    addMetric(ctx, 'moe_load_max', E * Math.max(...f) * share);
  }
}

/** This rank's experts' weights under the dense layer's names (experts.c_fc.weight (E/ep, C, F), …). */
class ExpertShard extends Module {
  constructor(w1: Tensor, b1: Tensor | null, w2: Tensor, b2: Tensor | null) {
    super();
    this.param('c_fc.weight', w1);
    if (b1) this.param('c_fc.bias', b1);
    this.param('c_proj.weight', w2);
    if (b2) this.param('c_proj.bias', b2);
  }
}

/** The expert of each row of an expert-major buffer. */
function expertOfRows(counts: readonly number[]): Int32Array {
  const out = new Int32Array(counts.reduce((a, b) => a + b, 0));
  let at = 0;
  counts.forEach((n, e) => {
    out.fill(e, at, at + n);
    at += n;
  });
  return out;
}

/** A GPT with its MoE layers' experts spread over the ranks of comm; every rank trains on its own slice of the batch. */
export class ExpertParallelGPT {
  private offset = 0;
  readonly layers: ExpertParallelMoE[] = [];

  /** model: the full GPT, built with the same config and seed on every rank; its MoE layers are replaced in place. */
  constructor(readonly model: GPT, readonly comm: ModelComm) {
    const c = model.config;
    const moe = moeLayers(c);
    if (moe.size === 0) throw new RangeError('expert parallelism: the model has no MoE layers (set model.moe_experts > 0)');
    for (const l of moe) {
      this.layers.push(model.replaceModule(`transformer.h.${l}.mlp`, (old) => new ExpertParallelMoE(old as MoE, comm, () => this.offset)));
    }
  }

  /** Parameters with their copies: the experts are this rank's own, everything else is on every rank. */
  held(): HeldParam[] {
    const own = new Set(this.layers.flatMap((l) => l.experts.parameters()));
    return this.model.parameters().filter((p) => p.requiresGrad).map((p) => ({ param: p, copies: own.has(p) ? 1 : this.comm.size }));
  }

  /** The global index of this rank's first token, for a batch whose rank-r slice holds `tokens` tokens. */
  setSlice(tokens: number): void {
    this.offset = this.comm.rank * tokens;
  }

  /**
   * After backward: the replicated parameters' gradients averaged over the ranks (one all-reduce of them all), the
   * experts' divided by ep, so every rank holds the gradient of the mean loss over the whole batch.
   */
  syncGradients(): void {
    const held = this.held();
    const shared = held.filter((h) => h.copies > 1).map((h) => h.param);
    const total = shared.reduce((n, p) => n + p.size, 0);
    const buf = new Float32Array(total);
    let at = 0;
    for (const p of shared) {
      if (p.grad) buf.set(p.grad.toTypedArray() as Float32Array, at);
      at += p.size;
    }
    this.comm.allReduce(buf, 'sum');
    at = 0;
    const inv = 1 / this.comm.size;
    for (const p of shared) {
      const g = buf.subarray(at, at + p.size).map((v) => v * inv);
      p.grad?.dispose();
      p.grad = lm.keep(lm.fromArray(g, p.shape));
      at += p.size;
    }
    for (const h of held) {
      if (h.copies > 1 || !h.param.grad) continue;
      const g = (h.param.grad.toTypedArray() as Float32Array).map((v) => v * inv);
      h.param.grad.dispose();
      h.param.grad = lm.keep(lm.fromArray(g, h.param.shape));
    }
  }
}

/**
 * Bytes one rank sends per training step of an EP model when routing spreads rows evenly over the experts (every
 * dispatched row lands on another rank with probability (p − 1)/p): per MoE layer the expert counts, the rows out
 * and back forward and their gradients backward (4 trips of N·k·(p − 1)/p rows of C floats), the whole batch's
 * expert fractions (E + 2 values, all-reduced); then the replicated parameters' gradients and two values (the mean
 * loss, the gradient norm), all-reduced. N = tokens per rank, k = dispatched choices per token.
 */
export function expertParallelBytesPerStep(o: { moeLayers: number; E: number; N: number; k: number; C: number; p: number; replicated: number }): number {
  const ring = (floats: number): number => bytesForCall('allReduce', 4 * floats, o.p);
  const perLayer = (o.p - 1) * (o.E / o.p) * 4 + 4 * ((o.N * o.k * (o.p - 1)) / o.p) * o.C * 4 + ring(o.E + 2);
  return o.moeLayers * perLayer + ring(o.replicated) + ring(2);
}
