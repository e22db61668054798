// How every benchmark runs its PyTorch side: Debian's /usr/bin/python3 with python3-torch, given the same number of
// threads as lmforge, and linked to OpenBLAS when it is installed. Debian's torch calls libblas.so.3, which is the
// netlib reference BLAS unless OpenBLAS is selected system-wide; pointing only the torch process at OpenBLAS makes
// the comparison against a real BLAS (`apt-get install libopenblas0-pthread`).
import { existsSync } from 'node:fs';

export const PYTHON = '/usr/bin/python3';
export const OPENBLAS_DIR = '/usr/lib/x86_64-linux-gnu/openblas-pthread';

//
// OMP_WAIT_POLICY=PASSIVE: torch's own OpenMP threads otherwise spin for a while after each parallel op, taking the
// cores from OpenBLAS's threads that run next. On 2 cores that made torch 2.4x slower on nanoGPT's CPU recipe
// (105 against 45 ms/iter) and 6x slower at decoding; passive waiting is its best 2-thread setting here.
export function torchEnv(threads: number, systemBlas = false): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), OMP_WAIT_POLICY: 'PASSIVE',
  };
  if (!systemBlas && existsSync(OPENBLAS_DIR)) env.LD_LIBRARY_PATH = [OPENBLAS_DIR, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  return env;
}

/** Which BLAS the torch side uses, for the benchmark's header line. */
export function torchBlasNote(systemBlas = false): string {
  return !systemBlas && existsSync(OPENBLAS_DIR) ? 'OpenBLAS (pthread)' : 'the system libblas.so.3 (netlib unless OpenBLAS is selected)';
}
