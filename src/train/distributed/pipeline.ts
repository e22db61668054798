// Pipeline parallelism over the ranks of a ModelComm: stage s holds a contiguous run of blocks (the first stage
// also the embeddings, the last the final norm, the head and the loss), and a step's batch is cut into m
// micro-batches that flow through the stages under a schedule — GPipe (Huang et al. 2019: every forward, then
// every backward) or 1F1B (PipeDream-Flush / Megatron: after p − s − 1 warm-up forwards each forward is followed
// by a backward, so at most p − s micro-batches are in flight). The schedules are pure functions of (p, m, s);
// the executor turns them into sends and receives of (B/m, T, C) activations and their gradients.
// Not tensor or expert parallelism, and not the interleaved (virtual-stage) schedule.
import * as lm from '../../core/index.js';
import type { Tensor } from '../../core/index.js';
import type { GPT } from '../../models/gpt.js';
import { dropoutAt, type ForwardContext } from '../../nn/context.js';
import { Module } from '../../nn/module.js';
import { bytesForCall } from './comm.js';
import { exchange, type HeldParam, type ModelComm } from './collectives.js';

export type PipeSchedule = 'gpipe' | '1f1b';

/** One slot of a stage's schedule: the forward or the backward of micro-batch `micro`. */
export interface PipeAction {
  kind: 'F' | 'B';
  micro: number;
}

/** GPipe: forwards of micro-batches 0…m−1, then their backwards in the same order. */
export function gpipeSchedule(p: number, m: number, s: number): PipeAction[] {
  checkPipe(p, m, s);
  return [...range(m).map((i) => ({ kind: 'F' as const, micro: i })), ...range(m).map((i) => ({ kind: 'B' as const, micro: i }))];
}

/**
 * 1F1B: w = min(p − s − 1, m) warm-up forwards, then (forward i + w, backward i) pairs while forwards remain, then
 * the remaining backwards. Stage s holds at most w + 1 = p − s activations at once (GPipe: m).
 */
export function oneFOneBSchedule(p: number, m: number, s: number): PipeAction[] {
  checkPipe(p, m, s);
  const w = Math.min(p - s - 1, m);
  const out: PipeAction[] = range(w).map((i) => ({ kind: 'F', micro: i }));
  for (let i = 0; i < m - w; i++) out.push({ kind: 'F', micro: i + w }, { kind: 'B', micro: i });
  for (let i = m - w; i < m; i++) out.push({ kind: 'B', micro: i });
  return out;
}

export function scheduleOf(kind: PipeSchedule, p: number, m: number, s: number): PipeAction[] {
  return kind === 'gpipe' ? gpipeSchedule(p, m, s) : oneFOneBSchedule(p, m, s);
}

/** The idle fraction of a synchronous pipeline with equal stage times: (p − 1)/(m + p − 1). */
export function bubbleFraction(p: number, m: number): number {
  return (p - 1) / (m + p - 1);
}

/** The most micro-batches whose activations a stage holds at once under a schedule. */
export function peakInFlight(actions: readonly PipeAction[]): number {
  let live = 0;
  let peak = 0;
  for (const a of actions) {
    live += a.kind === 'F' ? 1 : -1;
    peak = Math.max(peak, live);
  }
  return peak;
}

/**
 * Runs every stage's schedule against the data dependencies (F(i) on stage s after F(i) on s − 1, B(i) on s after
 * B(i) on s + 1 and after F(i) on s) with forward time tf and backward time tb per stage, and returns when the
 * last action ends. Throws when the schedules deadlock. For checking schedules, not for running them.
 */
export function simulatePipeline(schedules: readonly (readonly PipeAction[])[], tf: number, tb: number): number {
  const p = schedules.length;
  const done = new Map<string, number>(); // `${kind}${micro}@${stage}` → end time
  const at = new Array<number>(p).fill(0);
  const free = new Array<number>(p).fill(0);
  let left = schedules.reduce((n, s) => n + s.length, 0);
  while (left > 0) {
    let progressed = false;
    for (let s = 0; s < p; s++) {
      const a = schedules[s]![at[s]!];
      if (!a) continue;
      const deps = a.kind === 'F' ? (s > 0 ? [`F${a.micro}@${s - 1}`] : []) : [`F${a.micro}@${s}`, ...(s < p - 1 ? [`B${a.micro}@${s + 1}`] : [])];
      if (!deps.every((d) => done.has(d))) continue;
      const start = Math.max(free[s]!, ...deps.map((d) => done.get(d)!));
      free[s] = start + (a.kind === 'F' ? tf : tb);
      done.set(`${a.kind}${a.micro}@${s}`, free[s]!);
      at[s]!++;
      left--;
      progressed = true;
    }
    if (!progressed) throw new Error('simulatePipeline: the schedules deadlock');
  }
  return Math.max(...free);
}

/** The blocks [l0, l1) of stage s when n_layer blocks are cut into p contiguous runs, earlier stages taking any extra. */
export function stageLayers(nLayer: number, p: number, s: number): [number, number] {
  if (nLayer < p) throw new RangeError(`pipeline parallelism: ${nLayer} layers cannot fill ${p} stages (model.n_layer ≥ pp)`);
  const base = Math.floor(nLayer / p);
  const extra = nLayer % p;
  const l0 = s * base + Math.min(s, extra);
  return [l0, l0 + base + (s < extra ? 1 : 0)];
}

function checkPipe(p: number, m: number, s: number): void {
  if (!(Number.isInteger(p) && p >= 1 && Number.isInteger(m) && m >= 1 && Number.isInteger(s) && s >= 0 && s < p)) {
    throw new RangeError(`pipeline schedule: stages ${p}, micro-batches ${m}, stage ${s}; expected integers p ≥ 1, m ≥ 1, 0 ≤ s < p`);
  }
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** The modules one stage holds, registered under their full-model names so stage state dicts merge into the model's. */
class StageModule extends Module {
  constructor(parts: [string, Module][], params: [string, Tensor][]) {
    super();
    for (const [name, m] of parts) this.child(name, m);
    for (const [name, t] of params) this.param(name, t);
  }
}

/** A GPT cut into pipeline stages, one per rank of comm. */
export class PipelineParallelGPT {
  readonly stage: number;
  readonly stages: number;
  readonly layers: [number, number];
  /** This stage's parameters (for the optimizer and checkpoints). */
  readonly module: Module;
  private readonly first: boolean;
  private readonly last: boolean;

  /** model: the full GPT, built with the same config and seed on every rank; each stage uses its part of it. */
  constructor(readonly model: GPT, readonly comm: ModelComm, readonly o: { microBatches: number; schedule: PipeSchedule }) {
    const c = model.config;
    if (c.reversible || c.share_layers !== 'none') throw new RangeError('pipeline parallelism: reversible stacks and shared layers cannot be cut into stages');
    this.stage = comm.rank;
    this.stages = comm.size;
    this.first = this.stage === 0;
    this.last = this.stage === this.stages - 1;
    this.layers = stageLayers(c.n_layer, this.stages, this.stage);
    const t = model.transformer;
    const parts: [string, Module][] = [];
    if (this.first || (this.last && c.tie_embeddings)) parts.push(['transformer.wte', t.wte]);
    if (this.first && t.wpe) parts.push(['transformer.wpe', t.wpe]);
    if (this.first && t.wte_proj) parts.push(['transformer.wte_proj', t.wte_proj]);
    for (let l = this.layers[0]; l < this.layers[1]; l++) parts.push([`transformer.h.${l}`, t.h.items[l]!]);
    if (this.last) {
      parts.push(['transformer.ln_f', t.ln_f]);
      if (t.head_proj) parts.push(['transformer.head_proj', t.head_proj]);
    }
    this.module = new StageModule(parts, this.last && model.lmHead ? [['lm_head.weight', model.lmHead]] : []);
  }

  /** Parameters with how many stages hold them (the tied embedding sits on the first and the last). */
  held(): HeldParam[] {
    const tied = this.model.config.tie_embeddings && this.stages > 1 ? this.model.transformer.wte.weight : null;
    return this.module.parameters().filter((p) => p.requiresGrad).map((p) => ({ param: p, copies: p === tied ? 2 : 1 }));
  }

  /** A forward context for one micro-batch (what GPT.trunk builds for a training pass). */
  private ctx(seed: number): ForwardContext {
    const rope = this.model.rope;
    return { dropout: this.module.training ? this.model.config.dropout : 0, seed, rope, cache: null, aux: {}, metrics: {} };
  }

  /**
   * One training step's forward and backward over idx/targets (B, T) in m micro-batches: gradients accumulate into
   * this stage's parameters as the mean loss over the whole batch would put them. Returns the mean loss (every
   * rank gets it), the auxiliary losses of this stage's layers (mean per micro-batch) and their metrics.
   */
  step(idx: Tensor, targets: Tensor, seed = 0): { loss: number; aux: Record<string, number>; metrics: Record<string, number> } {
    const m = this.o.microBatches;
    const [B, T] = idx.shape as [number, number];
    if (B % m !== 0) throw new RangeError(`pipeline parallelism: batch_size ${B} does not divide into ${m} micro-batches (pp_micro_batches)`);
    const Bm = B / m;
    const C = this.model.config.n_embd;
    const actions = scheduleOf(this.o.schedule, this.stages, m, this.stage);
    const aux: Record<string, number> = {};
    const metrics: Record<string, number> = {};
    let lossSum = 0;
    lm.tidy(() => {
      const inputs = new Map<number, Tensor>(); // micro → received activation (a leaf collecting its gradient)
      const outputs = new Map<number, { out: Tensor; extra: Tensor | null }>(); // micro → stage output / loss, and aux
      let heldAct: Float32Array | null = null; // an activation to send with the next backward's receive
      let heldGrad: Float32Array | null = null; // an input gradient to send with the next forward's receive
      const size = Bm * T * C;
      for (let a = 0; a < actions.length; a++) {
        const { kind, micro } = actions[a]!;
        const next = actions[a + 1];
        if (kind === 'F') {
          let x: Tensor;
          const ctx = this.ctx(seed + micro);
          if (this.first) {
            const ids = lm.slice(idx, 0, micro * Bm, (micro + 1) * Bm);
            x = dropoutAt(ctx, this.model.embed(lm.contiguous(ids), ctx), 0);
          } else {
            const buf = new Float32Array(size);
            if (heldGrad) exchange(this.comm, this.stage - 1, heldGrad, buf);
            else this.comm.recv(buf, this.stage - 1);
            heldGrad = null;
            x = lm.requireGrad(lm.fromArray(buf, [Bm, T, C]));
            inputs.set(micro, x);
          }
          for (let l = this.layers[0]; l < this.layers[1]; l++) x = this.model.transformer.h.items[l]!.forward(x, ctx);
          const auxSum = Object.values(ctx.aux).reduce<Tensor | null>((s, t) => (s ? lm.add(s, t) : t), null);
          for (const [n, t] of Object.entries(ctx.aux)) aux[n] = (aux[n] ?? 0) + t.item() / m;
          for (const [n, v] of Object.entries(ctx.metrics ?? {})) metrics[n] = (metrics[n] ?? 0) + v / m;
          if (this.last) {
            const hidden = this.model.transformer.ln_f.forward(x);
            const tg = lm.contiguous(lm.slice(targets, 0, micro * Bm, (micro + 1) * Bm));
            const logits = this.model.head(hidden);
            const loss = lm.crossEntropy(logits, tg, { ignoreIndex: -1 });
            lossSum += loss.item();
            outputs.set(micro, { out: loss, extra: auxSum });
          } else {
            outputs.set(micro, { out: x, extra: auxSum });
            const act = x.toTypedArray() as Float32Array;
            if (next?.kind === 'B') heldAct = act;
            else this.comm.send(act, this.stage + 1);
          }
        } else {
          const { out, extra } = outputs.get(micro)!;
          outputs.delete(micro);
          // The stage's share of the objective: (loss_i + aux_i)/m on the last stage; elsewhere Σ out ⊙ dL/dout,
          // whose gradient is the received one, plus this stage's aux_i/m.
          let objective: Tensor;
          if (this.last) {
            objective = lm.mulScalar(out, 1 / m);
          } else {
            const g = new Float32Array(size);
            if (heldAct) exchange(this.comm, this.stage + 1, heldAct, g);
            else this.comm.recv(g, this.stage + 1);
            heldAct = null;
            objective = lm.sum(lm.mul(out, lm.fromArray(g, [Bm, T, C])));
          }
          if (extra) objective = lm.add(objective, lm.mulScalar(extra, 1 / m));
          lm.backward(objective);
          if (!this.first) {
            const x = inputs.get(micro)!;
            inputs.delete(micro);
            const gx = x.grad ? (x.grad.toTypedArray() as Float32Array) : new Float32Array(size);
            x.grad?.dispose();
            x.grad = null;
            if (next?.kind === 'F') heldGrad = gx;
            else this.comm.send(gx, this.stage - 1);
          }
        }
      }
    });
    this.syncTiedEmbedding();
    const total = new Float32Array([this.last ? lossSum / m : 0]);
    this.comm.allReduce(total, 'sum');
    return { loss: total[0]!, aux, metrics };
  }

  /** The tied embedding's gradient is the sum of the first stage's (embedding) and the last stage's (head) parts. */
  private syncTiedEmbedding(): void {
    if (!this.model.config.tie_embeddings || this.stages === 1 || !(this.first || this.last)) return;
    const w = this.model.transformer.wte.weight;
    if (!w.requiresGrad) return;
    const mine = w.grad ? (w.grad.toTypedArray() as Float32Array) : new Float32Array(w.size);
    const theirs = new Float32Array(w.size);
    exchange(this.comm, this.first ? this.stages - 1 : 0, mine, theirs);
    for (let i = 0; i < mine.length; i++) mine[i]! += theirs[i]!;
    w.grad?.dispose();
    w.grad = lm.keep(lm.fromArray(mine, w.shape));
  }

  /** The mean loss over idx/targets without gradients, the whole batch at once (every rank gets it). */
  evalLoss(idx: Tensor, targets: Tensor): number {
    return this.evaluate(idx, targets).loss;
  }

  /** evalLoss with the logits (B, T, V) on the last stage (null elsewhere); the caller disposes them. */
  evaluate(idx: Tensor, targets: Tensor): { loss: number; logits: Tensor | null } {
    let logits: Tensor | null = null;
    const [B, T] = idx.shape as [number, number];
    const C = this.model.config.n_embd;
    const loss = lm.noGrad(() => lm.tidy(() => {
      const ctx = this.ctx(0);
      let x: Tensor;
      if (this.first) x = this.model.embed(idx, ctx);
      else {
        const buf = new Float32Array(B * T * C);
        this.comm.recv(buf, this.stage - 1);
        x = lm.fromArray(buf, [B, T, C]);
      }
      for (let l = this.layers[0]; l < this.layers[1]; l++) x = this.model.transformer.h.items[l]!.forward(x, ctx);
      if (!this.last) {
        this.comm.send(x.toTypedArray() as Float32Array, this.stage + 1);
        return 0;
      }
      const z = this.model.head(this.model.transformer.ln_f.forward(x));
      logits = lm.keep(z);
      return lm.crossEntropy(z, targets, { ignoreIndex: -1 }).item();
    }));
    const total = new Float32Array([loss]);
    this.comm.allReduce(total, 'sum');
    return { loss: total[0]!, logits };
  }
}

/**
 * Bytes stage s sends per training step: the activations of the m micro-batches forward (all but the last stage),
 * their gradients backward (all but the first), the tied embedding's gradient (first and last stage, when tied and
 * p > 1), and two all-reduced values (the loss every rank reports and the gradient norm).
 */
export function pipelineBytesPerStep(o: { p: number; s: number; B: number; T: number; C: number; V: number; tied: boolean }): number {
  const act = o.B * o.T * o.C * 4; // m micro-batches of (B/m, T, C) float32
  let bytes = 2 * bytesForCall('allReduce', 4, o.p);
  if (o.s < o.p - 1) bytes += act;
  if (o.s > 0) bytes += act;
  if (o.tied && o.p > 1 && (o.s === 0 || o.s === o.p - 1)) bytes += o.V * o.C * 4;
  return bytes;
}
