// The collective interface distributed training is written against (Comm), its MPI implementation over the
// optional addon build/Release/lmforge_mpi.node (native/src/mpi.cc), a one-process Comm with the same semantics,
// and initDistributed(), which picks one from the launcher's rank variables. Not a collective implementation:
// MPI chooses the algorithms; this file only checks shapes, counts bytes and keeps one code path for size 1.
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../util/errors.js';

/** A buffer a collective moves: float32, bf16 (raw 16-bit words in a Uint16Array), float64 or int32. */
export type CommBuffer = Float32Array | Uint16Array | Float64Array | Int32Array;
export type ReduceOp = 'sum' | 'max' | 'min';

/** A nonblocking transfer in flight; the buffer must not be touched until wait() returns or test() says true. */
export interface CommRequest {
  wait(): void;
  /** True once complete; each call also lets MPI progress the transfer (Open MPI has no progress thread). */
  test(): boolean;
}

/**
 * One group of ranks and the collectives over it. Every rank of the group must make the same calls in the same
 * order with the same lengths (MPI's rule). Reductions on a Uint16Array are bf16: each pair is added in float32
 * and rounded to bf16 once.
 */
export interface Comm {
  readonly rank: number;
  readonly size: number;
  /** Rank among the processes of this machine (for pinning threads); 0 for a split communicator's own numbering. */
  readonly localRank: number;
  readonly backend: 'mpi' | 'single';
  /** In place: every rank ends with op over every rank's buf. */
  allReduce(buf: CommBuffer, op?: ReduceOp): void;
  /** allReduce started now and finished by wait() (lets a backward pass continue while gradients travel). */
  iallReduce(buf: CommBuffer, op?: ReduceOp): CommRequest;
  /** send.length = size × recv.length; rank r receives op over every rank's block r. */
  reduceScatter(send: CommBuffer, recv: CommBuffer, op?: ReduceOp): void;
  /** recv.length = size × send.length; block r of recv is rank r's send. */
  allGather(send: CommBuffer, recv: CommBuffer): void;
  /** root's buf copied into every rank's buf. */
  broadcast(buf: CommBuffer, root: number): void;
  /**
   * Block p of send goes to rank p, block p of recv comes from rank p; blocks packed in rank order with the given
   * element counts per rank (equal blocks when omitted).
   */
  allToAll(send: CommBuffer, recv: CommBuffer, sendCounts?: Int32Array, recvCounts?: Int32Array): void;
  send(buf: CommBuffer, peer: number, tag?: number): void;
  /** Fills buf with a message of exactly buf.length elements from peer. */
  recv(buf: CommBuffer, peer: number, tag?: number): void;
  isend(buf: CommBuffer, peer: number, tag?: number): CommRequest;
  irecv(buf: CommBuffer, peer: number, tag?: number): CommRequest;
  barrier(): void;
  /**
   * Ranks with the same color form a new Comm, numbered by key (then by rank here). Tensor-, pipeline- and
   * data-parallel groups are splits of the world. Collective over this Comm.
   */
  split(color: number, key?: number): Comm;
  /**
   * Bytes this rank has sent through this Comm since it was made, counted per call as the bandwidth-optimal
   * algorithm sends them (ring all-reduce 2(N−1)/N·n, reduce-scatter and all-gather (N−1)/N of the full buffer,
   * all-to-all the blocks for other ranks, broadcast n from the root, send n). See bytesForCall.
   */
  bytesSent(): number;
  /** Leaves MPI (once, at exit; called automatically when the process exits normally). */
  finalize(): void;
  /** Ends every rank with this exit code (an error on one rank must not leave the others waiting in a collective). */
  abort(code: number): never;
}

/** The mean of each value over the ranks of `comm` (one all-reduce in float64; no call on a single rank). */
export function meanOverRanks(comm: Comm, values: readonly number[]): number[] {
  if (comm.size === 1) return [...values];
  const buf = Float64Array.from(values);
  comm.allReduce(buf);
  return [...buf].map((v) => v / comm.size);
}

/** The bytes one rank sends for one call under the bandwidth-optimal algorithm (see Comm.bytesSent). */
export function bytesForCall(kind: 'allReduce' | 'reduceScatter' | 'allGather' | 'broadcast', bytes: number, size: number, isRoot = false): number {
  if (size <= 1) return 0;
  switch (kind) {
    case 'allReduce': return (2 * (size - 1) / size) * bytes; // ring: reduce-scatter then all-gather of n/N blocks
    case 'reduceScatter': return ((size - 1) / size) * bytes; // bytes = the full (send) buffer
    case 'allGather': return ((size - 1) / size) * bytes; // bytes = the full (recv) buffer
    case 'broadcast': return isRoot ? bytes : 0; // pipelined: the root sends everything once
  }
}

// ---- the addon ----

/** The raw entry points of native/src/mpi.cc (comm ids: 0 = world). */
interface MpiAddon {
  init(): { rank: number; size: number; version: string };
  finalize(): void;
  abort(code: number): never;
  allReduce(comm: number, buf: CommBuffer, op: number): void;
  iallReduce(comm: number, buf: CommBuffer, op: number): number;
  reduceScatter(comm: number, send: CommBuffer, recv: CommBuffer, op: number): void;
  allGather(comm: number, send: CommBuffer, recv: CommBuffer): void;
  broadcast(comm: number, buf: CommBuffer, root: number): void;
  allToAll(comm: number, send: CommBuffer, recv: CommBuffer, sendCounts: Int32Array | null, recvCounts: Int32Array | null): void;
  send(comm: number, buf: CommBuffer, peer: number, tag: number): void;
  recv(comm: number, buf: CommBuffer, peer: number, tag: number): void;
  isend(comm: number, buf: CommBuffer, peer: number, tag: number): number;
  irecv(comm: number, buf: CommBuffer, peer: number, tag: number): number;
  wait(id: number): void;
  test(id: number): boolean;
  barrier(comm: number): void;
  split(comm: number, color: number, key: number): { id: number; rank: number; size: number };
  wtime(): number;
  setWait(spinUs: number, maxSleepUs: number): void;
}

/**
 * This file is dist/src/train/distributed/comm.js once compiled; the addon sits at <repo>/build/Release
 * (LMFORGE_MPI_ADDON overrides the path, e.g. to test the error a machine without it gives).
 */
export const MPI_ADDON_PATH = process.env.LMFORGE_MPI_ADDON ?? fileURLToPath(new URL('../../../../build/Release/lmforge_mpi.node', import.meta.url));

let loaded: { addon: MpiAddon } | { error: string } | undefined;

function tryLoadMpi(): MpiAddon | null {
  if (!loaded) {
    try {
      loaded = { addon: createRequire(import.meta.url)(MPI_ADDON_PATH) as MpiAddon };
    } catch (e) {
      const msg = e instanceof Error ? e.message.split('\n')[0]! : String(e);
      loaded = { error: msg.includes('Cannot find module') ? 'not built (Open MPI\'s headers were absent when the addon was built)' : msg };
    }
  }
  return 'addon' in loaded ? loaded.addon : null;
}

/** Whether the MPI addon loads, and why not (for `lmforge info`). Does not initialize MPI. */
export function mpiAddonStatus(): { available: boolean; path: string; error?: string } {
  const a = tryLoadMpi();
  return a ? { available: true, path: MPI_ADDON_PATH } : { available: false, path: MPI_ADDON_PATH, error: (loaded as { error: string }).error };
}

const OPS: Record<ReduceOp, number> = { sum: 0, max: 1, min: 2 };

function byteLength(b: CommBuffer): number {
  return b.byteLength;
}

class MpiRequest implements CommRequest {
  private done = false;
  constructor(private readonly addon: MpiAddon, private readonly id: number) {}
  wait(): void {
    if (this.done) return;
    this.addon.wait(this.id);
    this.done = true;
  }
  test(): boolean {
    if (!this.done && this.addon.test(this.id)) this.done = true;
    return this.done;
  }
}

class MpiComm implements Comm {
  readonly backend = 'mpi' as const;
  private sent = 0;

  constructor(
    private readonly addon: MpiAddon,
    private readonly id: number,
    readonly rank: number,
    readonly size: number,
    readonly localRank: number,
  ) {}

  allReduce(buf: CommBuffer, op: ReduceOp = 'sum'): void {
    this.sent += bytesForCall('allReduce', byteLength(buf), this.size);
    this.addon.allReduce(this.id, buf, OPS[op]);
  }
  iallReduce(buf: CommBuffer, op: ReduceOp = 'sum'): CommRequest {
    this.sent += bytesForCall('allReduce', byteLength(buf), this.size);
    return new MpiRequest(this.addon, this.addon.iallReduce(this.id, buf, OPS[op]));
  }
  reduceScatter(send: CommBuffer, recv: CommBuffer, op: ReduceOp = 'sum'): void {
    this.sent += bytesForCall('reduceScatter', byteLength(send), this.size);
    this.addon.reduceScatter(this.id, send, recv, OPS[op]);
  }
  allGather(send: CommBuffer, recv: CommBuffer): void {
    this.sent += bytesForCall('allGather', byteLength(recv), this.size);
    this.addon.allGather(this.id, send, recv);
  }
  broadcast(buf: CommBuffer, root: number): void {
    this.sent += bytesForCall('broadcast', byteLength(buf), this.size, root === this.rank);
    this.addon.broadcast(this.id, buf, root);
  }
  allToAll(send: CommBuffer, recv: CommBuffer, sendCounts?: Int32Array, recvCounts?: Int32Array): void {
    const elem = send.BYTES_PER_ELEMENT;
    if (sendCounts) {
      let n = 0;
      sendCounts.forEach((c, p) => { if (p !== this.rank) n += c; });
      this.sent += n * elem;
    } else {
      this.sent += ((this.size - 1) / this.size) * byteLength(send);
    }
    this.addon.allToAll(this.id, send, recv, sendCounts ?? null, recvCounts ?? null);
  }
  send(buf: CommBuffer, peer: number, tag = 0): void {
    this.sent += byteLength(buf);
    this.addon.send(this.id, buf, peer, tag);
  }
  recv(buf: CommBuffer, peer: number, tag = 0): void {
    this.addon.recv(this.id, buf, peer, tag);
  }
  isend(buf: CommBuffer, peer: number, tag = 0): CommRequest {
    this.sent += byteLength(buf);
    return new MpiRequest(this.addon, this.addon.isend(this.id, buf, peer, tag));
  }
  irecv(buf: CommBuffer, peer: number, tag = 0): CommRequest {
    return new MpiRequest(this.addon, this.addon.irecv(this.id, buf, peer, tag));
  }
  barrier(): void {
    this.addon.barrier(this.id);
  }
  split(color: number, key = this.rank): Comm {
    const s = this.addon.split(this.id, color, key);
    return new MpiComm(this.addon, s.id, s.rank, s.size, 0);
  }
  bytesSent(): number {
    return this.sent;
  }
  finalize(): void {
    finalizeMpi();
  }
  abort(code: number): never {
    return this.addon.abort(code);
  }
}

// ---- one process ----

function copyInto(dst: CommBuffer, src: CommBuffer, what: string): void {
  if (dst.constructor !== src.constructor) throw new Error(`${what}: send and recv must have the same element type`);
  if (dst.length !== src.length) throw new Error(`${what}: with one rank, recv.length must equal send.length (${src.length}), got ${dst.length}`);
  dst.set(src as never);
}

const doneRequest: CommRequest = { wait: () => undefined, test: () => true };

/** The Comm of a run with one process: reductions are identities, gathers copies, and there is no peer. */
export class SingleComm implements Comm {
  readonly rank = 0;
  readonly size = 1;
  readonly localRank = 0;
  readonly backend = 'single' as const;
  allReduce(_buf: CommBuffer, _op?: ReduceOp): void {}
  iallReduce(_buf: CommBuffer, _op?: ReduceOp): CommRequest { return doneRequest; }
  reduceScatter(send: CommBuffer, recv: CommBuffer): void { copyInto(recv, send, 'reduceScatter'); }
  allGather(send: CommBuffer, recv: CommBuffer): void { copyInto(recv, send, 'allGather'); }
  broadcast(_buf: CommBuffer, root: number): void {
    if (root !== 0) throw new Error(`broadcast: root ${root} is not a rank (size 1)`);
  }
  allToAll(send: CommBuffer, recv: CommBuffer, sendCounts?: Int32Array): void {
    const n = sendCounts ? sendCounts[0]! : send.length;
    copyInto(recv.subarray(0, n), send.subarray(0, n), 'allToAll');
  }
  send(_buf: CommBuffer, peer: number): void { throw new Error(`send: no peer ${peer} in a one-process run`); }
  recv(_buf: CommBuffer, peer: number): void { throw new Error(`recv: no peer ${peer} in a one-process run`); }
  isend(_buf: CommBuffer, peer: number): CommRequest { throw new Error(`isend: no peer ${peer} in a one-process run`); }
  irecv(_buf: CommBuffer, peer: number): CommRequest { throw new Error(`irecv: no peer ${peer} in a one-process run`); }
  barrier(): void {}
  split(): Comm { return new SingleComm(); }
  bytesSent(): number { return 0; }
  finalize(): void {}
  abort(code: number): never { process.exit(code); }
}

// ---- launch ----

/** What the launcher says about this process: Open MPI's mpirun, Slurm's srun, or nothing (one process). */
export interface LaunchInfo {
  launcher: 'mpirun' | 'slurm' | 'none';
  rank: number;
  size: number;
  localRank: number;
}

function intVar(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UserError(`environment variable ${name}=${JSON.stringify(v)}: expected an integer >= 0`);
  return n;
}

/** Reads Open MPI's OMPI_COMM_WORLD_* (mpirun) or Slurm's SLURM_PROCID/NTASKS/LOCALID (srun) variables. */
export function launchInfo(env: NodeJS.ProcessEnv = process.env): LaunchInfo {
  const ompiSize = intVar(env, 'OMPI_COMM_WORLD_SIZE');
  if (ompiSize !== undefined) {
    return { launcher: 'mpirun', size: ompiSize, rank: intVar(env, 'OMPI_COMM_WORLD_RANK') ?? 0, localRank: intVar(env, 'OMPI_COMM_WORLD_LOCAL_RANK') ?? 0 };
  }
  const slurmSize = intVar(env, 'SLURM_NTASKS');
  const slurmRank = intVar(env, 'SLURM_PROCID');
  if (slurmSize !== undefined && slurmRank !== undefined) {
    return { launcher: 'slurm', size: slurmSize, rank: slurmRank, localRank: intVar(env, 'SLURM_LOCALID') ?? 0 };
  }
  return { launcher: 'none', size: 1, rank: 0, localRank: 0 };
}

/**
 * How a rank waits inside MPI calls: 'spin' (Open MPI's blocking calls, which poll) or 'sleep' (poll 50 µs, then
 * sleep between polls, up to 200 µs: a waiting rank leaves the core to the ranks it waits for). LMFORGE_MPI_WAIT
 * picks one; 'auto' (the default) sleeps when this machine runs more ranks than it has cores (Open MPI's
 * OMPI_COMM_WORLD_LOCAL_SIZE, Slurm's SLURM_NTASKS_PER_NODE).
 */
export function waitMode(env: NodeJS.ProcessEnv, cores = availableParallelism()): 'spin' | 'sleep' {
  const v = env.LMFORGE_MPI_WAIT ?? 'auto';
  if (v === 'spin' || v === 'sleep') return v;
  if (v !== 'auto') throw new UserError(`environment variable LMFORGE_MPI_WAIT=${JSON.stringify(v)}: expected spin, sleep or auto`);
  const local = intVar(env, 'OMPI_COMM_WORLD_LOCAL_SIZE') ?? intVar(env, 'SLURM_NTASKS_PER_NODE');
  return local !== undefined && local > cores ? 'sleep' : 'spin';
}

let world: Comm | undefined;

function finalizeMpi(): void {
  const a = tryLoadMpi();
  if (a && world?.backend === 'mpi') a.finalize();
}

export interface InitOptions {
  /** The number of processes the run asks for (e.g. dp × tp × pp); a mismatch with the launcher is an error. */
  expectSize?: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * The world Comm of this process, made once: MPI when a launcher started more than one process (or when
 * expectSize > 1 asks for it), else a SingleComm. Errors are one line saying how to launch.
 */
export function initDistributed(opts: InitOptions = {}): Comm {
  if (world) {
    if (opts.expectSize !== undefined && opts.expectSize !== world.size) {
      throw new UserError(`the run asks for ${opts.expectSize} processes but ${world.size} were launched`);
    }
    return world;
  }
  const info = launchInfo(opts.env);
  const want = opts.expectSize ?? info.size;
  if (want > 1 || info.size > 1) {
    const how = `launch it with \`mpirun -np ${want} lmforge …\` (or \`srun -n ${want}\`)`;
    if (info.size !== want) {
      throw new UserError(info.launcher === 'none'
        ? `the run asks for ${want} processes but was started as one; ${how}`
        : `the run asks for ${want} processes but ${info.launcher} started ${info.size}; ${how}`);
    }
    const addon = tryLoadMpi();
    if (!addon) {
      throw new UserError(`a distributed run needs the MPI addon (${MPI_ADDON_PATH}): ${(loaded as { error: string }).error}; install Open MPI (apt-get install openmpi-bin libopenmpi-dev) and rebuild with \`npm install\``);
    }
    const r = addon.init();
    if (r.size !== info.size || r.rank !== info.rank) {
      throw new UserError(`MPI says rank ${r.rank} of ${r.size} but ${info.launcher} said rank ${info.rank} of ${info.size}; is the addon built against the Open MPI that launched it?`);
    }
    if (waitMode(opts.env ?? process.env) === 'sleep') addon.setWait(50, 200);
    world = new MpiComm(addon, 0, r.rank, r.size, info.localRank);
    // MPI must be finalized before a normal exit, or mpirun reports the rank as failed.
    process.once('exit', finalizeMpi);
  } else {
    world = new SingleComm();
  }
  return world;
}
