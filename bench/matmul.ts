// Benchmark `npm run bench -- matmul [--threads=2] [--rounds=5] [--trans] [--system-blas] [--quick]`: fp32 GFLOPS of
// lmforge's native matmul beside PyTorch's torch.mm, same shapes, same run, interleaved round by round so both
// sides see the same machine load. With `--bf16 [--all-kernels]`: lmforge's bf16 GEMM (nativeMatmulBf16, the kernel
// this CPU picks; --all-kernels adds a column per bf16 kernel the CPU runs) beside its fp32 GEMM, interleaved the same
// way, at the transformer shapes (the list below plus GPT-2-small's Linear shapes at batch 4 × block 256 rows); bar:
// bf16 ≥ 1.8× fp32 GFLOP/s at every shape. GFLOPS count 2·M·N·K either way (packing and conversion included in the
// time). Not a correctness test (test/core/native-gemm.test.ts, native-gemm-bf16.test.ts).
import { cpuName } from './_cpu.js';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { MatmulArgs } from '../src/core/kernels.js';
import { loadAddon } from '../src/core/native/addon.js';
import { bf16GemmKernel, gemmAddon, nativeMatmul, nativeMatmulBf16, type Bf16GemmKernel } from '../src/core/native/gemm.js';
import { Rng } from '../src/core/random.js';
import { PYTHON, torchEnv } from './_torch.js';
import { intFlag, median } from './_args.js';

interface Shape {
  label: string;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  /** The ratio to PyTorch this shape must reach. */
  bar: number;
}


function shapes(withTrans: boolean): Shape[] {
  const list: Shape[] = [];
  for (const n of [256, 512, 1024, 2048]) {
    list.push({ label: `square ${n}`, M: n, N: n, K: n, transA: false, transB: false, bar: n >= 512 ? 0.9 : 0 });
  }
  for (const C of [128, 384, 768]) {
    for (const M of [768, 16384]) {
      list.push({ label: `B·T=${M} C=${C} x·W`, M, N: 4 * C, K: C, transA: false, transB: false, bar: 1.0 });
      if (withTrans) {
        // The backward pass of y = x·W: dx = dy·Wᵀ and dW = xᵀ·dy.
        list.push({ label: `B·T=${M} C=${C} dy·Wᵀ`, M, N: C, K: 4 * C, transA: false, transB: true, bar: 0 });
        list.push({ label: `B·T=${M} C=${C} xᵀ·dy`, M: C, N: 4 * C, K: M, transA: true, transB: false, bar: 0 });
      }
    }
  }
  return list;
}

function randomArray(rng: Rng, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.normal();
  return x;
}

function operands(shape: Shape, rng: Rng): MatmulArgs<Float32Array> {
  const { M, N, K } = shape;
  return {
    a: randomArray(rng, M * K), aOffset: 0, b: randomArray(rng, K * N), bOffset: 0, c: new Float32Array(M * N),
    cOffset: 0, batch: 1, M, N, K, transA: shape.transA, transB: shape.transB, aBatchStride: 0, bBatchStride: 0,
    accumulate: false,
  };
}

/** Wall times (seconds) of `reps` calls after `warmup` untimed ones. */
function timeOurs(args: MatmulArgs<Float32Array>, reps: number, warmup: number, matmul = nativeMatmul): number[] {
  for (let i = 0; i < warmup; i++) matmul(args);
  const seconds: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    matmul(args);
    seconds.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return seconds;
}

/** The PyTorch timing server (bench/torch_matmul.py), or the reason it is unavailable. */
class Torch {
  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly lines: AsyncIterator<string>,
    readonly description: string,
  ) {}

  static async start(threads: number, systemBlas: boolean): Promise<Torch | string> {
    if (!existsSync(PYTHON)) return `${PYTHON} not found`;
    const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'torch_matmul.py');
    const child = spawn(PYTHON, [script, String(threads)], { env: torchEnv(threads, systemBlas), stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const reader: Interface = createInterface({ input: child.stdout });
    const lines = reader[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done) return `torch_matmul.py exited: ${stderr.trim() || 'no output'}`;
    const hello = JSON.parse(first.value) as { error?: string; torch?: string; threads?: number; blas?: string };
    if (hello.error) {
      child.kill();
      return hello.error;
    }
    return new Torch(child, lines, `torch ${hello.torch}, ${hello.threads} threads, BLAS ${hello.blas}`);
  }

  async time(shape: Shape, reps: number, warmup: number): Promise<number[]> {
    const { M, N, K, transA, transB } = shape;
    this.child.stdin.write(JSON.stringify({ M, N, K, transA, transB, reps, warmup }) + '\n');
    const line = await this.lines.next();
    if (line.done) throw new Error('bench/matmul: torch_matmul.py exited mid-run');
    return (JSON.parse(line.value) as { seconds: number[] }).seconds;
  }

  stop(): void {
    this.child.stdin.end();
  }
}

/** The --bf16 shapes: the x·W list of `shapes` and GPT-2-small's Linear layers at B·T = 4·256 rows (with --trans,
 * the backward products of each too). */
function bf16Shapes(withTrans: boolean): Shape[] {
  const list = shapes(false);
  const BT = 4 * 256;
  for (const [name, K, N] of [['attn qkv', 768, 2304], ['attn proj', 768, 768], ['mlp fc', 768, 3072], ['mlp proj', 3072, 768]] as const) {
    list.push({ label: `GPT-2 ${name} x·W`, M: BT, N, K, transA: false, transB: false, bar: 1.8 });
  }
  if (!withTrans) return list;
  const backward: Shape[] = [];
  for (const s of list) {
    const base = s.label.replace(/ x·W$/, '');
    backward.push({ label: `${base} dy·Wᵀ`, M: s.M, N: s.K, K: s.N, transA: false, transB: true, bar: 1.8 });
    backward.push({ label: `${base} xᵀ·dy`, M: s.K, N: s.N, K: s.M, transA: true, transB: false, bar: 1.8 });
  }
  return [...list, ...backward];
}

/** `--bf16`: fp32 and bf16 GEMM side by side, interleaved round by round. */
function runBf16(args: string[]): void {
  const threads = intFlag('matmul', args, 'threads', 2);
  const rounds = intFlag('matmul', args, 'rounds', 5);
  const quick = args.includes('--quick');
  const bar = 1.8;
  loadAddon().setThreads(threads);
  const addon = gemmAddon();
  const kernel = bf16GemmKernel();
  const extra: Bf16GemmKernel[] = args.includes('--all-kernels') ? addon.gemmBf16Kernels().filter((k) => k !== 'fp32' && k !== kernel) : [];
  console.log(`CPU: ${cpuName()}`);
  console.log(`lmforge fp32: ${addon.gemmIsa()} micro-kernel; bf16: ${kernel} kernel${extra.length ? ` (also timed: ${extra.join(', ')})` : ''}; ${threads} threads`);
  if (kernel === 'fp32') console.log('this CPU has no bf16 GEMM kernel: the bf16 column is the fp32 fallback');
  console.log(`GFLOPS = 2·M·N·K / median time; ${rounds} interleaved rounds, each the median of its reps; bar: bf16 ≥ ${bar}× fp32\n`);
  const rng = new Rng(7);
  const header = ['shape', 'M', 'N', 'K', 'fp32', `bf16 (${kernel})`, 'ratio', 'bar', ...extra.map((k) => `${k} (ratio)`)];
  const rows: string[][] = [header];
  let missed = 0;
  const result = {
    shapes: [] as [number, number, number][], gflops_fp32: [] as number[], gflops_bf16: [] as number[],
    ...(extra.length ? { gflops_bf16_other: Object.fromEntries(extra.map((k) => [k, [] as number[]])) } : {}),
  };
  for (const shape of bf16Shapes(args.includes('--trans'))) {
    const flops = 2 * shape.M * shape.N * shape.K;
    const reps = quick ? 3 : Math.max(3, Math.min(25, Math.round(0.1 / (flops / 200e9))));
    const mm = operands(shape, rng);
    const times = new Map<string, number[]>([['fp32', []], [kernel, []], ...extra.map((k): [string, number[]] => [k, []])]);
    for (let r = 0; r < rounds; r++) {
      times.get('fp32')!.push(median(timeOurs(mm, reps, 2)));
      for (const k of [kernel, ...extra]) {
        addon.gemmBf16Kernel(k);
        times.get(k)!.push(median(timeOurs(mm, reps, 2, nativeMatmulBf16)));
      }
      addon.gemmBf16Kernel(kernel);
    }
    const gflops = (k: string): number => flops / median(times.get(k)!) / 1e9;
    const g32 = gflops('fp32');
    const g16 = gflops(kernel);
    const ratio = g16 / g32;
    if (ratio < bar) missed++;
    const row = [shape.label, String(shape.M), String(shape.N), String(shape.K), g32.toFixed(1), g16.toFixed(1),
      ratio.toFixed(2) + '×', ratio >= bar ? `≥${bar} ok` : `<${bar} MISSED`,
      ...extra.map((k) => `${gflops(k).toFixed(1)} (${(gflops(k) / g32).toFixed(2)}×)`)];
    rows.push(row);
    console.log(row.join('  '));
    result.shapes.push([shape.M, shape.N, shape.K]);
    result.gflops_fp32.push(Number(g32.toFixed(2)));
    result.gflops_bf16.push(Number(g16.toFixed(2)));
    for (const k of extra) result.gflops_bf16_other?.[k]?.push(Number(gflops(k).toFixed(2)));
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  console.log('\n' + rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')).join('\n'));
  const ratios = result.gflops_bf16.map((g, i) => g / result.gflops_fp32[i]!);
  const minRatio = Math.min(...ratios);
  console.log(missed ? `\n${missed} shape(s) below ${bar}× (least ${minRatio.toFixed(2)}×)` : `\nevery shape meets ${bar}× (least ${minRatio.toFixed(2)}×)`);
  console.log(`RESULT ${JSON.stringify({ cpu: cpuName(), threads, bf16_kernel: kernel, ...result, min_ratio: Number(minRatio.toFixed(3)), shapes_below_bar: missed })}`);
}

export async function run(args: string[]): Promise<void> {
  if (args.includes('--bf16')) return runBf16(args);
  const threads = intFlag('matmul', args, 'threads', 2);
  const rounds = intFlag('matmul', args, 'rounds', 5);
  const quick = args.includes('--quick');
  loadAddon().setThreads(threads);
  const torch = await Torch.start(threads, args.includes('--system-blas'));
  console.log(`lmforge: ${gemmAddon().gemmIsa()} micro-kernel, ${threads} threads`);
  console.log(typeof torch === 'string' ? `PyTorch comparison skipped: ${torch}` : `PyTorch: ${torch.description}`);
  console.log(`GFLOPS = 2·M·N·K / median time; ${rounds} interleaved rounds, each the median of its reps\n`);
  const rng = new Rng(7);
  const rows: string[][] = [['shape', 'M', 'N', 'K', 'lmforge', 'torch', 'ratio', 'bar']];
  let missed = 0;
  const result: { shapes: [number, number, number][]; gflops: number[]; gflops_torch: (number | null)[] } = { shapes: [], gflops: [], gflops_torch: [] };
  for (const shape of shapes(args.includes('--trans'))) {
    const flops = 2 * shape.M * shape.N * shape.K;
    // Enough reps for ~0.1 s per side per round (at ~200 GFLOPS), at least 3: short rounds, alternating sides,
    // so that both see the same load on a shared machine.
    const reps = quick ? 3 : Math.max(3, Math.min(25, Math.round(0.1 / (flops / 200e9))));
    const args = operands(shape, rng);
    const ours: number[] = [];
    const theirs: number[] = [];
    for (let r = 0; r < rounds; r++) {
      ours.push(median(timeOurs(args, reps, 2)));
      if (typeof torch !== 'string') theirs.push(median(await torch.time(shape, reps, 2)));
    }
    const g = flops / median(ours) / 1e9;
    const t = theirs.length ? flops / median(theirs) / 1e9 : NaN;
    const ratio = g / t;
    const verdict = shape.bar === 0 || Number.isNaN(ratio) ? '' : ratio >= shape.bar ? `≥${shape.bar} ok` : `<${shape.bar} MISSED`;
    if (verdict.endsWith('MISSED')) missed++;
    const row = [shape.label, String(shape.M), String(shape.N), String(shape.K), g.toFixed(1),
      Number.isNaN(t) ? '-' : t.toFixed(1), Number.isNaN(ratio) ? '-' : ratio.toFixed(2) + '×', verdict];
    rows.push(row);
    console.log(row.join('  '));
    result.shapes.push([shape.M, shape.N, shape.K]);
    result.gflops.push(Number(g.toFixed(2)));
    result.gflops_torch.push(Number.isNaN(t) ? null : Number(t.toFixed(2)));
  }
  if (typeof torch !== 'string') torch.stop();
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  console.log('\n' + rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')).join('\n'));
  if (typeof torch !== 'string') console.log(missed ? `\n${missed} shape(s) below their bar` : '\nevery shape meets its bar');
  console.log(`RESULT ${JSON.stringify({ cpu: cpuName(), threads, ...result, shapes_below_bar: missed })}`);
}
