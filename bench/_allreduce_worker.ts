// One rank of bench/distributed.ts's link measurement, run under mpirun (not a suite): times the MPI all-reduce of
// float32 buffers from 4 KiB to 4 MiB (the fastest of several repeats after a warm-up: on a shared machine the
// slower ones measure other processes' load) and prints rank 0's `ALLREDUCE {json}`.
import { initDistributed } from '../src/train/distributed/comm.js';

const comm = initDistributed();
const samples: { bytes: number; seconds: number }[] = [];
for (const kib of [4, 16, 64, 256, 1024, 4096]) {
  const buf = new Float32Array((kib * 1024) / 4);
  const times: number[] = [];
  const reps = kib >= 1024 ? 7 : 21;
  for (let r = 0; r < reps + 2; r++) {
    comm.barrier();
    const t0 = performance.now();
    comm.allReduce(buf);
    const dt = (performance.now() - t0) / 1000;
    if (r >= 2) times.push(dt);
  }
  // Every rank's time ends with the slowest rank's: rank 0's is the collective's.
  samples.push({ bytes: buf.byteLength, seconds: Math.min(...times) });
}
if (comm.rank === 0) console.log(`ALLREDUCE ${JSON.stringify({ size: comm.size, samples })}`);
