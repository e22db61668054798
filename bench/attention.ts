// Benchmark: native fused causal attention, forward + backward, beside PyTorch's eager manual attention
// (bench/attention_torch.py) on the same shapes, in the same run, 2 threads each; plus the scratch memory the
// native kernels allocate as T grows (it must stay O(T·D), never O(T²)). Not a test: it prints figures.
// Usage: npm run bench -- attention [--reps=N] [--rounds=N] [--threads=N (default 2)] [--dropout=P (ours only, default 0)]
import { cpuName } from './_cpu.js';
import { spawnSync } from 'node:child_process';
import { torchEnv } from './_torch.js';
import { fileURLToPath } from 'node:url';
import type { AttentionBackwardArgs, StridedArg } from '../src/core/kernels.js';
import { loadAddon } from '../src/core/native/addon.js';
import { attentionIsa, attentionScratchBytes, nativeAttention } from '../src/core/native/attention.js';
import { Rng } from '../src/core/random.js';
import { intFlag, median } from './_args.js';

const SHAPES: [number, number, number, number][] = [[12, 4, 64, 32], [64, 6, 256, 64]];
const TORCH_SCRIPT = fileURLToPath(new URL('../../bench/attention_torch.py', import.meta.url));

/** --dropout=P: attention-probability dropout of our kernels, in [0, 1) (torch's side always runs without). */
function dropoutFlag(args: string[]): number {
  const hit = args.find((a) => a.startsWith('--dropout='));
  const p = hit ? Number(hit.slice('--dropout='.length)) : 0;
  if (!(p >= 0 && p < 1)) throw new Error(`bench/attention: --dropout expects a probability in [0, 1), got ${hit}`);
  return p;
}

/** One causal (B, H, T, D) problem with random q, k, v and upstream gradient (window 0 = dense); attention-long uses it too. */
export function problem(B: number, H: number, T: number, D: number, seed: number, dropout = 0, window = 0): AttentionBackwardArgs<Float32Array> {
  const rng = new Rng(seed);
  const n = B * H * T * D;
  const view = (random: boolean): StridedArg<Float32Array> => {
    const data = new Float32Array(n);
    if (random) for (let i = 0; i < n; i++) data[i] = rng.normal();
    return { data, offset: 0, strides: [H * T * D, T * D, D] };
  };
  return {
    q: view(true), k: view(true), v: view(true), out: view(false), lse: new Float32Array(B * H * T), mask: null,
    B, H, Tq: T, Tk: T, D, scale: 1 / Math.sqrt(D), causal: true, dropout, dropoutSeed: 1, ...(window > 0 ? { window } : {}),
    gout: view(true), gq: view(false), gk: view(false), gv: view(false),
  };
}

interface Ours { total: number[]; fwd: number[]; bwd: number[]; scratchFwd: number; scratchBwd: number }

function timeOurs(args: AttentionBackwardArgs<Float32Array>, reps: number, into: Ours): void {
  nativeAttention.attention(args);
  nativeAttention.attentionBackward(args);  // warm-up
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    nativeAttention.attention(args);
    const t1 = process.hrtime.bigint();
    into.scratchFwd = attentionScratchBytes();
    nativeAttention.attentionBackward(args);
    const t2 = process.hrtime.bigint();
    into.scratchBwd = attentionScratchBytes();
    into.fwd.push(Number(t1 - t0) / 1e6);
    into.bwd.push(Number(t2 - t1) / 1e6);
    into.total.push(Number(t2 - t0) / 1e6);
  }
}

/** One torch process timing every shape; null (with the reason) when torch is not importable. */
function timeTorch(reps: number, threads: number): { ms: number[][]; version: string } | { skipped: string } {
  const res = spawnSync('/usr/bin/python3', [TORCH_SCRIPT, String(threads), String(reps), ...SHAPES.map((s) => s.join(','))], {
    encoding: 'utf8', timeout: 600_000, env: torchEnv(threads),
  });
  if (res.status !== 0) {
    const why = (res.stderr || res.error?.message || `exit ${res.status}`).trim().split('\n').pop() ?? '';
    return { skipped: why };
  }
  const lines = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as { ms: number[]; torch: string });
  return { ms: lines.map((l) => l.ms), version: lines[0]?.torch ?? '?' };
}

const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(2)} MiB`;

export async function run(args: string[]): Promise<void> {
  const reps = intFlag('attention', args, 'reps', 3);
  const rounds = intFlag('attention', args, 'rounds', 3);
  const threads = intFlag('attention', args, 'threads', 2);
  const dropout = dropoutFlag(args);
  const setThreads = loadAddon()['setThreads'];
  if (typeof setThreads !== 'function') throw new Error('bench/attention: the native addon has no setThreads()');
  (setThreads as (n: number) => void)(threads);
  console.log(`native attention (${attentionIsa()}) vs PyTorch eager manual causal attention, ${threads} threads each,`);
  console.log(`forward + backward, ${rounds} rounds × ${reps} reps per side (rounds alternate sides), medians`);
  console.log(`attention dropout of ours: ${dropout}\n`);

  const ours: Ours[] = SHAPES.map(() => ({ total: [], fwd: [], bwd: [], scratchFwd: 0, scratchBwd: 0 }));
  const theirs: number[][] = SHAPES.map(() => []);
  let skipped: string | null = null;
  let version = '';
  const problems = SHAPES.map(([B, H, T, D], i) => problem(B, H, T, D, i + 1, dropout));
  for (let round = 0; round < rounds; round++) {
    if (skipped === null) {
      const t = timeTorch(reps, threads);
      if ('skipped' in t) skipped = t.skipped;
      else {
        version = t.version;
        t.ms.forEach((ms, i) => theirs[i]!.push(...ms));
      }
    }
    problems.forEach((p, i) => timeOurs(p, reps, ours[i]!));
  }

  const header = ['shape (B, H, T, hs)', 'ours fwd ms', 'ours bwd ms', 'ours f+b ms', 'torch f+b ms', 'speedup'];
  const rows = SHAPES.map((s, i) => {
    const o = ours[i]!;
    const t = theirs[i]!;
    const ot = median(o.total);
    return [
      `(${s.join(', ')})`, median(o.fwd).toFixed(2), median(o.bwd).toFixed(2), ot.toFixed(2),
      t.length ? median(t).toFixed(2) : 'skipped', t.length ? `${(median(t) / ot).toFixed(2)}×` : '-',
    ];
  });
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (r: string[]): string => r.map((x, c) => x.padStart(widths[c]!)).join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  if (skipped !== null) console.log(`\nPyTorch comparison skipped: ${skipped}`);
  else console.log(`\nPyTorch ${version} via /usr/bin/python3; speedup = torch median / ours median`);

  console.log('\nmemory of ours: scratch the kernels allocate (all threads) vs one fp32 (T, T) score matrix per head');
  SHAPES.forEach((s, i) => {
    console.log(`  (${s.join(', ')}): forward ${mb(ours[i]!.scratchFwd)}, backward ${mb(ours[i]!.scratchBwd)}`);
  });
  const scaling = [256, 1024, 4096].map((T) => {
    const p = problem(1, 2, T, 64, 7);
    nativeAttention.attention(p);
    const f = attentionScratchBytes();
    nativeAttention.attentionBackward(p);
    return `  (1, 2, ${T}, 64): forward ${mb(f)}, backward ${mb(attentionScratchBytes())}, one (T, T) matrix ${mb(T * T * 4)}`;
  });
  for (const s of scaling) console.log(s);
  console.log(`  process peak RSS (inputs, outputs and Node included): ${mb(process.resourceUsage().maxRSS * 1024)}`);
  const result = {
    cpu: cpuName(), threads, dropout, shapes: SHAPES,
    ms: SHAPES.map((_, i) => Number(median(ours[i]!.total).toFixed(3))),
    torch_ms: SHAPES.map((_, i) => (theirs[i]!.length ? Number(median(theirs[i]!).toFixed(3)) : null)),
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
}
