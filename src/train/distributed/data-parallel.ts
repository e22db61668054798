// Data parallelism for the training loop: every rank holds the whole model and its shard of each global batch; the
// gradients of every rank are summed, in buckets all-reduced while the rest of the backward pass runs (PyTorch
// DDP's scheme), and every rank takes the same optimizer step. GradientSync is the loop's view of the update;
// LocalSync is the one-process case with no communication. Not ZeRO (zero.ts shards the optimizer state).
import * as lm from '../../core/index.js';
import { setLeafGradHook } from '../../core/autograd.js';
import type { Tensor } from '../../core/index.js';
import { clipGradNorm } from '../../optim/clip.js';
import type { NamedParam, Optimizer, OptimizerState } from '../../optim/optimizer.js';
import { UserError } from '../../util/errors.js';
import { meanOverRanks, type Comm, type CommRequest } from './comm.js';

/**
 * The update of one training step as the loop drives it, whatever the parallel layout. Every rank calls every
 * method in the same order (collectives inside). Gradients a rank holds after backward are its own micro-batches'.
 */
export interface GradientSync {
  readonly comm: Comm;
  /** The optimizer's kind (for checkpoints). */
  readonly kind: string;
  /** Before each micro-step's backward; last = the step's last micro-step, after which gradients are final. */
  beforeBackward(last: boolean): void;
  /** After the last micro-step's backward: combines the gradients of every rank. */
  afterBackward(): void;
  /** The means over ranks of per-rank figures (losses of each rank's shard of the batch). */
  meanOverRanks(values: readonly number[]): number[];
  setLearningRate(lr: number): void;
  /**
   * Clips and updates: gradients count × gradScale (1/accumulation) on top of the mean over ranks. Returns the global
   * norm (as clipGradNorm measures it) and the scale the update took.
   */
  step(gradClip: number, gradScale: number): { norm: number; scale: number };
  zeroGrad(): void;
  /** The whole optimizer state (gathered where it is sharded), identical on every rank; for checkpoints. */
  optimizerState(): OptimizerState;
  /** Restores a whole state saved by optimizerState, at any world size. */
  loadOptimizerState(state: OptimizerState, source: string): void;
  /** Bytes of optimizer state this rank holds. */
  stateBytes(): number;
  dispose(): void;
}

/** How a model split over processes (loop.ts's TaskDistribution) finishes its gradients and measures their norm. */
export interface SplitGradients {
  finishGradients?(): void;
  clip(maxNorm: number, gradScale: number): { norm: number; scale: number };
}

/**
 * The part of every layout whose ranks each hold the whole optimizer (all but ZeRO): the learning rate, zeroing,
 * state and disposal go straight to it; subclasses say how gradients are combined and clipped.
 */
export abstract class ReplicatedOptimizerSync implements GradientSync {
  readonly kind: string;
  constructor(readonly comm: Comm, protected readonly optimizer: Optimizer) {
    this.kind = optimizer.kind;
  }
  abstract beforeBackward(last: boolean): void;
  abstract afterBackward(): void;
  abstract meanOverRanks(values: readonly number[]): number[];
  abstract step(gradClip: number, gradScale: number): { norm: number; scale: number };
  setLearningRate(lr: number): void { this.optimizer.setLearningRate(lr); }
  zeroGrad(): void { this.optimizer.zeroGrad(); }
  /** Every rank holds the same whole state: no gathering. */
  optimizerState(): OptimizerState { return this.optimizer.state(); }
  loadOptimizerState(state: OptimizerState, source: string): void { this.optimizer.loadState(state, source); }
  stateBytes(): number { return this.optimizer.stateBytes(); }
  dispose(): void { this.optimizer.dispose(); }
}

/**
 * The optimizer as the loop always drove it: one process, or a model split over processes (tensor, pipeline or
 * expert parallelism), whose task finishes its gradients and measures their norm across its ranks.
 */
export class LocalSync extends ReplicatedOptimizerSync {
  constructor(comm: Comm, optimizer: Optimizer, private readonly split?: SplitGradients) {
    super(comm, optimizer);
  }
  beforeBackward(): void {}
  afterBackward(): void {
    this.split?.finishGradients?.();
  }
  meanOverRanks(values: readonly number[]): number[] { return [...values]; }
  step(gradClip: number, gradScale: number): { norm: number; scale: number } {
    const r = this.split ? this.split.clip(gradClip, gradScale) : clipGradNorm(this.optimizer.params, gradClip, gradScale);
    this.optimizer.step(r.scale);
    return r;
  }
}

/** Sets every rank's parameters to rank 0's (once at the start: the runs then stay identical step by step). */
export function broadcastParameters(comm: Comm, params: readonly NamedParam[]): void {
  if (comm.size === 1) return;
  for (const [, p] of params) comm.broadcast(contiguousData(p, 'parameter'), 0);
}

/** The float32 data of a contiguous tensor (parameters and their gradients are). */
export function contiguousData(t: Tensor, what: string): Float32Array {
  if (t.dtype !== 'float32') throw new UserError(`data parallelism: ${what} ${t.describe()} is ${t.dtype}; only float32 parameters are supported`);
  return (t.data as Float32Array).subarray(t.offset, t.offset + t.size);
}

/** A kept zero gradient for p (a rank whose micro-batches gave p none while another rank's did). */
export function zeroGradFor(p: Tensor): Tensor {
  return lm.keep(lm.zeros(p.shape, p.dtype));
}

interface Bucket {
  /** Indices into params, in the order backward produces their gradients (roughly the reverse of the model's). */
  members: number[];
  /** Offsets of each member in flat; then one presence flag per member after the gradients. */
  offsets: number[];
  flat: Float32Array;
  pending: number;
  launched: boolean;
  /** A member's gradient changed after the bucket was sent (a parameter used twice, with recomputation): resend. */
  dirty: boolean;
  request: CommRequest | null;
}

export interface DataParallelOptions {
  /** Bucket size in bytes (PyTorch DDP's bucket_cap_mb); a bucket is all-reduced as soon as its gradients are final. */
  bucketBytes: number;
}

/**
 * Replicated data parallelism. Gradients are grouped in buckets in the order backward finishes them; on the last
 * micro-step an autograd hook sees each parameter's gradient land, and a bucket whose members have all landed is
 * all-reduced without blocking (buckets start in index order on every rank, as MPI requires). The sum carries one
 * presence flag per parameter, so a parameter that no rank's batch touched keeps no gradient (as in one process).
 */
export class DataParallel extends ReplicatedOptimizerSync {
  private readonly params: Tensor[];
  private readonly index = new Map<Tensor, number>();
  private readonly buckets: Bucket[] = [];
  private readonly bucketOf: number[] = [];
  private readonly landed: boolean[];
  private nextLaunch = 0;
  private armed = false;
  /** Buckets of the last step that started before backward ended (the overlap actually obtained). */
  earlyBuckets = 0;

  constructor(comm: Comm, optimizer: Optimizer, o: DataParallelOptions) {
    super(comm, optimizer);
    this.params = optimizer.params;
    this.params.forEach((p, i) => this.index.set(p, i));
    this.landed = this.params.map(() => false);
    const cap = Math.max(1, Math.floor(o.bucketBytes / 4));
    let cur: number[] = [];
    let size = 0;
    const close = (): void => {
      if (cur.length === 0) return;
      const offsets: number[] = [];
      let n = 0;
      for (const i of cur) {
        offsets.push(n);
        n += this.params[i]!.size;
      }
      for (const i of cur) this.bucketOf[i] = this.buckets.length;
      this.buckets.push({ members: cur, offsets, flat: new Float32Array(n + cur.length), pending: cur.length, launched: false, dirty: false, request: null });
      cur = [];
      size = 0;
    };
    // Backward reaches the last layers first: buckets from the end of the parameter list fill first.
    for (let i = this.params.length - 1; i >= 0; i--) {
      cur.push(i);
      size += this.params[i]!.size;
      if (size >= cap) close();
    }
    close();
  }

  /** Bytes all-reduced per step (gradients and flags), for the bytes-per-step figure. */
  get reducedBytes(): number {
    return this.buckets.reduce((n, b) => n + b.flat.byteLength, 0);
  }

  get bucketCount(): number {
    return this.buckets.length;
  }

  beforeBackward(last: boolean): void {
    if (!last || this.comm.size === 1) return;
    this.armed = true;
    this.landed.fill(false);
    this.nextLaunch = 0;
    for (const b of this.buckets) {
      b.pending = b.members.length;
      b.launched = false;
      b.dirty = false;
      b.request = null;
    }
    setLeafGradHook((leaf) => this.onLeafGrad(leaf));
  }

  private onLeafGrad(leaf: Tensor): void {
    const i = this.index.get(leaf);
    if (i === undefined) return;
    const b = this.buckets[this.bucketOf[i]!]!;
    if (b.launched) b.dirty = true;
    else if (!this.landed[i]) {
      this.landed[i] = true;
      b.pending -= 1;
    }
    while (this.nextLaunch < this.buckets.length && this.buckets[this.nextLaunch]!.pending === 0) this.launch(this.buckets[this.nextLaunch++]!);
    // Open MPI progresses transfers only inside MPI calls: let the ones in flight move on.
    for (let k = 0; k < this.nextLaunch; k++) this.buckets[k]!.request?.test();
  }

  private pack(b: Bucket): void {
    const G = b.members.length;
    const n = b.flat.length - G;
    b.members.forEach((i, k) => {
      const p = this.params[i]!;
      const off = b.offsets[k]!;
      if (p.grad) {
        b.flat.set(contiguousData(p.grad, 'gradient'), off);
        b.flat[n + k] = 1;
      } else {
        b.flat.fill(0, off, off + p.size);
        b.flat[n + k] = 0;
      }
    });
  }

  private launch(b: Bucket): void {
    this.pack(b);
    b.launched = true;
    b.request = this.comm.iallReduce(b.flat);
  }

  afterBackward(): void {
    if (this.comm.size === 1) return;
    setLeafGradHook(null);
    this.armed = false;
    this.earlyBuckets = this.nextLaunch;
    while (this.nextLaunch < this.buckets.length) this.launch(this.buckets[this.nextLaunch++]!);
    for (const b of this.buckets) b.request?.wait();
    // Every rank sees the same graph, so the same buckets are dirty everywhere: resent in order, blocking.
    for (const b of this.buckets) {
      if (!b.dirty) continue;
      this.pack(b);
      this.comm.allReduce(b.flat);
    }
    for (const b of this.buckets) {
      const n = b.flat.length - b.members.length;
      b.members.forEach((i, k) => {
        const p = this.params[i]!;
        if (b.flat[n + k] === 0) return; // no rank had a gradient for p
        if (!p.grad) p.grad = zeroGradFor(p);
        contiguousData(p.grad, 'gradient').set(b.flat.subarray(b.offsets[k]!, b.offsets[k]! + p.size));
      });
    }
  }

  meanOverRanks(values: readonly number[]): number[] {
    return meanOverRanks(this.comm, values);
  }

  step(gradClip: number, gradScale: number): { norm: number; scale: number } {
    const r = clipGradNorm(this.params, gradClip, gradScale / this.comm.size);
    this.optimizer.step(r.scale);
    return r;
  }

  override dispose(): void {
    if (this.armed) setLeafGradHook(null);
    super.dispose();
  }
}
