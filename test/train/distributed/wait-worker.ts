// One rank of the wait-mode check (comm.test.ts launches it under mpirun): rank 1 sleeps 1.5 s before a
// receive that rank 0 is already waiting in, and rank 0 prints `WAIT {json}` with the CPU seconds it used while
// waiting (spinning: about the wait; sleeping: a small fraction). Test scaffolding only.
import { initDistributed } from '../../../src/train/distributed/comm.js';

const comm = initDistributed();
const buf = new Float32Array(4);
if (comm.rank === 1) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
  comm.send(buf.fill(1), 0);
} else {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  comm.recv(buf, 1);
  const c = process.cpuUsage(c0);
  console.log(`WAIT ${JSON.stringify({ wall_s: (performance.now() - t0) / 1e3, cpu_s: (c.user + c.system) / 1e6, got: buf[0] })}`);
}
comm.barrier();
