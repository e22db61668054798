// ZeRO stage 1 (Rajbhandari et al. 2020, DeepSpeed): data parallelism where each rank keeps the optimizer state of
// only 1/N of the parameters. The parameters, laid end to end in one flat vector of N·S elements (S = ⌈P/N⌉), are
// owned in N contiguous blocks: gradients are reduce-scattered (rank r receives the sum of block r), each rank
// updates its block with its own optimizer, and the blocks are all-gathered back into every replica.
// Only elementwise optimizers (AdamW, Lion, SGD) shard this way; factored or matrix ones (Adafactor, Shampoo, Muon)
// need whole parameters. Not overlapped with backward: the reduce-scatter runs once after the last micro-step.
import * as lm from '../../core/index.js';
import type { Tensor } from '../../core/index.js';
import type { OptimConfig } from '../../optim/config.js';
import { makeOptimizer } from '../../optim/config.js';
import type { NamedParam, Optimizer, OptimizerState } from '../../optim/optimizer.js';
import { kernelsFor } from '../../core/index.js';
import { UserError } from '../../util/errors.js';
import { meanOverRanks, type Comm } from './comm.js';
import { contiguousData, zeroGradFor, type GradientSync } from './data-parallel.js';

/** Optimizers whose update of an element depends only on that element's gradient and state. */
export const ZERO_OPTIMIZERS = ['adamw', 'lion', 'sgd'] as const;

/** The part of one parameter that this rank owns: elements [from, to) of it, at shardOffset of the rank's block. */
interface Piece {
  name: string;
  index: number;
  param: Tensor;
  from: number;
  to: number;
  shardOffset: number;
  /** The master copy of those elements, updated by the shard optimizer. */
  shard: Tensor;
}

export class Zero1 implements GradientSync {
  readonly kind: string;
  /** Elements per rank's block (the last block is padded with zeros). */
  readonly blockSize: number;
  readonly totalElements: number;
  private readonly params: NamedParam[];
  private readonly offsets: number[] = [];
  private readonly pieces: Piece[] = [];
  private readonly optimizer: Optimizer;
  private readonly flat: Float32Array;
  private readonly block: Float32Array;
  private readonly flags: Int32Array;

  constructor(readonly comm: Comm, params: readonly NamedParam[], optim: OptimConfig) {
    if (!(ZERO_OPTIMIZERS as readonly string[]).includes(optim.name)) {
      throw new UserError(`zero: optim.name is ${optim.name}, whose update is not elementwise; ZeRO-1 shards ${ZERO_OPTIMIZERS.join(', ')} (or set zero=0)`);
    }
    this.params = [...params];
    let P = 0;
    for (const [name, p] of this.params) {
      contiguousData(p, `parameter ${name}`);
      this.offsets.push(P);
      P += p.size;
    }
    this.totalElements = P;
    const N = comm.size;
    const S = Math.ceil(P / N);
    this.blockSize = S;
    const lo = comm.rank * S;
    if (lo >= P) throw new UserError(`zero: ${P} parameters are too few to shard over ${N} ranks`);
    const hi = Math.min(P, lo + S);
    const named: NamedParam[] = [];
    this.params.forEach(([name, p], index) => {
      const a = Math.max(lo, this.offsets[index]!);
      const b = Math.min(hi, this.offsets[index]! + p.size);
      if (a >= b) return;
      const from = a - this.offsets[index]!;
      const to = b - this.offsets[index]!;
      // A matrix's piece keeps two dimensions so that the optimizer's groups (weight decay on matrices) stay the same.
      const data = new Float32Array(to - from); // filled from the parameter before each update
      const shard = lm.keep(lm.requireGrad(lm.fromArray(data, p.ndim >= 2 ? [1, to - from] : [to - from])));
      this.pieces.push({ name, index, param: p, from, to, shardOffset: a - lo, shard });
      named.push([name, shard]);
    });
    this.optimizer = makeOptimizer(named, optim);
    this.kind = this.optimizer.kind;
    this.flat = new Float32Array(N * S);
    this.block = new Float32Array(S);
    this.flags = new Int32Array(this.params.length);
  }

  beforeBackward(): void {}

  /** Sum of every rank's gradients, reduce-scattered: this rank's pieces get their block of it. */
  afterBackward(): void {
    const { flat, flags } = this;
    this.params.forEach(([, p], i) => {
      const off = this.offsets[i]!;
      if (p.grad) {
        flat.set(contiguousData(p.grad, 'gradient'), off);
        flags[i] = 1;
      } else {
        flat.fill(0, off, off + p.size);
        flags[i] = 0;
      }
    });
    flat.fill(0, this.totalElements);
    this.comm.reduceScatter(flat, this.block);
    this.comm.allReduce(flags); // which parameters any rank's batch touched (the others keep no gradient)
    for (const pc of this.pieces) {
      pc.shard.grad?.dispose();
      pc.shard.grad = null;
      if (flags[pc.index] === 0) continue;
      const g = zeroGradFor(pc.shard);
      contiguousData(g, 'gradient').set(this.block.subarray(pc.shardOffset, pc.shardOffset + (pc.to - pc.from)));
      pc.shard.grad = g;
    }
  }

  meanOverRanks(values: readonly number[]): number[] {
    return meanOverRanks(this.comm, values);
  }

  setLearningRate(lr: number): void {
    this.optimizer.setLearningRate(lr);
  }

  /** The global norm from each block's sum of squares (one all-reduce of a number), the block's update, then the gather. */
  step(gradClip: number, gradScale: number): { norm: number; scale: number } {
    let sq = 0;
    for (const pc of this.pieces) if (pc.shard.grad) sq += kernelsFor('float32').sumSquares(contiguousData(pc.shard.grad, 'gradient'), pc.shard.size);
    const total = new Float64Array([sq]);
    this.comm.allReduce(total);
    const scale0 = gradScale / this.comm.size;
    const norm = Math.sqrt(total[0]!) * scale0;
    const clip = gradClip > 0 && norm > gradClip ? gradClip / (norm + 1e-6) : 1;
    const scale = scale0 * clip;
    // The replicas' parameters are the truth (a resume or a broadcast may have replaced them): refresh the blocks.
    for (const pc of this.pieces) contiguousData(pc.shard, 'parameter').set(contiguousData(pc.param, 'parameter').subarray(pc.from, pc.to));
    this.optimizer.step(scale);
    // All-gather the updated blocks into every replica's parameters.
    this.block.fill(0);
    for (const pc of this.pieces) this.block.set(contiguousData(pc.shard, 'parameter'), pc.shardOffset);
    this.comm.allGather(this.block, this.flat);
    this.params.forEach(([, p], i) => contiguousData(p, 'parameter').set(this.flat.subarray(this.offsets[i]!, this.offsets[i]! + p.size)));
    return { norm, scale };
  }

  zeroGrad(): void {
    for (const [, p] of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
    this.optimizer.zeroGrad();
  }

  /** Each slot's blocks all-gathered into whole tensors named as one process names them. */
  optimizerState(): OptimizerState {
    const own = this.optimizer.state();
    const slots = new Set<string>();
    for (const key of own.tensors.keys()) slots.add(key.slice(key.lastIndexOf('.') + 1));
    // Every rank gathers the same slots: the optimizer kind and its options are the same on every rank.
    const tensors: OptimizerState['tensors'] = new Map();
    for (const slot of [...slots].sort()) {
      this.block.fill(0);
      for (const pc of this.pieces) {
        const t = own.tensors.get(`${pc.name}.${slot}`);
        if (t) this.block.set(t.data, pc.shardOffset);
      }
      this.comm.allGather(this.block, this.flat);
      this.params.forEach(([name, p], i) => {
        tensors.set(`${name}.${slot}`, { shape: [...p.shape], data: this.flat.slice(this.offsets[i]!, this.offsets[i]! + p.size) });
      });
    }
    return { kind: own.kind, version: own.version, step: own.step, tensors };
  }

  /** Takes this rank's pieces out of a whole state (from any world size, or from one process). */
  loadOptimizerState(state: OptimizerState, source: string): void {
    const own = this.optimizer.state();
    const tensors: OptimizerState['tensors'] = new Map();
    for (const [key, t] of own.tensors) {
      const dot = key.lastIndexOf('.');
      const name = key.slice(0, dot);
      const pc = this.pieces.find((x) => x.name === name)!;
      const whole = state.tensors.get(key);
      // A missing or misshapen tensor is left for the optimizer's own check to report.
      if (whole) tensors.set(key, whole.data.length === pc.param.size ? { shape: t.shape, data: whole.data.subarray(pc.from, pc.to) } : whole);
    }
    for (const [key, t] of state.tensors) {
      const dot = key.lastIndexOf('.');
      if (!this.params.some(([name]) => name === key.slice(0, dot))) tensors.set(key, t); // unknown: refused below
    }
    this.optimizer.loadState({ kind: state.kind, version: state.version, step: state.step, tensors }, source);
  }

  /** Bytes of optimizer state on this rank (≈ 1/N of one process's). */
  stateBytes(): number {
    return this.optimizer.stateBytes();
  }

  dispose(): void {
    this.optimizer.dispose();
    for (const pc of this.pieces) {
      pc.shard.grad?.dispose();
      pc.shard.dispose();
    }
  }
}
