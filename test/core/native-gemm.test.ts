// Native GEMM (native/src/gemm.cc through core/native/gemm.ts) against a float64 triple loop: every transpose
// combination, batch strides and broadcast, offsets, accumulate, odd and empty sizes, each SIMD path this CPU
// has, thread-count independence, and argument validation. Not a benchmark (bench/matmul.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MatmulArgs } from '../../src/core/kernels.js';
import { loadAddon, type NativeAddon } from '../../src/core/native/addon.js';
import type { GemmAddon } from '../../src/core/native/gemm.js';
import { nativeMatmul } from '../../src/core/native/gemm.js';
import { Rng } from '../../src/core/random.js';

const addon = loadAddon() as unknown as GemmAddon & NativeAddon;
// Exercise the threaded paths even when a busy machine would make the kernel fall back to one thread.
addon.gemmAdaptiveThreads(false);
const defaultIsa = addon.gemmIsa();
const defaultThreads = addon.cpuInfo().threads;
const isas = ['avx512', 'avx2', 'generic'].filter((name) => {
  try {
    addon.gemmIsa(name);
    return true;
  } catch {
    return false;
  } finally {
    addon.gemmIsa(defaultIsa);
  }
});

function randomArray(rng: Rng, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.uniform() * 2 - 1;
  return x;
}

/** C (+)= op(A)·op(B) in float64, and Σ|a·b| per output element (the scale of fp32 rounding error). */
function reference(args: MatmulArgs<Float32Array>, c0: Float32Array): { c: Float64Array; scale: Float64Array } {
  const { a, b, batch, M, N, K, transA, transB, aBatchStride, bBatchStride } = args;
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

/**
 * Runs one case through nativeMatmul and checks it element by element against the float64 loop (skipped when
 * `verify` is false, for reruns compared bit for bit); returns C.
 */
function check(rng: Rng, cs: Case, transA: boolean, transB: boolean, label: string, verify = true): Float32Array {
  const { M, N, K } = cs;
  const batch = cs.batch ?? 1;
  const aStride = cs.aGap === -1 ? 0 : M * K + (cs.aGap ?? 0);
  const bStride = cs.bGap === -1 ? 0 : K * N + (cs.bGap ?? 0);
  const aOffset = cs.offsets ? 3 : 0;
  const bOffset = cs.offsets ? 5 : 0;
  const cOffset = cs.offsets ? 7 : 0;
  const a = randomArray(rng, aOffset + (batch - 1) * aStride + M * K + 2);
  const b = randomArray(rng, bOffset + (batch - 1) * bStride + K * N + 2);
  const c = randomArray(rng, cOffset + batch * M * N + 3);
  const c0 = c.slice();
  const args: MatmulArgs<Float32Array> = {
    a, aOffset, b, bOffset, c, cOffset, batch, M, N, K, transA, transB,
    aBatchStride: aStride, bBatchStride: bStride, accumulate: cs.accumulate ?? false,
  };
  const want = verify ? reference(args, c0) : null;
  nativeMatmul(args);
  const where = `${label} ${JSON.stringify(cs)} transA=${transA} transB=${transB}`;
  for (let o = 0; want && o < batch * M * N; o++) {
    const got = c[cOffset + o]!;
    const err = Math.abs(got - want.c[o]!);
    if (!(err <= 1e-5 * want.scale[o]! + 1e-30)) {
      assert.fail(`${where}: element ${o} is ${got}, expected ${want.c[o]} (error ${err}, scale ${want.scale[o]})`);
    }
  }
  for (let o = 0; o < cOffset; o++) assert.equal(c[o], c0[o], `${where}: wrote before cOffset`);
  for (let o = cOffset + batch * M * N; o < c.length; o++) assert.equal(c[o], c0[o], `${where}: wrote past C`);
  return c.slice(cOffset, cOffset + batch * M * N);
}

// Odd sizes around the micro-tile (6/12 rows, 16/32 columns) and cache blocks (KC 256/384, MC, NC 4096).
const shapes: Case[] = [
  { M: 1, N: 1, K: 1 }, { M: 1, N: 7, K: 17 }, { M: 7, N: 1, K: 33 }, { M: 17, N: 33, K: 7 },
  { M: 33, N: 17, K: 65 }, { M: 65, N: 127, K: 33 }, { M: 127, N: 65, K: 129 }, { M: 13, N: 45, K: 513 },
  { M: 129, N: 70, K: 520 }, { M: 513, N: 33, K: 17 }, { M: 30, N: 4100, K: 5 }, { M: 200, N: 300, K: 400 },
];
const combos: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];

test('matmul matches a float64 triple loop for every transpose combination and odd sizes, on every SIMD path', () => {
  const rng = new Rng(1);
  try {
    for (const isa of isas) {
      addon.gemmIsa(isa);
      for (const [ta, tb] of combos) for (const cs of shapes) check(rng, cs, ta, tb, isa);
    }
  } finally {
    addon.gemmIsa(defaultIsa);
  }
});

test('matmul handles batch strides, broadcast (stride 0), offsets and accumulate', () => {
  const rng = new Rng(2);
  const cases: Case[] = [
    { M: 5, N: 9, K: 11, batch: 4, aGap: 3, bGap: 0, offsets: true, accumulate: true },
    { M: 32, N: 32, K: 32, batch: 6, aGap: 0, bGap: -1, offsets: true },
    { M: 64, N: 32, K: 64, batch: 3, aGap: -1, bGap: 7, accumulate: true },
    { M: 100, N: 140, K: 90, batch: 3, aGap: 1, bGap: -1, offsets: true, accumulate: true },
    { M: 513, N: 65, K: 127, batch: 2, aGap: 5, bGap: 3, accumulate: true },
    { M: 7, N: 17, K: 1, batch: 9, aGap: 2, bGap: 2, accumulate: true },
  ];
  for (const [ta, tb] of combos) for (const cs of cases) check(rng, cs, ta, tb, 'batched');
});

test('matmul with K = 0 writes zeros (or leaves C when accumulating); M or N = 0 writes nothing', () => {
  const rng = new Rng(3);
  for (const [ta, tb] of combos) {
    check(rng, { M: 4, N: 5, K: 0, batch: 2, offsets: true }, ta, tb, 'K=0');
    check(rng, { M: 4, N: 5, K: 0, batch: 2, accumulate: true }, ta, tb, 'K=0 accumulate');
    check(rng, { M: 0, N: 5, K: 3, batch: 2, offsets: true }, ta, tb, 'M=0');
    check(rng, { M: 6, N: 0, K: 3, batch: 2 }, ta, tb, 'N=0');
    check(rng, { M: 3, N: 5, K: 2, batch: 0, offsets: true }, ta, tb, 'batch=0');
  }
  const c = new Float32Array(20).fill(5);
  nativeMatmul({
    a: new Float32Array(0), aOffset: 0, b: new Float32Array(0), bOffset: 0, c, cOffset: 0, batch: 1, M: 4, N: 5, K: 0,
    transA: false, transB: false, aBatchStride: 0, bBatchStride: 0, accumulate: false,
  });
  assert.deepEqual(c, new Float32Array(20));
});

test('matmul gives bit-identical results on 1, 2 and 5 threads', () => {
  const cases: Case[] = [
    { M: 300, N: 260, K: 700 }, { M: 40, N: 600, K: 64 }, { M: 96, N: 96, K: 32, batch: 5, bGap: 0 },
    { M: 1000, N: 48, K: 100, batch: 3, aGap: 0, bGap: -1 },
  ];
  try {
    for (const cs of cases) {
      for (const [ta, tb] of combos) {
        const results = [1, 2, 5].map((threads) => {
          addon.setThreads(threads);
          return check(new Rng(4), cs, ta, tb, `${threads} threads`, threads === 1);
        });
        assert.deepEqual(results[1], results[0], `2 threads differ from 1: ${JSON.stringify(cs)}`);
        assert.deepEqual(results[2], results[0], `5 threads differ from 1: ${JSON.stringify(cs)}`);
      }
    }
  } finally {
    addon.setThreads(defaultThreads);
  }
});

test('matmul splits B into chunks of rows and columns when K·N exceeds its packing budget, on any thread count', () => {
  try {
    for (const [cs, transA] of [[{ M: 13, N: 2100, K: 2050 }, false], [{ M: 5, N: 4200, K: 1000 }, true]] as const) {
      const results = [1, 2].map((threads) => {
        addon.setThreads(threads);
        return check(new Rng(5), cs, transA, true, `${threads} threads`, threads === 1);
      });
      assert.deepEqual(results[1], results[0], `2 threads differ from 1: ${JSON.stringify(cs)}`);
    }
  } finally {
    addon.setThreads(defaultThreads);
  }
});

test('a few rows times row-major B (the streaming path used in decoding) matches on every SIMD path and thread count', () => {
  const rng = new Rng(6);
  const cases: Case[] = [];
  for (const M of [1, 2, 3, 4, 5]) for (const K of [1, 3, 4, 7, 33]) for (const N of [1, 15, 16, 17, 100]) cases.push({ M, N, K });
  cases.push({ M: 1, N: 2307, K: 770, accumulate: true, offsets: true }, { M: 3, N: 129, K: 65, batch: 3, aGap: 2, bGap: 0, accumulate: true });
  try {
    for (const isa of isas) {
      addon.gemmIsa(isa);
      for (const tb of [false, true]) for (const cs of cases) check(rng, cs, false, tb, isa);
    }
  } finally {
    addon.gemmIsa(defaultIsa);
  }
  try {
    for (const cs of [{ M: 1, N: 5000, K: 800 }, { M: 4, N: 3001, K: 515, accumulate: true }] as Case[]) {
      const results = [1, 2, 5].map((threads) => {
        addon.setThreads(threads);
        return check(new Rng(7), cs, false, false, `${threads} threads`, threads === 1);
      });
      assert.deepEqual(results[1], results[0], `2 threads differ from 1: ${JSON.stringify(cs)}`);
      assert.deepEqual(results[2], results[0], `5 threads differ from 1: ${JSON.stringify(cs)}`);
    }
  } finally {
    addon.setThreads(defaultThreads);
  }
});

test('matmul rejects short arrays, bad numbers and wrong element types with a TypeError naming the argument', () => {
  const f = (n: number): Float32Array => new Float32Array(n);
  const call = (over: Partial<MatmulArgs<Float32Array>>): void =>
    nativeMatmul({
      a: f(6), aOffset: 0, b: f(12), bOffset: 0, c: f(8), cOffset: 0, batch: 1, M: 2, N: 4, K: 3,
      transA: false, transB: false, aBatchStride: 6, bBatchStride: 12, accumulate: false, ...over,
    });
  call({});
  const bad = (over: Partial<MatmulArgs<Float32Array>>, pattern: RegExp): void =>
    assert.throws(() => call(over), (e: unknown) => e instanceof TypeError && pattern.test(e.message));
  bad({ a: f(5) }, /\ba is too short: the shapes need 6 elements, it has 5/);
  bad({ aOffset: 1 }, /\ba is too short/);
  bad({ b: f(11) }, /\bb is too short/);
  bad({ c: f(7) }, /\bc is too short/);
  bad({ cOffset: 1 }, /\bc is too short/);
  bad({ batch: 2 }, /\ba is too short: the shapes need 12/);
  bad({ batch: 2, aBatchStride: 0, bBatchStride: 0 }, /\bc is too short: the shapes need 16/);
  bad({ bBatchStride: -1 }, /bBatchStride must be a non-negative integer/);
  bad({ M: 1.5 }, /\bM must be a non-negative integer/);
  bad({ K: Number.NaN }, /\bK must be a non-negative integer/);
  bad({ a: new Float64Array(6) as unknown as Float32Array }, /argument 0: wrong typed array element type/);
  assert.throws(() => addon.gemmIsa('sse9'), TypeError);
});
