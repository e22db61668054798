// The collectives the model-parallel layouts (tensor, pipeline and expert parallelism) stand on, as autograd ops:
// Megatron's f (identity forward, all-reduce of the gradient backward) and g (all-reduce forward, identity
// backward), an exchange between two ranks that cannot deadlock, and a row all-to-all whose backward sends the
// gradients back the way the rows came. The transport is any `ModelComm` (MPI through comm.ts under mpirun).
// Not the MPI binding itself, and not data parallelism.
import * as lm from '../../core/index.js';
import type { Tensor } from '../../core/index.js';

/** The point-to-point and reduction calls the layouts need, on float32 buffers, in place. */
export interface ModelComm {
  readonly rank: number;
  readonly size: number;
  /** Element-wise sum or max over every rank, in place. */
  allReduce(buf: Float32Array, op: 'sum' | 'max'): void;
  /** Blocking send of buf to peer (may wait until peer receives). */
  send(buf: Float32Array, peer: number): void;
  /** Blocking receive of exactly buf.length values from peer. */
  recv(buf: Float32Array, peer: number): void;
  /** Bytes this rank has put on the wire so far. */
  bytesSent(): number;
}

/**
 * Sends `out` to peer and receives `into` from it. The lower rank sends first and the higher receives first, so
 * two ranks that exchange at the same moment never both sit in a blocking send.
 */
export function exchange(comm: ModelComm, peer: number, out: Float32Array, into: Float32Array): void {
  if (comm.rank < peer) {
    comm.send(out, peer);
    comm.recv(into, peer);
  } else {
    comm.recv(into, peer);
    comm.send(out, peer);
  }
}

/** A contiguous float32 copy of t's values. */
function values(t: Tensor): Float32Array {
  const a = t.toTypedArray();
  if (!(a instanceof Float32Array)) throw new TypeError(`model parallelism: ${t.describe()} is not float32`);
  return a;
}

/** All-reduce of a float32 array as a new tensor of the given shape (no autograd). */
export function allReduced(t: Tensor, comm: ModelComm, op: 'sum' | 'max' = 'sum'): Tensor {
  const buf = values(t);
  comm.allReduce(buf, op);
  return lm.fromArray(buf, t.shape);
}

/** Megatron's f: x unchanged forward; the gradient is summed over the ranks backward (entry of a parallel region). */
export function copyToRegion(x: Tensor, comm: ModelComm): Tensor {
  const out = lm.detach(x);
  return lm.record('mp_copy', [x], out, (g) => [allReduced(g, comm)]);
}

/** Megatron's g: the partial results of the ranks summed forward; the gradient passes unchanged backward. */
export function reduceFromRegion(x: Tensor, comm: ModelComm): Tensor {
  const out = allReduced(x, comm);
  return lm.record('mp_reduce', [x], out, (g) => [g]);
}

/**
 * Pairs (i, j), i < j, in lexicographic order: every rank walks the pairs it is in in this one global order, so the
 * lowest unfinished pair can always proceed and blocking exchanges never deadlock.
 */
export function pairOrder(size: number, rank: number): number[] {
  const peers: number[] = [];
  for (let i = 0; i < size; i++) for (let j = i + 1; j < size; j++) if (i === rank) peers.push(j);
    else if (j === rank) peers.push(i);
  return peers;
}

/**
 * Rows to every rank: x (S, C) holds sendRows[q] rows for rank q, in rank order; returns (Σ recvRows, C) with the rows
 * from rank q in rank order. Backward sends each row's gradient back to where the row came from.
 */
export function allToAllRows(x: Tensor, sendRows: readonly number[], recvRows: readonly number[], comm: ModelComm): Tensor {
  const run = (src: Float32Array, sendN: readonly number[], recvN: readonly number[], C: number): Float32Array => {
    const offs = (n: readonly number[]): number[] => n.reduce<number[]>((o, k) => [...o, o[o.length - 1]! + k], [0]);
    const so = offs(sendN);
    const ro = offs(recvN);
    const out = new Float32Array(ro[ro.length - 1]! * C);
    const r = comm.rank;
    out.set(src.subarray(so[r]! * C, so[r + 1]! * C), ro[r]! * C);
    for (const q of pairOrder(comm.size, r)) {
      exchange(comm, q, src.subarray(so[q]! * C, so[q + 1]! * C), out.subarray(ro[q]! * C, ro[q + 1]! * C));
    }
    return out;
  };
  const [S, C] = x.shape as [number, number];
  const sum = (n: readonly number[]): number => n.reduce((a, b) => a + b, 0);
  if (sum(sendRows) !== S) throw new RangeError(`allToAllRows: x has ${S} rows, sendRows add up to ${sum(sendRows)}`);
  const out = lm.fromArray(run(values(x), sendRows, recvRows, C), [sum(recvRows), C]);
  return lm.record('mp_all_to_all', [x], out, (g) => [lm.fromArray(run(values(g), recvRows, sendRows, C), [S, C])]);
}

/** A parameter as one rank holds it: `copies` ranks hold the same values (1 = a shard of its own). */
export interface HeldParam {
  param: Tensor;
  copies: number;
}

/**
 * clipGradNorm (optim/clip.ts) over a model split across ranks: the global norm counts every shard once and every
 * replicated tensor once (its square divided by its copies), so each rank computes the single-process norm.
 */
export function clipGradNormParallel(held: readonly HeldParam[], maxNorm: number, gradScale: number, comm: ModelComm): { norm: number; scale: number } {
  let sq = 0;
  for (const { param, copies } of held) {
    if (!param.grad) continue;
    const g = param.grad.toTypedArray();
    let s = 0;
    for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
    sq += s / copies;
  }
  const buf = new Float32Array([sq]);
  comm.allReduce(buf, 'sum');
  const norm = Math.sqrt(buf[0]!) * gradScale;
  const clip = maxNorm > 0 && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
  return { norm, scale: gradScale * clip };
}
