// The MPI Comm under mpirun (2 and 4 ranks, oversubscribed): every collective on float32 and bf16; skipped with
// the reason printed where mpirun or the MPI addon is missing. Also the one-process Comm and the launch variables.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { initDistributed, launchInfo, SingleComm, waitMode } from '../../../src/train/distributed/comm.js';
import { mpiSkipReason, runMpi, taggedLines } from './mpi-run.js';

const WORKER = fileURLToPath(new URL('./comm-worker.js', import.meta.url));
const skip = mpiSkipReason();
if (skip) console.log(`# skipping MPI tests: ${skip}`);

for (const [n, wait] of [[2, 'spin'], [4, 'spin'], [2, 'sleep'], [4, 'sleep']] as const) {
  test(`MPI collectives on ${n} ranks (${wait} waits) match what each rank computes alone`, { skip }, () => {
    const r = runMpi(n, WORKER, [], 60_000, { LMFORGE_MPI_WAIT: wait });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const lines = taggedLines<{ rank: number; size: number; checked: string[]; bytes: number }>(r.stdout, 'COMM');
    assert.deepEqual(lines.map((l) => l.rank).sort(), [...Array(n).keys()]);
    for (const l of lines) {
      assert.equal(l.size, n);
      assert.deepEqual(l.checked, ['allReduce', 'allReduce-bf16', 'iallReduce', 'reduceScatter', 'allGather', 'broadcast', 'allToAll', 'sendRecv', 'split']);
      assert.ok(l.bytes > 0);
    }
  });
}

test('a rank waiting in a receive in sleep mode leaves the core: far less CPU than the wait (spin: most of it)', { skip }, () => {
  const worker = fileURLToPath(new URL('./wait-worker.js', import.meta.url));
  const used = (wait: string): { wall_s: number; cpu_s: number; got: number } => {
    const r = runMpi(2, worker, [], 60_000, { LMFORGE_MPI_WAIT: wait });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    return taggedLines<{ wall_s: number; cpu_s: number; got: number }>(r.stdout, 'WAIT')[0]!;
  };
  const sleep = used('sleep');
  assert.equal(sleep.got, 1);
  assert.ok(sleep.wall_s >= 1.4, `waited ${sleep.wall_s} s`);
  assert.ok(sleep.cpu_s < 0.25 * sleep.wall_s, `sleeping wait used ${sleep.cpu_s} CPU s over ${sleep.wall_s} s`);
});

test('launchInfo reads Open MPI and Slurm rank variables', () => {
  assert.deepEqual(launchInfo({ OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_RANK: '2', OMPI_COMM_WORLD_LOCAL_RANK: '0' }),
    { launcher: 'mpirun', size: 4, rank: 2, localRank: 0 });
  assert.deepEqual(launchInfo({ SLURM_NTASKS: '8', SLURM_PROCID: '5', SLURM_LOCALID: '1' }), { launcher: 'slurm', size: 8, rank: 5, localRank: 1 });
  assert.deepEqual(launchInfo({}), { launcher: 'none', size: 1, rank: 0, localRank: 0 });
  assert.throws(() => launchInfo({ OMPI_COMM_WORLD_SIZE: 'two' }), /OMPI_COMM_WORLD_SIZE="two": expected an integer/);
});

test('Slurm rank variables: mpirun inside an allocation wins; srun\'s task count checked against the run', () => {
  // An sbatch job that calls mpirun: both sets are present, Open MPI's describe this process.
  const both = { SLURM_NTASKS: '8', SLURM_PROCID: '0', SLURM_LOCALID: '0', OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_LOCAL_RANK: '1' };
  assert.deepEqual(launchInfo(both), { launcher: 'mpirun', size: 2, rank: 1, localRank: 1 });
  // srun without SLURM_LOCALID (older Slurm): local rank 0.
  assert.deepEqual(launchInfo({ SLURM_NTASKS: '4', SLURM_PROCID: '3' }), { launcher: 'slurm', size: 4, rank: 3, localRank: 0 });
  // An allocation's variables without a task id (a login shell inside salloc) are not a launch.
  assert.deepEqual(launchInfo({ SLURM_NTASKS: '4' }), { launcher: 'none', size: 1, rank: 0, localRank: 0 });
  assert.throws(() => launchInfo({ SLURM_NTASKS: '4', SLURM_PROCID: '-1' }), /SLURM_PROCID="-1": expected an integer >= 0/);
  assert.throws(() => initDistributed({ expectSize: 2, env: { SLURM_NTASKS: '3', SLURM_PROCID: '1' } }), /asks for 2 processes but slurm started 3; launch it with `mpirun -np 2 lmforge …` \(or `srun -n 2`\)/);
});

test('ranks wait by sleeping when the machine runs more of them than it has cores, or when asked', () => {
  assert.equal(waitMode({ OMPI_COMM_WORLD_LOCAL_SIZE: '4' }, 2), 'sleep');
  assert.equal(waitMode({ OMPI_COMM_WORLD_LOCAL_SIZE: '2' }, 2), 'spin');
  assert.equal(waitMode({ SLURM_NTASKS_PER_NODE: '8' }, 4), 'sleep');
  assert.equal(waitMode({}, 2), 'spin');
  assert.equal(waitMode({ LMFORGE_MPI_WAIT: 'sleep' }, 64), 'sleep');
  assert.equal(waitMode({ LMFORGE_MPI_WAIT: 'spin', OMPI_COMM_WORLD_LOCAL_SIZE: '4' }, 2), 'spin');
  assert.throws(() => waitMode({ LMFORGE_MPI_WAIT: 'nap' }, 2), /LMFORGE_MPI_WAIT="nap": expected spin, sleep or auto/);
});

test('a run asking for several processes but started as one says how to launch it', () => {
  assert.throws(() => initDistributed({ expectSize: 2, env: {} }), /asks for 2 processes but was started as one; launch it with `mpirun -np 2/);
});

test('the one-process Comm: reductions are identities, gathers copies', () => {
  const c = new SingleComm();
  const a = new Float32Array([1, 2]);
  c.allReduce(a);
  assert.deepEqual([...a], [1, 2]);
  const out = new Float32Array(2);
  c.reduceScatter(a, out);
  assert.deepEqual([...out], [1, 2]);
  const g = new Uint16Array(2);
  c.allGather(new Uint16Array([3, 4]), g);
  assert.deepEqual([...g], [3, 4]);
  assert.ok(c.iallReduce(a).test());
  assert.throws(() => c.send(a, 1), /no peer 1/);
  assert.equal(c.bytesSent(), 0);
});
