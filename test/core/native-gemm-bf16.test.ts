// Native bf16 GEMM (native/src/gemm_bf16.cc through core/native/gemm.ts): every kernel this CPU runs against a
// float64 triple loop over the bf16-rounded inputs (products are exact, so only fp32 accumulation error is allowed)
// and against the fp32 GEMM within bf16's rounding; every transpose, odd sizes around the tiles and K blocks, batch
// strides, thread-count independence, the fp32 fallback (by name and by LMFORGE_BF16_GEMM), argument validation.
// Not a benchmark (bench/matmul.ts --bf16).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { MatmulArgs } from '../../src/core/kernels.js';
import { loadAddon, type NativeAddon } from '../../src/core/native/addon.js';
import type { Bf16GemmKernel, GemmAddon } from '../../src/core/native/gemm.js';
import { bf16GemmKernel, nativeMatmul, nativeMatmulBf16 } from '../../src/core/native/gemm.js';
import { Rng } from '../../src/core/random.js';

const addon = loadAddon() as unknown as GemmAddon & NativeAddon;
// Exercise the threaded paths even when a busy machine would make the kernel fall back to one thread.
addon.gemmAdaptiveThreads(false);
const defaultKernel = bf16GemmKernel();
const defaultThreads = addon.cpuInfo().threads;
/** The bf16 kernels proper (not the fp32 fallback) this CPU runs. */
const kernels = addon.gemmBf16Kernels().filter((k) => k !== 'fp32');

/** Runs f with each bf16 kernel selected in turn, restoring the default after. */
function forEachKernel(f: (kernel: Bf16GemmKernel) => void): void {
  try {
    for (const k of kernels) {
      addon.gemmBf16Kernel(k);
      f(k);
    }
  } finally {
    addon.gemmBf16Kernel(defaultKernel);
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** x rounded to bf16 (nearest, ties to even), as a number. */
function bf16(x: number): number {
  f32[0] = x;
  if (Number.isNaN(f32[0])) return f32[0];
  const u = u32[0]!;
  u32[0] = (u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000;
  return f32[0];
}

function randomArray(rng: Rng, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.uniform() * 2 - 1;
  return x;
}

/** C (+)= op(A)·op(B) in float64 over round(A), round(B), and Σ|a·b| per output element. */
function reference(args: MatmulArgs<Float32Array>, c0: Float32Array, round: (x: number) => number): { c: Float64Array; scale: Float64Array } {
  const { batch, M, N, K, transA, transB, aBatchStride, bBatchStride } = args;
  const a = Float64Array.from(args.a, round);
  const b = Float64Array.from(args.b, round);
  const c = new Float64Array(batch * M * N);
  const scale = new Float64Array(batch * M * N);
  for (let p = 0; p < batch; p++) {
    const ao = args.aOffset + p * aBatchStride;
    const bo = args.bOffset + p * bBatchStride;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        let abs = 0;
        for (let k = 0; k < K; k++) {
          const x = a[ao + (transA ? k * M + i : i * K + k)]!;
          const y = b[bo + (transB ? j * K + k : k * N + j)]!;
          s += x * y;
          abs += Math.abs(x * y);
        }
        const o = (p * M + i) * N + j;
        c[o] = (args.accumulate ? c0[args.cOffset + o]! : 0) + s;
        scale[o] = abs + (args.accumulate ? Math.abs(c0[args.cOffset + o]!) : 0);
      }
    }
  }
  return { c, scale };
}

interface Case {
  M: number;
  N: number;
  K: number;
  batch?: number;
  /** Extra elements between batch matrices (-1: broadcast with stride 0). */
  aGap?: number;
  bGap?: number;
  offsets?: boolean;
  accumulate?: boolean;
}

function operands(rng: Rng, cs: Case, transA: boolean, transB: boolean): MatmulArgs<Float32Array> {
  const { M, N, K } = cs;
  const batch = cs.batch ?? 1;
  const aStride = cs.aGap === -1 ? 0 : M * K + (cs.aGap ?? 0);
  const bStride = cs.bGap === -1 ? 0 : K * N + (cs.bGap ?? 0);
  const aOffset = cs.offsets ? 3 : 0;
  const bOffset = cs.offsets ? 5 : 0;
  const cOffset = cs.offsets ? 7 : 0;
  return {
    a: randomArray(rng, aOffset + (batch - 1) * aStride + M * K + 2), aOffset,
    b: randomArray(rng, bOffset + (batch - 1) * bStride + K * N + 2), bOffset,
    c: randomArray(rng, cOffset + batch * M * N + 3), cOffset, batch, M, N, K, transA, transB,
    aBatchStride: aStride, bBatchStride: bStride, accumulate: cs.accumulate ?? false,
  };
}

/**
 * Runs one case through nativeMatmulBf16 and checks it element by element against the float64 loop over the
 * bf16-rounded inputs: fp32 accumulation of exact products, so |error| ≤ (K + 2)·2⁻²⁴·Σ|a·b|.
 */
function check(rng: Rng, cs: Case, transA: boolean, transB: boolean, label: string): void {
  const args = operands(rng, cs, transA, transB);
  const { c, cOffset, batch, M, N, K } = args;
  const c0 = c.slice();
  const want = reference(args, c0, bf16);
  nativeMatmulBf16(args);
  const where = `${label} ${JSON.stringify(cs)} transA=${transA} transB=${transB}`;
  const tol = (K + 2) * 2 ** -24;
  for (let o = 0; o < batch * M * N; o++) {
    const got = c[cOffset + o]!;
    const err = Math.abs(got - want.c[o]!);
    if (!(err <= tol * want.scale[o]! + 1e-30)) {
      assert.fail(`${where}: element ${o} is ${got}, expected ${want.c[o]} (error ${err}, scale ${want.scale[o]})`);
    }
  }
  for (let o = 0; o < cOffset; o++) assert.equal(c[o], c0[o], `${where}: wrote before cOffset`);
  for (let o = cOffset + batch * M * N; o < c.length; o++) assert.equal(c[o], c0[o], `${where}: wrote past C`);
}

// Odd sizes around the micro-tiles (12 or 32 rows, 32 columns), K pairs and 32-k blocks (K odd), the K blocks
// (512 / 1024) and row blocks (192 / 256).
const shapes: Case[] = [
  { M: 1, N: 1, K: 1 }, { M: 1, N: 7, K: 17 }, { M: 7, N: 1, K: 33 }, { M: 13, N: 33, K: 7 }, { M: 33, N: 17, K: 65 },
  { M: 65, N: 127, K: 31 }, { M: 127, N: 65, K: 129 }, { M: 12, N: 32, K: 32 }, { M: 13, N: 45, K: 1061 },
  { M: 300, N: 70, K: 97 }, { M: 30, N: 260, K: 5 }, { M: 200, N: 96, K: 515 }, { M: 64, N: 64, K: 1100 },
];
const combos: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];

test('this CPU has the bf16 GEMM kernels its CPUID flags promise, and the list ends with the fp32 fallback', () => {
  const list = addon.gemmBf16Kernels();
  assert.equal(list[list.length - 1], 'fp32');
  assert.equal(defaultKernel, list[0]);
  let flags: string;
  try {
    flags = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return;  // not Linux: nothing to compare with
  }
  if (/\bavx512_bf16\b/.test(flags) && /\bavx512bw\b/.test(flags)) assert.ok(list.includes('avx512bf16'), list.join());
});

test('bf16 matmul equals a float64 loop over bf16-rounded inputs up to fp32 accumulation, every transpose, every kernel', () => {
  const rng = new Rng(11);
  forEachKernel((k) => {
    for (const [ta, tb] of combos) for (const cs of shapes) check(rng, cs, ta, tb, k);
  });
});

test('bf16 matmul is within bf16 rounding of the fp32 GEMM (|error| ≤ 2⁻⁷·Σ|a·b|), and not equal to it', () => {
  const rng = new Rng(12);
  forEachKernel((k) => {
    for (const [ta, tb] of combos) {
      const args = operands(rng, { M: 70, N: 90, K: 300 }, ta, tb);
      const ours = { ...args, c: args.c.slice() };
      const theirs = { ...args, c: args.c.slice() };
      nativeMatmulBf16(ours);
      nativeMatmul(theirs);
      const scale = reference(args, args.c, (x) => x).scale;
      let differ = 0;
      for (let o = 0; o < scale.length; o++) {
        const err = Math.abs(ours.c[o]! - theirs.c[o]!);
        if (!(err <= 2 ** -7 * scale[o]!)) assert.fail(`${k} transA=${ta} transB=${tb}: element ${o} ${ours.c[o]} vs fp32 ${theirs.c[o]}`);
        if (err > 0) differ++;
      }
      assert.ok(differ > scale.length / 2, `${k}: only ${differ} of ${scale.length} elements differ from fp32 (inputs not rounded?)`);
    }
  });
});

test('bf16 rounding is to nearest with ties to even', () => {
  // 1 + 2⁻⁸ lies halfway between bf16 1 and 1 + 2⁻⁷ (ties to 1); 1 + 3·2⁻⁸ between 1 + 2⁻⁷ and 1 + 2⁻⁶ (ties to
  // 1 + 2⁻⁶); 1 + 2⁻⁸ + 2⁻²⁰ is above the tie (1 + 2⁻⁷). Times B = 1 in one column.
  const values = [1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -(1 + 2 ** -8 + 2 ** -20)];
  const expected = [1, 1 + 2 ** -6, 1 + 2 ** -7, -(1 + 2 ** -7)];
  forEachKernel((k) => {
    const c = new Float32Array(values.length);
    nativeMatmulBf16({
      a: Float32Array.from(values), aOffset: 0, b: Float32Array.of(1), bOffset: 0, c, cOffset: 0, batch: 1,
      M: values.length, N: 1, K: 1, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0, accumulate: false,
    });
    assert.deepEqual(Array.from(c), expected, k);
  });
});

test('bf16 matmul handles batch strides, broadcast (stride 0), offsets and accumulate', () => {
  const rng = new Rng(13);
  const cases: Case[] = [
    { M: 5, N: 9, K: 11, batch: 4, aGap: 3, bGap: 0, offsets: true, accumulate: true },
    { M: 32, N: 32, K: 32, batch: 6, aGap: 0, bGap: -1, offsets: true },
    { M: 64, N: 40, K: 64, batch: 3, aGap: -1, bGap: 7, accumulate: true },
    { M: 100, N: 140, K: 90, batch: 2, aGap: 1, bGap: -1, offsets: true, accumulate: true },
    { M: 7, N: 17, K: 1, batch: 9, aGap: 2, bGap: 2, accumulate: true },
  ];
  forEachKernel((k) => {
    for (const [ta, tb] of combos) for (const cs of cases) check(rng, cs, ta, tb, k);
  });
});

test('bf16 matmul with K = 0 writes zeros (or leaves C when accumulating); M, N or batch = 0 writes nothing', () => {
  const rng = new Rng(14);
  forEachKernel((k) => {
    for (const [ta, tb] of combos) {
      check(rng, { M: 4, N: 5, K: 0, batch: 2, offsets: true }, ta, tb, `${k} K=0`);
      check(rng, { M: 4, N: 5, K: 0, batch: 2, accumulate: true }, ta, tb, `${k} K=0 accumulate`);
      check(rng, { M: 0, N: 5, K: 3, batch: 2, offsets: true }, ta, tb, `${k} M=0`);
      check(rng, { M: 6, N: 0, K: 3, batch: 2 }, ta, tb, `${k} N=0`);
      check(rng, { M: 3, N: 5, K: 2, batch: 0, offsets: true }, ta, tb, `${k} batch=0`);
    }
  });
});

test('bf16 matmul gives bit-identical results on 1, 2 and 5 threads, also when B is packed in chunks', () => {
  // The last case exceeds the 16 MiB packing budget (K·N/2 pairs), so B is split into chunks of rows and columns.
  const cases: [Case, boolean, boolean][] = [
    [{ M: 300, N: 260, K: 700 }, false, false], [{ M: 40, N: 600, K: 64 }, true, true],
    [{ M: 96, N: 96, K: 32, batch: 5, bGap: 0 }, false, true], [{ M: 1000, N: 48, K: 100, batch: 3, aGap: 0, bGap: -1 }, true, false],
    [{ M: 5, N: 4200, K: 2050 }, false, true],
  ];
  const rng = new Rng(15);
  try {
    for (const [cs, ta, tb] of cases) {
      const args = operands(rng, cs, ta, tb);
      const want = reference(args, args.c, bf16);
      forEachKernel((k) => {
        const results = [1, 2, 5].map((threads) => {
          addon.setThreads(threads);
          const run = { ...args, c: args.c.slice() };
          nativeMatmulBf16(run);
          return run.c;
        });
        for (let o = 0; o < want.c.length; o++) {
          const err = Math.abs(results[0]![o]! - want.c[o]!);
          if (!(err <= (cs.K + 2) * 2 ** -24 * want.scale[o]!)) assert.fail(`${k} ${JSON.stringify(cs)}: element ${o} is ${results[0]![o]}, expected ${want.c[o]}`);
        }
        assert.deepEqual(results[1], results[0], `${k}: 2 threads differ from 1: ${JSON.stringify(cs)}`);
        assert.deepEqual(results[2], results[0], `${k}: 5 threads differ from 1: ${JSON.stringify(cs)}`);
      });
    }
  } finally {
    addon.setThreads(defaultThreads);
  }
});

test('the fp32 fallback (a CPU without bf16, forced by name or LMFORGE_BF16_GEMM=fp32) is the fp32 GEMM, bit for bit', () => {
  const rng = new Rng(16);
  try {
    addon.gemmBf16Kernel('fp32');
    assert.equal(bf16GemmKernel(), 'fp32');
    for (const [ta, tb] of combos) {
      const args = operands(rng, { M: 50, N: 70, K: 33, batch: 2, accumulate: true }, ta, tb);
      const ours = { ...args, c: args.c.slice() };
      const theirs = { ...args, c: args.c.slice() };
      nativeMatmulBf16(ours);
      nativeMatmul(theirs);
      assert.deepEqual(ours.c, theirs.c);
    }
  } finally {
    addon.gemmBf16Kernel(defaultKernel);
  }
  const addonUrl = new URL('../../src/core/native/gemm.js', import.meta.url).href;
  const script = `import('${addonUrl}').then((g) => process.stdout.write(g.bf16GemmKernel()))`;
  for (const want of ['fp32', ...kernels]) {
    const child = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, LMFORGE_BF16_GEMM: want }, encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout, want);
  }
  const child = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, LMFORGE_BF16_GEMM: 'tf32' }, encoding: 'utf8' });
  assert.equal(child.stdout, defaultKernel);
  assert.match(child.stderr, /LMFORGE_BF16_GEMM=tf32 is not one of this CPU's bf16 GEMM kernels/);
});

test('bf16 matmul rejects short arrays, bad numbers, wrong element types and unknown kernels, naming the argument', () => {
  const f = (n: number): Float32Array => new Float32Array(n);
  const call = (over: Partial<MatmulArgs<Float32Array>>): void =>
    nativeMatmulBf16({
      a: f(6), aOffset: 0, b: f(12), bOffset: 0, c: f(8), cOffset: 0, batch: 1, M: 2, N: 4, K: 3,
      transA: false, transB: false, aBatchStride: 6, bBatchStride: 12, accumulate: false, ...over,
    });
  call({});
  const bad = (over: Partial<MatmulArgs<Float32Array>>, pattern: RegExp): void =>
    assert.throws(() => call(over), (e: unknown) => e instanceof TypeError && pattern.test(e.message));
  bad({ a: f(5) }, /matmulBf16: argument 0: a is too short: the shapes need 6 elements, it has 5/);
  bad({ b: f(11) }, /\bb is too short/);
  bad({ c: f(7) }, /\bc is too short/);
  bad({ batch: 2, aBatchStride: 0, bBatchStride: 0 }, /\bc is too short: the shapes need 16/);
  bad({ M: 1.5 }, /\bM must be a non-negative integer/);
  bad({ a: new Float64Array(6) as unknown as Float32Array }, /argument 0: wrong typed array element type/);
  assert.throws(() => addon.gemmBf16Kernel('tf32' as Bf16GemmKernel), /unknown or unsupported bf16 GEMM kernel 'tf32'/);
});
