// A stand-in ModelComm over named pipes between processes, for the model-parallel tests until the MPI binding
// lands: blocking send/recv (a pipe blocks the writer once full, like a rendezvous send) and an all-reduce through
// rank 0. Test scaffolding only.
import { closeSync, openSync, readSync, writeSync, constants } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { ModelComm } from '../../../src/train/distributed/collectives.js';

export function makePipes(dir: string, size: number): void {
  for (let a = 0; a < size; a++) for (let b = 0; b < size; b++) if (a !== b) execFileSync('mkfifo', [join(dir, `${a}-${b}`)]);
}

export class PipeComm implements ModelComm {
  private readonly out = new Map<number, number>();
  private readonly inp = new Map<number, number>();
  private sent = 0;

  constructor(dir: string, readonly rank: number, readonly size: number) {
    for (let q = 0; q < size; q++) {
      if (q === rank) continue;
      this.out.set(q, openSync(join(dir, `${rank}-${q}`), constants.O_RDWR));
      this.inp.set(q, openSync(join(dir, `${q}-${rank}`), constants.O_RDWR));
    }
  }

  send(buf: Float32Array, peer: number): void {
    const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    let at = 0;
    while (at < bytes.length) at += writeSync(this.out.get(peer)!, bytes, at, bytes.length - at);
    this.sent += bytes.length;
  }

  recv(buf: Float32Array, peer: number): void {
    const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    let at = 0;
    while (at < bytes.length) at += readSync(this.inp.get(peer)!, bytes, at, bytes.length - at, null);
  }

  allReduce(buf: Float32Array, op: 'sum' | 'max'): void {
    if (this.rank === 0) {
      const tmp = new Float32Array(buf.length);
      for (let q = 1; q < this.size; q++) {
        this.recv(tmp, q);
        for (let i = 0; i < buf.length; i++) buf[i] = op === 'sum' ? buf[i]! + tmp[i]! : Math.max(buf[i]!, tmp[i]!);
      }
      for (let q = 1; q < this.size; q++) this.send(buf, q);
    } else {
      this.send(buf, 0);
      this.recv(buf, 0);
    }
  }

  bytesSent(): number {
    return this.sent;
  }

  close(): void {
    for (const fd of [...this.out.values(), ...this.inp.values()]) closeSync(fd);
  }
}
