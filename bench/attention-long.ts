// Benchmark: long-context attention variants of issue 12 on the native kernels: dense fused causal attention
// beside sliding-window (local) attention, forward + backward at T = 1,024 … 16,384 (batch 1, 4 heads, head size
// 64), with each variant's fitted exponent of time against T and local's speedup at T = 8,192. Routing and LSH
// attention would join as more keys of `ms`, `exponent` and `speedup_8192`. Not a test: it prints figures.
// Usage: npm run bench -- attention-long [--max-T=N (default 16384)] [--window=N (default 256)] [--threads=N (default 2)]
import { loadAddon } from '../src/core/native/addon.js';
import { attentionIsa, attentionScratchBytes, nativeAttention } from '../src/core/native/attention.js';
import { cpuName } from './_cpu.js';
import { intFlag, median } from './_args.js';
import { problem } from './attention.js';

const B = 1;
const H = 4;
const D = 64;


interface Figures {
  /** Median forward + backward milliseconds. */
  ms: number;
  /** The op's own memory: its outputs (out, lse, dq, dk, dv) plus the larger of the two calls' kernel scratch. */
  mib: number;
}

/** Times forward + backward `reps` times (after one untimed call when warm is asked for). */
function measure(T: number, window: number, reps: number, warm: boolean): Figures {
  const a = problem(B, H, T, D, T + window, 0, window);
  if (warm) {
    nativeAttention.attention(a);
    nativeAttention.attentionBackward(a);
  }
  const times: number[] = [];
  let scratch = 0;
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    nativeAttention.attention(a);
    scratch = Math.max(scratch, attentionScratchBytes());
    nativeAttention.attentionBackward(a);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    scratch = Math.max(scratch, attentionScratchBytes());
  }
  const outputs = 4 * (4 * B * H * T * D + B * H * T); // out, dq, dk, dv (fp32) and lse
  return { ms: median(times), mib: (outputs + scratch) / 2 ** 20 };
}

/** Least-squares slope of log(ms) against log(T): time ∝ T^slope. */
function exponent(Ts: readonly number[], ms: readonly number[]): number {
  const x = Ts.map(Math.log);
  const y = ms.map(Math.log);
  const mx = x.reduce((s, v) => s + v, 0) / x.length;
  const my = y.reduce((s, v) => s + v, 0) / y.length;
  let sxy = 0;
  let sxx = 0;
  x.forEach((xi, i) => {
    sxy += (xi - mx) * (y[i]! - my);
    sxx += (xi - mx) ** 2;
  });
  return sxx > 0 ? sxy / sxx : Number.NaN;
}

const round = (x: number, digits: number): number => Number(x.toFixed(digits));

export async function run(args: string[]): Promise<void> {
  const maxT = intFlag('attention-long', args, 'max-T', 16384);
  const window = intFlag('attention-long', args, 'window', 256);
  const threads = intFlag('attention-long', args, 'threads', 2);
  const setThreads = loadAddon()['setThreads'];
  if (typeof setThreads !== 'function') throw new Error('bench/attention-long: the native addon has no setThreads()');
  (setThreads as (n: number) => void)(threads);
  const Ts: number[] = [];
  for (let T = 1024; T <= maxT; T *= 2) Ts.push(T);
  if (Ts.length === 0) throw new Error(`bench/attention-long: --max-T=${maxT} is below the first T (1024)`);
  console.log(`long-context attention, native ${attentionIsa()} kernels, ${threads} threads, B = ${B}, H = ${H}, D = ${D}, causal`);
  console.log(`CPU: ${cpuName()}`);
  console.log(`dense = fused causal attention; local = sliding window ${window}; forward + backward, median ms; memory = outputs + kernel scratch`);
  console.log(`${'T'.padStart(6)} | ${'dense ms'.padStart(10)} ${'MiB'.padStart(7)} | ${'local ms'.padStart(10)} ${'MiB'.padStart(7)} | speedup`);
  const ms: Record<'dense' | 'local', number[]> = { dense: [], local: [] };
  for (const [i, T] of Ts.entries()) {
    // Fewer repetitions where one call already takes seconds; the first shape warms the threads and caches.
    const reps = T <= 2048 ? 5 : T <= 4096 ? 3 : 1;
    const dense = measure(T, 0, reps, i === 0);
    const local = measure(T, window, reps, i === 0);
    ms.dense.push(dense.ms);
    ms.local.push(local.ms);
    console.log(`${String(T).padStart(6)} | ${dense.ms.toFixed(1).padStart(10)} ${dense.mib.toFixed(1).padStart(7)} | ${local.ms.toFixed(1).padStart(10)} ${local.mib.toFixed(1).padStart(7)} | ${(dense.ms / local.ms).toFixed(2)}×`);
  }
  const at8192 = Ts.indexOf(8192);
  const result = {
    T: Ts,
    ms: { dense: ms.dense.map((x) => round(x, 2)), local: ms.local.map((x) => round(x, 2)) },
    exponent: { dense: round(exponent(Ts, ms.dense), 3), local: round(exponent(Ts, ms.local), 3) },
    speedup_8192: { local: at8192 >= 0 ? round(ms.dense[at8192]! / ms.local[at8192]!, 2) : null },
  };
  console.log(`time ∝ T^k: dense k = ${result.exponent.dense}, local k = ${result.exponent.local} (window ${window})`);
  console.log(`RESULT ${JSON.stringify(result)}`);
}
