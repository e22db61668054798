// Benchmark: long-context attention variants of issue 12, forward + backward through autograd at T = 1,024 … 16,384
// (batch 1, 4 heads, head size 64): dense fused causal attention, sliding-window (local), Routing (√T clusters,
// 1 local head of 4) and Reformer LSH (2 hash rounds, bucket size 64), each with its peak memory, the fitted exponent
// of time against T and its speedup over dense at T = 8,192. The sparse variants' time includes their hashing,
// clustering and sorting (plain TypeScript) beside the native chunk kernels. Not a test: it prints figures.
// Usage: npm run bench -- attention-long [--max-T=N (default 16384)] [--window=N (default 256)] [--threads=N (default 2)]
import * as lm from '../src/core/index.js';
import type { Tensor } from '../src/core/index.js';
import { loadAddon } from '../src/core/native/addon.js';
import { attentionIsa, attentionScratchBytes } from '../src/core/native/attention.js';
import { loadNativeBackend } from '../src/core/native/index.js';
import { lshAttention, lshBucketCount, type LshSettings } from '../src/nn/lsh-attention.js';
import { randomCentroids, routingAttention, routingShape, type RoutingSettings } from '../src/nn/routing-attention.js';
import { cpuName } from './_cpu.js';
import { intFlag, median } from './_args.js';

const B = 1;
const H = 4;
const D = 64;
const LSH_BUCKET = 64;
const LSH_HASHES = 2;
const ROUTING_LOCAL_HEADS = 1;

const VARIANTS = ['dense', 'local', 'routing', 'lsh'] as const;
type Variant = (typeof VARIANTS)[number];

interface Figures {
  /** Median forward + backward milliseconds. */
  ms: number;
  /** Peak bytes the pass held beyond its inputs (autograd's tensors, sampled after forward and after backward, plus native attention scratch). */
  mib: number;
}

/** The attention function of one variant at length T (its settings fixed once per T, as a model fixes them by block_size). */
function variantFn(variant: Variant, T: number, window: number): (q: Tensor, k: Tensor, v: Tensor, call: number) => Tensor {
  switch (variant) {
    case 'dense':
      return (q, k, v) => lm.attention(q, k, v, { causal: true });
    case 'local':
      return (q, k, v) => lm.attention(q, k, v, { causal: true, window });
    case 'routing': {
      const shape = routingShape(T, 0);
      const s: RoutingSettings = { heads: H, headDim: D, ...shape, localHeads: ROUTING_LOCAL_HEADS, window, ema: 0.999 };
      const centroids = lm.keep(randomCentroids(H - ROUTING_LOCAL_HEADS, shape.clusters, D, 7));
      return (q, k, v) => routingAttention(q, k, v, centroids, s, true);
    }
    case 'lsh': {
      const s: LshSettings = { heads: H, headDim: D, nHashes: LSH_HASHES, bucketSize: LSH_BUCKET, nBuckets: lshBucketCount(T, LSH_BUCKET), seed: 11 };
      return (q, _k, v, call) => lshAttention(q, v, s, 1000 + call);
    }
  }
}

/** Times forward + backward `reps` times (after one untimed call when warm is asked for). */
function measure(variant: Variant, T: number, window: number, reps: number, warm: boolean): Figures {
  const rng = new lm.Rng(T);
  const [q, k, v, gout] = [0, 1, 2, 3].map(() => lm.keep(lm.randn([B, H, T, D], rng, 1))) as [Tensor, Tensor, Tensor, Tensor];
  for (const t of [q, k, v]) lm.requireGrad(t);
  const fn = variantFn(variant, T, window);
  const times: number[] = [];
  let peak = 0;
  const once = (call: number, timed: boolean): void => {
    const live0 = lm.memory.liveBytes;
    const t0 = process.hrtime.bigint();
    lm.tidy(() => {
      const out = fn(q, k, v, call);
      const afterForward = lm.memory.liveBytes - live0 + attentionScratchBytes();
      lm.backward(out, gout);
      const afterBackward = lm.memory.liveBytes - live0 + attentionScratchBytes();
      if (timed) peak = Math.max(peak, afterForward, afterBackward);
    });
    if (timed) times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    for (const t of [q, k, v]) {
      t.grad?.dispose();
      t.grad = null;
    }
  };
  if (warm) once(0, false);
  for (let r = 0; r < reps; r++) once(r + 1, true);
  for (const t of [q, k, v, gout]) t.dispose();
  return { ms: median(times), mib: peak / 2 ** 20 };
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
  if (!loadNativeBackend().loaded) throw new Error('bench/attention-long: the native addon is not built (npm install)');
  const setThreads = loadAddon()['setThreads'];
  if (typeof setThreads !== 'function') throw new Error('bench/attention-long: the native addon has no setThreads()');
  (setThreads as (n: number) => void)(threads);
  const Ts: number[] = [];
  for (let T = 1024; T <= maxT; T *= 2) Ts.push(T);
  if (Ts.length === 0) throw new Error(`bench/attention-long: --max-T=${maxT} is below the first T (1024)`);
  console.log(`long-context attention, native ${attentionIsa()} kernels, ${threads} threads, B = ${B}, H = ${H}, D = ${D}, causal, forward + backward through autograd`);
  console.log(`CPU: ${cpuName()}`);
  console.log(`dense = fused causal attention; local = sliding window ${window}; routing = √T clusters of ⌈T/clusters⌉, ${ROUTING_LOCAL_HEADS} of ${H} heads local (window ${window}), EMA step included; lsh = ${LSH_HASHES} rounds, bucket size ${LSH_BUCKET} (T/${LSH_BUCKET} buckets, window ${2 * LSH_BUCKET - 1} per bucket)`);
  console.log('median ms; MiB = peak memory the pass holds beyond its inputs (autograd tensors + native attention scratch)');
  console.log(`${'T'.padStart(6)} | ${VARIANTS.map((v) => `${(v + ' ms').padStart(11)} ${'MiB'.padStart(7)}`).join(' | ')} | speedup over dense (local, routing, lsh)`);
  const ms: Record<Variant, number[]> = { dense: [], local: [], routing: [], lsh: [] };
  const mib: Record<Variant, number[]> = { dense: [], local: [], routing: [], lsh: [] };
  for (const [i, T] of Ts.entries()) {
    // Fewer repetitions where one call already takes seconds; the first shape warms the threads and caches. T = 8,192,
    // where the speedups are read, takes the median of 3 for every variant (single samples there varied by ±10%).
    const reps = T <= 2048 ? 5 : T <= 8192 ? 3 : 1;
    const cells: string[] = [];
    for (const v of VARIANTS) {
      const f = measure(v, T, window, v === 'dense' && T > 8192 ? 1 : reps, i === 0);
      ms[v].push(f.ms);
      mib[v].push(f.mib);
      cells.push(`${f.ms.toFixed(1).padStart(11)} ${f.mib.toFixed(1).padStart(7)}`);
    }
    const d = ms.dense[i]!;
    console.log(`${String(T).padStart(6)} | ${cells.join(' | ')} | ${(['local', 'routing', 'lsh'] as const).map((v) => `${(d / ms[v][i]!).toFixed(2)}×`).join(' ')}`);
  }
  const at8192 = Ts.indexOf(8192);
  const result = {
    T: Ts,
    ms: Object.fromEntries(VARIANTS.map((v) => [v, ms[v].map((x) => round(x, 2))])),
    peak_mib: Object.fromEntries(VARIANTS.map((v) => [v, mib[v].map((x) => round(x, 1))])),
    exponent: Object.fromEntries(VARIANTS.map((v) => [v, round(exponent(Ts, ms[v]), 3)])),
    speedup_8192: Object.fromEntries((['local', 'routing', 'lsh'] as const).map((v) => [v, at8192 >= 0 ? round(ms.dense[at8192]! / ms[v][at8192]!, 2) : null])),
  };
  console.log(`time ∝ T^k: ${VARIANTS.map((v) => `${v} k = ${result.exponent[v]}`).join(', ')}`);
  console.log(`RESULT ${JSON.stringify(result)}`);
}
