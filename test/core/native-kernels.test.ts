// Parity of the native non-GEMM, non-attention kernels (core/native/misc.ts) with the reference backend, at every
// SIMD level this CPU has. The reference runs on float64 copies of the same float32 inputs (the float64 result
// the native float32 code should round to), or on float32 arrays where the result must be bit-identical.
// Also: edge cases (size-1 and empty dims, broadcasting, huge logits, NaN) and bad arguments → TypeError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BINARY_OPS, UNARY_OPS, type StridedArg, type UnaryOp } from '../../src/core/kernels.js';
import { referenceKernels as ref } from '../../src/core/reference/index.js';
import { nativeMisc as nat, nativeSimdLevel, type SimdLevel } from '../../src/core/native/misc.js';
import { Rng } from '../../src/core/random.js';

const BEST = nativeSimdLevel();
const ORDER: SimdLevel[] = ['generic', 'avx2', 'avx512'];
/** Every level up to the best this CPU supports. */
const LEVELS = ORDER.slice(0, ORDER.indexOf(BEST) + 1).reverse();

/** Runs fn once per SIMD level, restoring the best level afterwards. */
function eachLevel(fn: (level: SimdLevel) => void): void {
  try {
    for (const level of LEVELS) {
      nativeSimdLevel(level);
      fn(level);
    }
  } finally {
    nativeSimdLevel(BEST);
  }
}

function rand(n: number, lo: number, hi: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.uniform();
  return a;
}

function ints(n: number, hi: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => rng.int(hi));
}

const f64 = (a: Float32Array): Float64Array => Float64Array.from(a);

/** |a − e| ≤ atol + rtol·|e| elementwise; NaN must meet NaN and ±∞ the same ∞. */
function close(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Object.is(a, e) || a === e || (Number.isNaN(a) && Number.isNaN(e))) continue;
    if (!Number.isFinite(e) || !(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      assert.fail(`${what}: element ${i} is ${a}, expected ${e} (rel ${Math.abs(a - e) / Math.abs(e)})`);
    }
  }
}

function exact(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  close(actual, expected, 0, 0, what);
}

/** Expected value of a float32 output: the float64 result rounded once to float32. */
const round32 = (a: Float64Array): Float32Array => Float32Array.from(a);

const SPECIALS = [0, -0, 1e-40, -1e-40, 1e-20, -1e-20, 1, -1, 0.5, -0.5, 3, -3, 10, -10, 20, -20, 88, 89, -87, -104, -110, 1e30, -1e30, Infinity, -Infinity, NaN];

const RANGE: Partial<Record<UnaryOp, [number, number]>> = {
  // The reference's ½x(1 + tanh u) loses relative accuracy below x ≈ −5 (1 + tanh u cancels); the tail is
  // checked separately below against the cancellation-free x·sigmoid(2u).
  log: [1e-3, 100], sqrt: [0, 100], rsqrt: [1e-3, 100], exp: [-80, 80], gelu: [-6, 6], gelu_tanh: [-5, 6],
  pow_scalar: [0.01, 10],
};
const PARAM: Partial<Record<UnaryOp, number>> = { pow_scalar: 1.7, mul_scalar: 0.3, add_scalar: -1.25 };

test('unary and unaryBackward match float64 within 1e-6 relative on every SIMD level', () => {
  eachLevel((level) => {
    for (const op of UNARY_OPS) {
      const [lo, hi] = RANGE[op] ?? [-12, 12];
      const p = PARAM[op] ?? 0;
      for (const n of [1037, 70000]) {
        const x = rand(n, lo, hi, n + op.length);
        const y = new Float32Array(n);
        nat.unary(op, x, y, n, p);
        const yRef = new Float64Array(n);
        ref.unary(op, f64(x), yRef, n, p);
        close(y, round32(yRef), 1.2e-6, 1e-37, `${level} unary ${op} n=${n}`);
        const gy = rand(n, -2, 2, 7);
        const gx = new Float32Array(n);
        nat.unaryBackward(op, x, y, gy, gx, n, p);
        const gRef = new Float64Array(n);
        ref.unaryBackward(op, f64(x), f64(y), f64(gy), gRef, n, p);
        // GELU's derivative crosses zero near x = −0.75: cancellation there is absolute, not relative.
        const atol = op === 'gelu' || op === 'gelu_tanh' || op === 'silu' ? 2e-7 : 1e-37;
        close(gx, round32(gRef), 2e-6, atol, `${level} unaryBackward ${op} n=${n}`);
      }
      // Special values: NaN and ±∞ propagate as in the reference, subnormal results stay close.
      const xs = Float32Array.from(SPECIALS);
      const ys = new Float32Array(xs.length);
      nat.unary(op, xs, ys, xs.length, p);
      const ysRef = new Float64Array(xs.length);
      ref.unary(op, f64(xs), ysRef, xs.length, p);
      // The reference itself loses the far tails of GELU (1 + erf → 0, 1 + tanh → 0): compare those absolutely.
      close(ys, round32(ysRef), 2e-6, op === 'gelu' || op === 'gelu_tanh' ? 1e-15 : 2e-38, `${level} unary ${op} specials`);
      const gys = new Float32Array(xs.length).fill(1);
      const gxs = new Float32Array(xs.length);
      nat.unaryBackward(op, xs, ys, gys, gxs, xs.length, p);
      const gxsRef = new Float64Array(xs.length);
      ref.unaryBackward(op, f64(xs), f64(ys), f64(gys), gxsRef, xs.length, p);
      close(gxs, round32(gxsRef), 2e-6, op === 'gelu' || op === 'gelu_tanh' ? 1e-14 : 2e-38, `${level} unaryBackward ${op} specials`);
    }
  });
});

test('exact GELU forward and backward on every length 1..40 (vector tails, nothing written past n), every SIMD path', () => {
  eachLevel((level) => {
    for (let n = 1; n <= 40; n++) {
      const x = rand(n, -6, 6, 1000 + n); // the reference's 1 + erf loses the tail beyond (see RANGE)
      const y = new Float32Array(n + 1).fill(42); // one guard element past the end
      nat.unary('gelu', x, y, n, 0);
      assert.equal(y[n], 42, `${level} gelu wrote past n = ${n}`);
      const yRef = new Float64Array(n);
      ref.unary('gelu', f64(x), yRef, n, 0);
      close(y.subarray(0, n), round32(yRef), 1.2e-6, 1e-37, `${level} gelu n=${n}`);
      const gy = rand(n, -2, 2, 2000 + n);
      const gx = new Float32Array(n + 1).fill(42);
      nat.unaryBackward('gelu', x, y, gy, gx, n, 0);
      assert.equal(gx[n], 42, `${level} gelu backward wrote past n = ${n}`);
      const gRef = new Float64Array(n);
      ref.unaryBackward('gelu', f64(x), f64(y), f64(gy), gRef, n, 0);
      close(gx.subarray(0, n), round32(gRef), 2e-6, 2e-7, `${level} gelu backward n=${n}`);
    }
  });
});

test('gelu_tanh keeps its relative accuracy in the far left tail', () => {
  eachLevel((level) => {
    const x = rand(2000, -9, -5, 77);
    const y = new Float32Array(x.length);
    nat.unary('gelu_tanh', x, y, x.length, 0);
    const expected = Float64Array.from(x, (v) => v / (1 + Math.exp(-2 * Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v))));
    close(y, round32(expected), 1e-6, 0, `${level} gelu_tanh tail`);
  });
});

/** Row-major strides of a shape, with 0 wherever bShape broadcasts (size 1 against a larger dim). */
function broadcastStrides(shape: readonly number[], of: readonly number[]): number[] {
  const strides = new Array<number>(shape.length).fill(0);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    const k = d - (shape.length - of.length);
    const size = k >= 0 ? of[k]! : 1;
    strides[d] = size === 1 ? 0 : s;
    s *= size;
  }
  return strides;
}

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

const BROADCASTS: { out: number[]; a: number[]; b: number[] }[] = [
  { out: [3, 5, 7], a: [3, 5, 7], b: [3, 5, 7] }, // same shape
  { out: [3, 5, 7], a: [3, 5, 7], b: [] }, // scalar
  { out: [4, 6, 33], a: [4, 6, 33], b: [33] }, // row broadcast
  { out: [4, 6, 33], a: [33], b: [4, 6, 33] },
  { out: [5, 9], a: [5, 1], b: [1, 9] }, // outer product
  { out: [2, 1, 3], a: [2, 1, 3], b: [1, 1, 3] }, // size-1 dims
  { out: [0, 4], a: [0, 4], b: [4] }, // empty
  { out: [], a: [], b: [] }, // 0-d
  { out: [300, 257], a: [300, 257], b: [257] }, // large enough to thread
  { out: [70000], a: [70000], b: [70000] },
];

test('binary ops broadcast exactly like the reference (bit-identical except pow)', () => {
  eachLevel((level) => {
    for (const op of BINARY_OPS) {
      for (const { out: shape, a: as, b: bs } of BROADCASTS) {
        const a = rand(Math.max(1, numel(as)) + 2, -3, 3, 11);
        const b = rand(Math.max(1, numel(bs)) + 1, -3, 3, 12);
        if (a.length > 4) a[3] = NaN;
        if (b.length > 5) b[5] = Infinity;
        if (op === 'eq' || op === 'ne' || op === 'le' || op === 'ge') b.set(a.subarray(0, Math.min(a.length, b.length) >> 1));
        const A: StridedArg<Float32Array> = { data: a, offset: 2, strides: broadcastStrides(shape, as) };
        const B: StridedArg<Float32Array> = { data: b, offset: 1, strides: broadcastStrides(shape, bs) };
        const out = new Float32Array(numel(shape));
        nat.binary(op, A, B, out, shape);
        const expected = new Float32Array(numel(shape));
        ref.binary(op, A, B, expected, shape);
        if (op === 'pow') close(out, expected, 2.4e-7, 0, `${level} binary pow ${JSON.stringify(shape)}`);
        else exact(out, expected, `${level} binary ${op} ${JSON.stringify({ shape, as, bs })}`);
      }
    }
    // A transposed (non-contiguous) operand.
    const a = rand(6 * 8, -1, 1, 3);
    const b = rand(8 * 6, -1, 1, 4);
    const out = new Float32Array(48);
    const expected = new Float32Array(48);
    const A = { data: a, offset: 0, strides: [1, 6] };
    const B = { data: b, offset: 0, strides: [6, 1] };
    nat.binary('sub', A, B, out, [8, 6]);
    ref.binary('sub', A, B, expected, [8, 6]);
    exact(out, expected, `${level} binary transposed`);
  });
});

test('where, copyStrided, fill and cast are bit-identical to the reference', () => {
  eachLevel((level) => {
    for (const { out: shape, a: as, b: bs } of BROADCASTS) {
      const cond = ints(Math.max(1, numel(bs)), 2, 5);
      const condF = Float32Array.from(cond, (v, i) => (i % 7 === 3 ? NaN : v));
      const a = rand(Math.max(1, numel(as)), -1, 1, 6);
      const b = rand(Math.max(1, numel(shape)), -1, 1, 7);
      for (const c of [cond, condF]) {
        const C = { data: c, offset: 0, strides: broadcastStrides(shape, bs) };
        const A = { data: a, offset: 0, strides: broadcastStrides(shape, as) };
        const B = { data: b, offset: 0, strides: broadcastStrides(shape, shape) };
        const out = new Float32Array(numel(shape));
        const expected = new Float32Array(numel(shape));
        nat.where(C, A, B, out, shape);
        ref.where(C, A, B, expected, shape);
        exact(out, expected, `${level} where ${JSON.stringify(shape)}`);
      }
    }
    // copyStrided: a permuted, offset, reversed view of a 4-d array, for 4- and 8-byte elements.
    const shape = [3, 1, 4, 5];
    const srcStrides = [20, 60, 1, 4];
    for (const make of [(n: number) => new Float32Array(n), (n: number) => new Float64Array(n), (n: number) => new Int32Array(n)]) {
      const src = make(70);
      for (let i = 0; i < 70; i++) src[i] = i * 1.5 - 20;
      const dst = make(80);
      const expected = make(80);
      const s = { data: src, offset: 7, strides: srcStrides };
      const d = { data: dst, offset: 79, strides: [-20, 0, -5, -1] };
      nat.copyStrided(s, d, shape);
      ref.copyStrided(s, { ...d, data: expected }, shape);
      exact(dst, expected, `${level} copyStrided ${src.constructor.name}`);
    }
    const big = rand(300 * 400, -1, 1, 8);
    const t = new Float32Array(big.length);
    const tRef = new Float32Array(big.length);
    nat.copyStrided({ data: big, offset: 0, strides: [1, 300] }, { data: t, offset: 0, strides: [400, 1] }, [300, 400]);
    ref.copyStrided({ data: big, offset: 0, strides: [1, 300] }, { data: tRef, offset: 0, strides: [400, 1] }, [300, 400]);
    exact(t, tRef, `${level} copyStrided transpose 300×400`);
    nat.copyStrided({ data: big, offset: 0, strides: [0] }, { data: t, offset: 0, strides: [1] }, [0]); // empty
  });
  const vals = [0, -0, 1.5, -1.5, 2.9, -2.9, 1e10, -1e10, 3e9, NaN, Infinity, -Infinity, 2147483647.5, -2147483648.7];
  for (const src of [Float32Array.from(vals), Float64Array.from(vals), Int32Array.from([0, -1, 7, 2147483647, -2147483648])]) {
    for (const make of [(n: number) => new Float32Array(n), (n: number) => new Float64Array(n), (n: number) => new Int32Array(n)]) {
      const d = make(src.length);
      const e = make(src.length);
      nat.cast(src, d, src.length);
      ref.cast(src, e, src.length);
      exact(d, e, `cast ${src.constructor.name} → ${d.constructor.name}`);
    }
  }
  for (const v of [1.3, -7.9, NaN, 1e10]) {
    for (const make of [(n: number) => new Float32Array(n), (n: number) => new Float64Array(n), (n: number) => new Int32Array(n)]) {
      const d = make(10);
      const e = make(10);
      nat.fill(d, v, 2, 5);
      ref.fill(e, v, 2, 5);
      exact(d, e, `fill ${v} ${d.constructor.name}`);
    }
  }
});

test('dropout is bit-identical to the reference hash mask', () => {
  eachLevel((level) => {
    for (const p of [0, 0.1, 0.5, 0.999, 1]) {
      for (const seed of [0, 1, 12345, 4294967295]) {
        const n = p === 0.5 ? 70001 : 1031;
        const x = rand(n, -2, 2, seed + 1);
        x[5] = NaN;
        const y = new Float32Array(n);
        const e = new Float32Array(n);
        nat.dropout(x, y, n, p, seed);
        ref.dropout(x, e, n, p, seed);
        exact(y, e, `${level} dropout p=${p} seed=${seed}`);
      }
    }
  });
});

test('reduce, sumSquares and cumsum match float64 accumulation', () => {
  eachLevel((level) => {
    for (const [outer, r, inner] of [[3, 7, 1], [2, 5, 300], [1, 0, 4], [4, 1, 1], [2, 3000, 1], [40, 30, 70], [0, 3, 2]] as const) {
      const x = rand(outer * r * inner, -5, 5, outer + r + inner);
      if (x.length > 10) x[9] = NaN;
      if (x.length > 20) x[17] = x[16]!; // a tie
      const out = new Float32Array(outer * inner);
      const outRef = new Float64Array(outer * inner);
      nat.reduce('sum', x, out, outer, r, inner, null);
      ref.reduce('sum', f64(x), outRef, outer, r, inner, null);
      close(out, round32(outRef), 1e-6, 1e-6, `${level} reduce sum ${outer},${r},${inner}`);
      const am = new Int32Array(outer * inner);
      const amRef = new Int32Array(outer * inner);
      nat.reduce('max', x, out, outer, r, inner, am);
      ref.reduce('max', f64(x), outRef, outer, r, inner, amRef);
      exact(out, round32(outRef), `${level} reduce max ${outer},${r},${inner}`);
      exact(am, amRef, `${level} argmax ${outer},${r},${inner}`);
      const y = new Float32Array(x.length);
      const yRef = new Float64Array(x.length);
      for (const reverse of [false, true]) {
        nat.cumsum(x, y, outer, r, inner, reverse);
        ref.cumsum(f64(x), yRef, outer, r, inner, reverse);
        close(y, round32(yRef), 1e-6, 1e-5, `${level} cumsum ${outer},${r},${inner} reverse=${reverse}`);
      }
    }
    const x = rand(200003, -3, 3, 9);
    const s = nat.sumSquares(x, x.length);
    const sRef = ref.sumSquares(f64(x), x.length);
    assert.ok(Math.abs(s - sRef) <= 1e-12 * sRef, `${level} sumSquares ${s} vs ${sRef}`);
    assert.equal(nat.sumSquares(x, 0), 0);
  });
});

test('softmax and log-softmax (forward and backward) stay accurate for huge logits, -∞ and NaN rows', () => {
  eachLevel((level) => {
    for (const [rows, cols, scale, shift] of [[4, 1, 1, 0], [3, 17, 3, 0], [5, 1000, 10, 1e4], [2, 50304, 5, -3e4], [70, 1000, 1, 0], [2, 8, 1e30, 0], [37, 65, 4, 0], [40, 8, 1e30, 0]] as const) {
      const x = rand(rows * cols, -scale, scale, rows * cols);
      for (let i = 0; i < x.length; i++) x[i] = x[i]! + shift;
      if (cols > 4) x[cols + 2] = -Infinity;
      if (rows > 2) x[2 * cols + 1] = NaN;
      for (const log of [false, true]) {
        const y = new Float32Array(x.length);
        const yRef = new Float64Array(x.length);
        nat.softmax(x, y, rows, cols, log);
        ref.softmax(f64(x), yRef, rows, cols, log);
        close(y, round32(yRef), 2e-6, log ? 2e-6 * scale : 1e-9, `${level} softmax log=${log} ${rows}×${cols}`);
        const gy = rand(x.length, -1, 1, 3);
        const gx = new Float32Array(x.length);
        const gRef = new Float64Array(x.length);
        nat.softmaxBackward(y, gy, gx, rows, cols, log);
        ref.softmaxBackward(f64(y), f64(gy), gRef, rows, cols, log);
        close(gx, round32(gRef), 1e-5, 1e-6, `${level} softmaxBackward log=${log} ${rows}×${cols}`);
      }
    }
  });
});

test('layernorm and rmsnorm (forward and backward, with and without affine) match float64', () => {
  eachLevel((level) => {
    for (const [rows, C] of [[1, 1], [3, 5], [7, 768], [200, 384], [0, 4]] as const) {
      const x = rand(rows * C, -2, 2, rows + C);
      for (let i = 0; i < x.length; i++) x[i] = x[i]! + 3; // an offset mean: two-pass variance matters
      const w = rand(C, 0.5, 1.5, 2);
      const b = rand(C, -0.5, 0.5, 3);
      const gy = rand(rows * C, -1, 1, 4);
      for (const affine of [true, false]) {
        const W = affine ? w : null;
        const Bias = affine ? b : null;
        const y = new Float32Array(rows * C);
        const mean = new Float32Array(rows);
        const rstd = new Float32Array(rows);
        const yRef = new Float64Array(rows * C);
        const meanRef = new Float64Array(rows);
        const rstdRef = new Float64Array(rows);
        nat.layernorm(x, W, Bias, y, mean, rstd, rows, C, 1e-5);
        ref.layernorm(f64(x), W && f64(W), Bias && f64(Bias), yRef, meanRef, rstdRef, rows, C, 1e-5);
        close(y, round32(yRef), 1e-5, 1e-6, `${level} layernorm y ${rows}×${C}`);
        close(mean, round32(meanRef), 1e-6, 1e-7, `${level} layernorm mean`);
        close(rstd, round32(rstdRef), 1e-6, 0, `${level} layernorm rstd`);
        const gx = new Float32Array(rows * C);
        const gw = Float32Array.from(w); // accumulated onto existing values
        const gb = Float32Array.from(b);
        const gxRef = new Float64Array(rows * C);
        const gwRef = f64(w);
        const gbRef = f64(b);
        nat.layernormBackward(x, W, mean, rstd, gy, gx, affine ? gw : null, affine ? gb : null, rows, C);
        ref.layernormBackward(f64(x), W && f64(W), f64(mean), f64(rstd), f64(gy), gxRef, affine ? gwRef : null, affine ? gbRef : null, rows, C);
        close(gx, round32(gxRef), 1e-5, 2e-6, `${level} layernorm gx ${rows}×${C}`);
        if (affine) {
          close(gw, round32(gwRef), 1e-5, 1e-5, `${level} layernorm gw ${rows}×${C}`);
          close(gb, round32(gbRef), 1e-5, 1e-5, `${level} layernorm gb ${rows}×${C}`);
        }
        nat.rmsnorm(x, W, y, rstd, rows, C, 1e-6);
        ref.rmsnorm(f64(x), W && f64(W), yRef, rstdRef, rows, C, 1e-6);
        close(y, round32(yRef), 2e-6, 1e-7, `${level} rmsnorm y ${rows}×${C}`);
        close(rstd, round32(rstdRef), 1e-6, 0, `${level} rmsnorm rstd`);
        gw.set(w);
        gwRef.set(w);
        nat.rmsnormBackward(x, W, rstd, gy, gx, affine ? gw : null, rows, C);
        ref.rmsnormBackward(f64(x), W && f64(W), f64(rstd), f64(gy), gxRef, affine ? gwRef : null, rows, C);
        close(gx, round32(gxRef), 1e-5, 1e-6, `${level} rmsnorm gx ${rows}×${C}`);
        if (affine) close(gw, round32(gwRef), 1e-5, 1e-5, `${level} rmsnorm gw ${rows}×${C}`);
      }
    }
  });
});

test('crossEntropy (forward and backward) is stable for huge logits and honours ignoreIndex', () => {
  eachLevel((level) => {
    for (const [N, V, scale] of [[6, 65, 4], [3, 50304, 8], [40, 65, 1e30], [1, 1, 1], [0, 10, 1], [300, 200, 10]] as const) {
      const logits = rand(N * V, -scale, scale, N + V);
      const targets = ints(N, V, 5);
      if (N > 2) targets[1] = -100;
      if (N > 20) {
        logits[3 * V + 2] = NaN; // a NaN row, inside a 16-row tile for small V
        logits[4 * V + 1] = -Infinity;
      }
      const losses = new Float32Array(N);
      const lse = new Float32Array(N);
      const lossRef = new Float64Array(N);
      const lseRef = new Float64Array(N);
      nat.crossEntropy(logits, targets, losses, lse, N, V, -100);
      ref.crossEntropy(f64(logits), targets, lossRef, lseRef, N, V, -100);
      const atol = scale >= 1e30 ? 1e24 : 2e-6 * scale; // the loss is a difference of two numbers of size `scale`
      close(losses, round32(lossRef), 2e-6, atol, `${level} crossEntropy loss N=${N} V=${V}`);
      close(lse, round32(lseRef), 1e-6, 0, `${level} crossEntropy lse N=${N} V=${V}`);
      const gLoss = rand(N, 0.5, 2, 6);
      const g = new Float32Array(N * V);
      const gRef = new Float64Array(N * V);
      nat.crossEntropyBackward(logits, targets, lse, gLoss, g, N, V, -100);
      ref.crossEntropyBackward(f64(logits), targets, f64(lse), f64(gLoss), gRef, N, V, -100);
      close(g, round32(gRef), 1e-5, 1e-7, `${level} crossEntropyBackward N=${N} V=${V}`);
      if (N > 2) assert.ok(g.subarray(V, 2 * V).every((v) => v === 0), 'ignored row has zero gradient');
    }
  });
  const logits = new Float32Array(3 * 4);
  assert.throws(() => nat.crossEntropy(logits, Int32Array.from([0, 1, 4]), new Float32Array(3), new Float32Array(3), 3, 4, -100), {
    name: 'TypeError',
    message: /crossEntropy.*row 2/,
  });
});

test('topk orders descending with NaN largest and ties to the lower index', () => {
  eachLevel(() => {
    for (const [rows, cols, k] of [[3, 10, 4], [2, 5, 5], [4, 1, 1], [2, 1000, 50], [3, 6, 0]] as const) {
      const x = rand(rows * cols, -2, 2, rows * cols);
      for (let i = 0; i < x.length; i += 7) x[i] = 0.25; // ties
      if (x.length > 12) x[12] = NaN;
      const v = new Float32Array(rows * k);
      const ix = new Int32Array(rows * k);
      const vRef = new Float32Array(rows * k);
      const ixRef = new Int32Array(rows * k);
      nat.topk(x, v, ix, rows, cols, k);
      ref.topk(x, vRef, ixRef, rows, cols, k);
      exact(v, vRef, `topk values ${rows}×${cols} k=${k}`);
      exact(ix, ixRef, `topk indices ${rows}×${cols} k=${k}`);
    }
  });
});

test('embedding, gather and their scatter-add adjoints are exact and race-free', () => {
  for (const [n, C, V] of [[7, 5, 11], [5000, 64, 50], [3, 1, 2], [0, 8, 4]] as const) {
    const weight = rand(V * C, -1, 1, 1);
    const ids = ints(n, V, 2);
    const out = new Float32Array(n * C);
    const outRef = new Float32Array(n * C);
    nat.embedding(weight, ids, out, n, C, V);
    ref.embedding(weight, ids, outRef, n, C, V);
    exact(out, outRef, `embedding ${n}×${C}`);
    const gy = rand(n * C, -1, 1, 3);
    const gw = rand(V * C, -1, 1, 4);
    const gwRef = Float32Array.from(gw);
    nat.embeddingBackward(gy, ids, gw, n, C);
    ref.embeddingBackward(gy, ids, gwRef, n, C);
    exact(gw, gwRef, `embeddingBackward ${n}×${C} (many repeated ids)`);
  }
  assert.throws(() => nat.embedding(new Float32Array(8), Int32Array.from([0, 3, 4]), new Float32Array(6), 3, 2, 4), {
    name: 'TypeError',
    message: /embedding.*position 2/,
  });
  for (const [outer, r, k, inner] of [[2, 5, 3, 4], [1, 7, 20, 300], [3, 1, 2, 1], [64, 50, 40, 30]] as const) {
    const x = rand(outer * r * inner, -1, 1, 5);
    const idx = ints(outer * k * inner, r, 6);
    const out = new Float32Array(outer * k * inner);
    const outRef = new Float32Array(outer * k * inner);
    nat.gather(x, idx, out, outer, r, k, inner);
    ref.gather(x, idx, outRef, outer, r, k, inner);
    exact(out, outRef, `gather ${outer},${r},${k},${inner}`);
    const acc = rand(outer * r * inner, -1, 1, 7);
    const accRef = Float32Array.from(acc);
    nat.scatterAdd(out, idx, acc, outer, r, k, inner);
    ref.scatterAdd(out, idx, accRef, outer, r, k, inner);
    exact(acc, accRef, `scatterAdd ${outer},${r},${k},${inner}`);
  }
  assert.throws(() => nat.gather(new Float32Array(6), Int32Array.from([0, 3]), new Float32Array(2), 1, 3, 2, 1), {
    name: 'TypeError',
    message: /gather.*position 1/,
  });
});

test('adamw matches the reference update', () => {
  eachLevel((level) => {
    for (const n of [1, 1003, 100000]) {
      const param = rand(n, -1, 1, 1);
      const grad = rand(n, -0.1, 0.1, 2);
      const m = rand(n, -0.01, 0.01, 3);
      const v = rand(n, 0, 1e-4, 4);
      const pr = Float32Array.from(param);
      const mr = Float32Array.from(m);
      const vr = Float32Array.from(v);
      const hyper = { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 7, gradScale: 0.5 };
      nat.adamw({ param, grad, m, v, ...hyper });
      ref.adamw({ param: pr, grad, m: mr, v: vr, ...hyper });
      close(param, pr, 1e-6, 1e-9, `${level} adamw param n=${n}`);
      close(m, mr, 1e-6, 0, `${level} adamw m`);
      close(v, vr, 1e-6, 0, `${level} adamw v`);
    }
  });
});

test('bad lengths, strides and arguments throw a TypeError naming the kernel and argument', () => {
  const f = (n: number): Float32Array => new Float32Array(n);
  const cases: [string, () => void, RegExp][] = [
    ['unary', () => nat.unary('exp', f(4), f(3), 4, 0), /unary: y: length 3/],
    ['unaryBackward', () => nat.unaryBackward('gelu', f(4), f(4), f(2), f(4), 4, 0), /unaryBackward: gy/],
    ['binary', () => nat.binary('add', { data: f(6), offset: 0, strides: [3, 1] }, { data: f(3), offset: 1, strides: [0, 1] }, f(6), [2, 3]), /binary: b: view/],
    ['binary out', () => nat.binary('add', { data: f(6), offset: 0, strides: [3, 1] }, { data: f(3), offset: 0, strides: [0, 1] }, f(5), [2, 3]), /binary: out/],
    ['binary strides', () => nat.binary('add', { data: f(6), offset: 0, strides: [1] }, { data: f(3), offset: 0, strides: [0, 1] }, f(6), [2, 3]), /binary: a: 1 strides/],
    ['copyStrided', () => nat.copyStrided({ data: f(4), offset: 0, strides: [2, 1] }, { data: f(4), offset: 0, strides: [2, 1] }, [2, 3]), /copyStrided: src: view/],
    ['copyStrided types', () => nat.copyStrided({ data: new Float64Array(4), offset: 0, strides: [1] }, { data: f(4), offset: 0, strides: [1] }, [4]), /copyStrided: src and dst: element types differ/],
    ['where', () => nat.where({ data: new Int32Array(2), offset: 0, strides: [1] }, { data: f(3), offset: 0, strides: [1] }, { data: f(3), offset: 0, strides: [1] }, f(3), [3]), /where: cond/],
    ['fill', () => nat.fill(f(4), 1, 2, 3), /fill: dst/],
    ['cast', () => nat.cast(f(4), new Int32Array(3), 4), /cast: dst/],
    ['dropout', () => nat.dropout(f(4), f(4), 4, 1.5, 0), /dropout: p/],
    ['reduce', () => nat.reduce('max', f(5), f(2), 2, 3, 1, new Int32Array(2)), /reduce: x/],
    ['cumsum', () => nat.cumsum(f(6), f(5), 2, 3, 1, false), /cumsum: y/],
    ['softmax', () => nat.softmax(f(6), f(5), 2, 3, false), /softmax: y/],
    ['softmaxBackward', () => nat.softmaxBackward(f(6), f(6), f(5), 2, 3, true), /softmaxBackward: gx/],
    ['layernorm', () => nat.layernorm(f(6), f(2), null, f(6), f(2), f(2), 2, 3, 1e-5), /layernorm: w/],
    ['layernormBackward', () => nat.layernormBackward(f(6), null, f(2), f(1), f(6), f(6), null, null, 2, 3), /layernormBackward: rstd/],
    ['rmsnorm', () => nat.rmsnorm(f(6), null, f(6), f(1), 2, 3, 1e-5), /rmsnorm: rstd/],
    ['rmsnormBackward', () => nat.rmsnormBackward(f(6), null, f(2), f(6), f(6), f(2), 2, 3), /rmsnormBackward: gw/],
    ['crossEntropyBackward', () => nat.crossEntropyBackward(f(6), new Int32Array(2), f(2), f(1), f(6), 2, 3, -1), /crossEntropyBackward: gLoss/],
    ['topk', () => nat.topk(f(6), f(8), new Int32Array(8), 2, 3, 4), /topk: k/],
    ['embeddingBackward', () => nat.embeddingBackward(f(6), Int32Array.from([0, 5]), f(8), 2, 3), /embeddingBackward: ids: position 1/],
    ['scatterAdd', () => nat.scatterAdd(f(2), Int32Array.from([0, 3]), f(3), 1, 3, 2, 1), /scatterAdd: idx: position 1/],
    ['adamw', () => nat.adamw({ param: f(4), grad: f(4), m: f(3), v: f(4), lr: 1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, step: 1, gradScale: 1 }), /adamw: m/],
    ['negative size', () => nat.softmax(f(6), f(6), -2, 3, false), /softmax: rows/],
    ['overflowing sizes', () => nat.reduce('sum', f(6), f(6), 2 ** 40, 2 ** 40, 2 ** 40, null), /reduce: x: length 6/],
    ['overflowing strides', () => nat.copyStrided({ data: f(4), offset: 0, strides: [2 ** 62] }, { data: f(4), offset: 0, strides: [1] }, [4]), /copyStrided: src/],
    ['wrong array type', () => nat.unary('neg', new Float64Array(4) as unknown as Float32Array, f(4), 4, 0), /unary: x: expected a Float32Array/],
  ];
  for (const [what, call, message] of cases) assert.throws(call, { name: 'TypeError', message }, what);
});
