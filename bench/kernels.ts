// Benchmark: the native non-GEMM kernels (GELU, broadcast add, softmax, layernorm, cross-entropy, AdamW) beside
// PyTorch's eager equivalents (bench/kernels_torch.py) on the same shapes, in the same run, 2 threads each.
// Prints milliseconds (medians), our effective bandwidth (minimum bytes each kernel must move / time) and the
// ratio torch/ours. Not a test: it prints figures. The PyTorch side is skipped cleanly when torch is missing.
// Usage: npm run bench -- kernels [--reps=N] [--rounds=N] [--threads=N (default 2)]
import { cpuName } from './_cpu.js';
import { spawnSync } from 'node:child_process';
import { torchEnv } from './_torch.js';
import { fileURLToPath } from 'node:url';
import { loadAddon } from '../src/core/native/addon.js';
import { nativeMisc as K, nativeSimdLevel } from '../src/core/native/misc.js';
import { Rng } from '../src/core/random.js';
import { intFlag, median } from './_args.js';

const TORCH_SCRIPT = fileURLToPath(new URL('../../bench/kernels_torch.py', import.meta.url));

interface Case {
  /** Case name as kernels_torch.py knows it, with its dims. */
  torch: string;
  label: string;
  /** Minimum bytes read + written by one call (for GB/s). */
  bytes: number;
  /** Elements processed by one call (for elements/s). */
  elems: number;
  /** One call of ours, on inputs prepared once. */
  run: () => void;
}

function randn(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * (rng.uniform() * 2 - 1) * 1.7;
  return a;
}

function cases(): Case[] {
  const out: Case[] = [];
  {
    const n = 8 << 20;
    const x = randn(n, 1, 2);
    const y = new Float32Array(n);
    out.push({ torch: `gelu:${n}`, label: `gelu (erf) n=${n}`, bytes: 8 * n, elems: n, run: () => K.unary('gelu', x, y, n, 0) });
    out.push({ torch: `gelu_tanh:${n}`, label: `gelu_tanh n=${n}`, bytes: 8 * n, elems: n, run: () => K.unary('gelu_tanh', x, y, n, 0) });
  }
  {
    const [R, C] = [16384, 768];
    const a = randn(R * C, 2);
    const b = randn(C, 3);
    const o = new Float32Array(R * C);
    const A = { data: a, offset: 0, strides: [C, 1] };
    const B = { data: b, offset: 0, strides: [0, 1] };
    out.push({ torch: `add_row:${R},${C}`, label: `add (${R},${C}) + (${C})`, bytes: 8 * R * C, elems: R * C, run: () => K.binary('add', A, B, o, [R, C]) });
  }
  {
    const [R, C] = [8192, 1024];
    const x = randn(R * C, 4, 3);
    const y = new Float32Array(R * C);
    const gy = randn(R * C, 5);
    const gx = new Float32Array(R * C);
    K.softmax(x, y, R, C, false);
    out.push({ torch: `softmax:${R},${C}`, label: `softmax fwd (${R},${C})`, bytes: 8 * R * C, elems: R * C, run: () => K.softmax(x, y, R, C, false) });
    out.push({ torch: `softmax_bwd:${R},${C}`, label: `softmax bwd (${R},${C})`, bytes: 12 * R * C, elems: R * C, run: () => K.softmaxBackward(y, gy, gx, R, C, false) });
  }
  {
    const [R, C] = [16384, 768];
    const x = randn(R * C, 6);
    const w = randn(C, 7);
    const b = randn(C, 8);
    const y = new Float32Array(R * C);
    const mean = new Float32Array(R);
    const rstd = new Float32Array(R);
    const gy = randn(R * C, 9);
    const gx = new Float32Array(R * C);
    const gw = new Float32Array(C);
    const gb = new Float32Array(C);
    K.layernorm(x, w, b, y, mean, rstd, R, C, 1e-5);
    out.push({ torch: `layernorm:${R},${C}`, label: `layernorm fwd (${R},${C})`, bytes: 8 * R * C, elems: R * C, run: () => K.layernorm(x, w, b, y, mean, rstd, R, C, 1e-5) });
    out.push({ torch: `layernorm_bwd:${R},${C}`, label: `layernorm bwd (${R},${C})`, bytes: 12 * R * C, elems: R * C, run: () => K.layernormBackward(x, w, mean, rstd, gy, gx, gw, gb, R, C) });
  }
  for (const [N, V] of [[65536, 65], [256, 50304]] as const) {
    const logits = randn(N * V, 10, 2);
    const rng = new Rng(11);
    const targets = Int32Array.from({ length: N }, () => rng.int(V));
    const losses = new Float32Array(N);
    const lse = new Float32Array(N);
    const gLoss = new Float32Array(N).fill(1);
    const g = new Float32Array(N * V);
    K.crossEntropy(logits, targets, losses, lse, N, V, -100);
    out.push({ torch: `ce:${N},${V}`, label: `cross-entropy fwd N=${N} V=${V}`, bytes: 4 * N * V, elems: N * V, run: () => K.crossEntropy(logits, targets, losses, lse, N, V, -100) });
    out.push({ torch: `ce_bwd:${N},${V}`, label: `cross-entropy bwd N=${N} V=${V}`, bytes: 8 * N * V, elems: N * V, run: () => K.crossEntropyBackward(logits, targets, lse, gLoss, g, N, V, -100) });
  }
  {
    const n = 10_000_000;
    const param = randn(n, 12, 0.02);
    const grad = randn(n, 13, 1e-3);
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    let step = 0;
    out.push({
      torch: `adamw:${n}`, label: `adamw ${n / 1e6}M params`, bytes: 28 * n, elems: n,
      run: () => K.adamw({ param, grad, m, v, lr: 3e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: ++step, gradScale: 1 }),
    });
  }
  return out;
}

interface Times {
  ms: number[];
  /** Process CPU time (user + system, all threads) per call: less sensitive to being descheduled on a busy machine. */
  cpuMs: number[];
}

function timeOurs(c: Case, reps: number, into: Times): void {
  c.run(); // warm-up
  for (let r = 0; r < reps; r++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    c.run();
    into.ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const c1 = process.cpuUsage(c0);
    into.cpuMs.push((c1.user + c1.system) / 1e3);
  }
}

/** One torch process timing every case; the reason instead when torch is not importable. */
function timeTorch(list: Case[], reps: number, threads: number): { times: Times[]; version: string } | { skipped: string } {
  const res = spawnSync('/usr/bin/python3', [TORCH_SCRIPT, String(threads), String(reps), ...list.map((c) => c.torch)], {
    encoding: 'utf8', timeout: 900_000, env: torchEnv(threads),
  });
  if (res.status !== 0) {
    const why = (res.stderr || res.error?.message || `exit ${res.status}`).trim().split('\n').pop() ?? '';
    return { skipped: why };
  }
  const lines = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as Times & { torch: string });
  return { times: lines.map((l) => ({ ms: l.ms, cpuMs: l.cpuMs })), version: lines[0]?.torch ?? '?' };
}

export async function run(args: string[]): Promise<void> {
  const reps = intFlag('kernels', args, 'reps', 7);
  const rounds = intFlag('kernels', args, 'rounds', 3);
  const threads = intFlag('kernels', args, 'threads', 2);
  const setThreads = loadAddon()['setThreads'];
  if (typeof setThreads !== 'function') throw new Error('bench/kernels: the native addon has no setThreads()');
  (setThreads as (n: number) => void)(threads);
  console.log(`native kernels (${nativeSimdLevel()}) vs PyTorch eager, ${threads} threads each, ${rounds} rounds × ${reps} reps per side`);
  console.log('(rounds alternate sides). GB/s and Gelem/s from our median; GB/s counts the minimum bytes the kernel must read + write.\n');

  const list = cases();
  const ours: Times[] = list.map(() => ({ ms: [], cpuMs: [] }));
  const theirs: Times[] = list.map(() => ({ ms: [], cpuMs: [] }));
  let skipped: string | null = null;
  let version = '';
  for (let round = 0; round < rounds; round++) {
    if (skipped === null) {
      const t = timeTorch(list, reps, threads);
      if ('skipped' in t) skipped = t.skipped;
      else {
        version = t.version;
        t.times.forEach((x, i) => {
          theirs[i]!.ms.push(...x.ms);
          theirs[i]!.cpuMs.push(...x.cpuMs);
        });
      }
    }
    list.forEach((c, i) => timeOurs(c, reps, ours[i]!));
  }

  // Wall-clock medians are the headline; the best (minimum) wall times and the median CPU times (all threads)
  // are printed too because the machine is shared and a descheduled thread stretches a whole parallel call.
  const header = ['kernel', 'ours ms', 'GB/s', 'Gelem/s', 'torch ms', 'torch/ours', 'best ours', 'best torch', 'ratio', 'cpu ours', 'cpu torch', 'ratio'];
  const ratio = (t: number, o: number): string => `${(t / o).toFixed(2)}×`;
  const rows = list.map((c, i) => {
    const o = median(ours[i]!.ms);
    const ob = Math.min(...ours[i]!.ms);
    const oc = median(ours[i]!.cpuMs);
    const have = theirs[i]!.ms.length > 0;
    const t = have ? median(theirs[i]!.ms) : NaN;
    const tb = have ? Math.min(...theirs[i]!.ms) : NaN;
    const tc = have ? median(theirs[i]!.cpuMs) : NaN;
    return [
      c.label, o.toFixed(2), (c.bytes / o / 1e6).toFixed(1), (c.elems / o / 1e6).toFixed(2),
      have ? t.toFixed(2) : 'skipped', have ? ratio(t, o) : '-',
      ob.toFixed(2), have ? tb.toFixed(2) : '-', have ? ratio(tb, ob) : '-',
      oc.toFixed(2), have ? tc.toFixed(2) : '-', have ? ratio(tc, oc) : '-',
    ];
  });
  const widths = header.map((h, col) => Math.max(h.length, ...rows.map((r) => r[col]!.length)));
  const line = (r: string[]): string => r.map((x, col) => (col === 0 ? x.padEnd(widths[col]!) : x.padStart(widths[col]!))).join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  if (skipped !== null) console.log(`\nPyTorch comparison skipped: ${skipped}`);
  else {
    console.log(`\nPyTorch ${version} via /usr/bin/python3 (torch.set_num_threads(${threads})); torch/ours > 1 means ours is faster.`);
    console.log('Both sides write preallocated outputs (PyTorch through ATen out= variants); PyTorch cross-entropy is');
    console.log('log_softmax + nll_loss and its backward, AdamW is torch.optim.AdamW.step (no fused CPU AdamW in 1.13).');
  }
  const kernels = Object.fromEntries(list.map((c, i) => {
    const t = theirs[i]!.ms.length > 0 ? median(theirs[i]!.ms) : null;
    return [c.label, { ms: median(ours[i]!.ms), torch_ms: t }];
  }));
  console.log(`RESULT ${JSON.stringify({ cpu: cpuName(), threads, kernels })}`);
}
