// `lmforge info`: versions, native addon status, SIMD paths and threads, for bug reports and sanity checks.
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { cpuName } from '../util/cpu.js';
import type { Command } from 'commander';
import { ADDON_PATH, addonLoadError, tryLoadAddon } from '../core/native/addon.js';
import { bf16GemmKernel } from '../core/native/gemm.js';
import { loadNativeBackend } from '../core/native/index.js';
import { cacheDir, calibratePeak, PEAK_CACHE_FILE } from '../train/infra.js';
import { numberFlag } from './flags.js';
import { mpiAddonStatus } from '../train/distributed/comm.js';
import { packageVersion } from './version.js';

export interface Info {
  lmforge: string;
  node: string;
  v8: string;
  napi: string;
  platform: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  mpi: { available: boolean; path: string; error?: string };
  native: { loaded: boolean; path: string; error?: string; avx2?: boolean; avx512f?: boolean; threads?: number; adaptiveThreads?: boolean; soloNow?: boolean; soloSpells?: number; bf16Gemm?: string };
}

export function collectInfo(): Info {
  loadNativeBackend(); // applies LMFORGE_THREAD_POLICY as every command does
  const addon = tryLoadAddon();
  const cpu = addon?.cpuInfo();
  const err = addonLoadError();
  return {
    lmforge: packageVersion(),
    node: process.versions.node,
    v8: process.versions.v8,
    napi: process.versions.napi ?? 'unknown',
    platform: `${process.platform}-${process.arch}`,
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    mpi: mpiAddonStatus(),
    native: { loaded: addon !== null, path: ADDON_PATH, ...(err ? { error: err } : {}), ...(cpu ?? {}), ...(addon ? { bf16Gemm: bf16GemmKernel() } : {}) },
  };
}

export function formatInfo(i: Info): string {
  const simd = i.native.loaded ? [i.native.avx512f ? 'avx512f' : null, i.native.avx2 ? 'avx2+fma' : null, 'scalar'].filter(Boolean).join(', ') : 'n/a';
  const rows: [string, string][] = [
    ['lmforge', i.lmforge],
    ['node', `${i.node} (v8 ${i.v8}, N-API ${i.napi})`],
    ['platform', i.platform],
    ['cpu', `${i.cpu}, ${i.cores} cores available, ${i.memoryGiB} GiB memory`],
    ['native addon', i.native.loaded ? `loaded (${i.native.path})` : `NOT loaded: ${i.native.error ?? 'unknown error'} — run \`npm install\` to build it`],
    ['MPI addon', i.mpi.available ? `loaded (${i.mpi.path}); distributed runs: mpirun -np N lmforge train … --dp=N` : `not available: ${i.mpi.error ?? 'unknown error'} (one-process runs are unaffected)`],
    ['SIMD paths', simd],
    ['bf16 GEMM', i.native.bf16Gemm === undefined ? 'n/a' : i.native.bf16Gemm === 'fp32' ? 'off: bf16 matmuls run in fp32 (no AVX512-BF16 on this CPU, or LMFORGE_BF16_GEMM=fp32)' : `yes, ${i.native.bf16Gemm === 'amx' ? 'AMX-BF16 tiles' : 'AVX512-BF16 (vdpbf16ps)'} (LMFORGE_BF16_GEMM=avx512bf16|amx|fp32 to choose)`],
    ['threads', i.native.threads !== undefined ? `${i.native.threads} (OpenMP; set OMP_NUM_THREADS to change)` : 'n/a'],
    ['thread policy', i.native.adaptiveThreads === undefined ? 'n/a' : i.native.adaptiveThreads
      ? 'adaptive: when workers join parallel regions late (another process holds a core), kernels run on one thread for 0.05–3.2 s, then try the full team again (LMFORGE_THREAD_POLICY=fixed turns it off)'
      : 'fixed (LMFORGE_THREAD_POLICY=fixed): every parallel region uses all threads'],
  ];
  return rows.map(([k, v]) => `${k.padEnd(13)} ${v}`).join('\n');
}

export function register(program: Command): void {
  program
    .command('info')
    .description('show versions, native addon status, SIMD paths and threads')
    .option('--json', 'print as JSON')
    .option('--calibrate [seconds]', `measure this machine's fp32 GEMM peak (MFU's denominator) for about this many seconds (default 3) and cache the highest figure in ${join(cacheDir(), PEAK_CACHE_FILE)}`, numberFlag('--calibrate', 0.1, 600))
    .action((opts: { json?: boolean; calibrate?: number | true }) => {
      if (opts.calibrate !== undefined) {
        loadNativeBackend();
        const load = loadavg()[0] ?? 0;
        const flops = calibratePeak(opts.calibrate === true ? 3 : opts.calibrate);
        process.stdout.write(`peak fp32 GEMM ${(flops / 1e9).toFixed(1)} GFLOP/s on ${cpuName()} (the highest measured; this one at load average ${load.toFixed(2)}; cached in ${join(cacheDir(), PEAK_CACHE_FILE)})\n`);
        return;
      }
      const i = collectInfo();
      process.stdout.write((opts.json ? JSON.stringify(i, null, 2) : formatInfo(i)) + '\n');
    });
}
