// Launches a compiled script under `mpirun -np N` for the distributed tests and benchmarks (not a test file):
// oversubscribed, unbound, one kernel thread per rank, allowed as root; says why when it cannot run.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mpiAddonStatus } from '../../../src/train/distributed/comm.js';

/** Why distributed runs cannot happen here (no mpirun, no MPI addon), or undefined when they can. */
export function mpiSkipReason(): string | undefined {
  const which = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  if (which.error || which.status !== 0) return 'mpirun not found (apt-get install openmpi-bin libopenmpi-dev)';
  const s = mpiAddonStatus();
  if (!s.available) return `MPI addon not available: ${s.error ?? 'unknown'}`;
  return undefined;
}

/** The mpirun arguments for n local ranks on a small machine (see README: distributed training). */
export function mpirunArgs(n: number): string[] {
  return ['--allow-run-as-root', '--oversubscribe', '--mca', 'mpi_yield_when_idle', '1', '--bind-to', 'none', '-np', String(n), '-x', 'OMP_NUM_THREADS=1'];
}

export interface MpiResult { code: number | null; stdout: string; stderr: string }

/** Runs `node script args` on n ranks; each rank's stdout lines are interleaved as mpirun forwards them. */
export function runMpi(n: number, script: string, args: string[] = [], timeoutMs = 60_000, env: Record<string, string> = {}): MpiResult {
  const r = spawnSync('mpirun', [...mpirunArgs(n), process.execPath, script, ...args], {
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, OMP_NUM_THREADS: '1', ...env },
  });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** The JSON objects of the lines `tag {json}` in out, in order. */
export function taggedLines<T>(out: string, tag: string): T[] {
  return out.split('\n').filter((l) => l.startsWith(`${tag} `)).map((l) => JSON.parse(l.slice(tag.length + 1)) as T);
}

const made: string[] = [];

/** A fresh folder under the system's temporary one, removed when the test process exits (runs leave checkpoints). */
export function tempDir(prefix: string): string {
  if (made.length === 0) process.once('exit', () => made.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
