// Data parallelism over model-parallel groups (the 2-D layout of Megatron-LM: dp × tp or dp × pp ranks). The world's
// ranks form a grid of dp rows of mp consecutive ranks: rank r sits in row ⌊r/mp⌋ (its data-parallel replica) at
// column r mod mp (its place in the model: tensor shard or pipeline stage). Each row is a model-parallel group that
// trains one replica on its 1/dp of every batch; each column is a data-parallel group whose ranks hold the same
// shard, and after backward the shard's gradients are averaged over the column (one all-reduce, not overlapped with
// backward). Two MPI_Comm_split calls make the groups. Not ZeRO, and not expert parallelism (its ranks already
// split the batch).
import * as lm from '../../core/index.js';
import type { Tensor } from '../../core/index.js';
import type { Optimizer } from '../../optim/optimizer.js';
import { meanOverRanks, type Comm } from './comm.js';
import { contiguousData, ReplicatedOptimizerSync, type SplitGradients } from './data-parallel.js';

/** Where world rank r sits in a grid of dp replicas × mp model-parallel ranks. */
export function gridPosition(rank: number, dp: number, mp: number): { replica: number; shard: number } {
  if (!(Number.isInteger(dp) && dp >= 1 && Number.isInteger(mp) && mp >= 1 && Number.isInteger(rank) && rank >= 0 && rank < dp * mp)) {
    throw new RangeError(`grid: rank ${rank} of dp ${dp} × mp ${mp}`);
  }
  return { replica: Math.floor(rank / mp), shard: rank % mp };
}

/** The two groups of a rank: its model-parallel row and its data-parallel column. */
export interface Grid {
  /** The ranks that together hold one replica of the model (size mp), numbered by shard. */
  mp: Comm;
  /** The ranks that hold the same shard (size dp), numbered by replica. */
  dp: Comm;
  replica: number;
  shard: number;
}

/** Splits world (size dp × mp) into its rows and columns; collective over world. */
export function splitGrid(world: Comm, dp: number, mp: number): Grid {
  if (world.size !== dp * mp) throw new RangeError(`grid: ${world.size} ranks cannot form dp ${dp} × mp ${mp}`);
  const { replica, shard } = gridPosition(world.rank, dp, mp);
  const mpComm = world.split(replica, shard);
  const dpComm = world.split(shard, replica);
  return { mp: mpComm, dp: dpComm, replica, shard };
}

/**
 * The update of a model-parallel shard replicated over a data-parallel group: the shard's own finishing (expert or
 * pipeline collectives inside the model-parallel group), then its gradients summed over the group with one presence
 * flag per parameter (a parameter no replica's batch reached keeps no gradient) and divided by dp, then clipping
 * by the global norm over the model-parallel group (every replica now holds the same gradients) and the step.
 */
export class HybridSync extends ReplicatedOptimizerSync {
  private readonly params: Tensor[];

  /** comm: the data-parallel group (the loop's `comm`: its size scales tokens per step, its bytes are logged). */
  constructor(comm: Comm, optimizer: Optimizer, private readonly split: SplitGradients) {
    super(comm, optimizer);
    this.params = optimizer.params;
  }

  beforeBackward(): void {}

  afterBackward(): void {
    this.split.finishGradients?.();
    const n = this.params.reduce((s, p) => s + p.size, 0);
    const flat = new Float32Array(n + this.params.length);
    let at = 0;
    this.params.forEach((p, k) => {
      if (p.grad) {
        flat.set(contiguousData(p.grad, 'gradient'), at);
        flat[n + k] = 1;
      }
      at += p.size;
    });
    this.comm.allReduce(flat, 'sum');
    const inv = 1 / this.comm.size;
    at = 0;
    this.params.forEach((p, k) => {
      if (flat[n + k]! > 0) {
        const g = flat.subarray(at, at + p.size).map((v) => v * inv);
        p.grad?.dispose();
        p.grad = lm.keep(lm.fromArray(g, p.shape));
      }
      at += p.size;
    });
  }

  meanOverRanks(values: readonly number[]): number[] {
    return meanOverRanks(this.comm, values);
  }

  step(gradClip: number, gradScale: number): { norm: number; scale: number } {
    const r = this.split.clip(gradClip, gradScale);
    this.optimizer.step(r.scale);
    return r;
  }
}
