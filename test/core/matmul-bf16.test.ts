// The bf16 matmul precision (core/ops/matmul.ts setMatmulPrecision): matmul and linear, forward and both backward
// GEMMs, on the native bf16 kernel against the reference backend's bf16 oracle (equal up to fp32 accumulation
// order) and against exact products (within bf16's rounding, relative ~1e-2); gradients against float64 ones;
// the switch itself (float64 stays exact, invalid values refused, restored after); the fp32 fallback's note;
// and a small GPT whose bf16 training loss tracks fp32's step by step. The native kernel's own test:
// native-gemm-bf16.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import type { Tensor } from '../../src/core/index.js';
import { loadAddon } from '../../src/core/native/addon.js';
import { bf16GemmKernel, bf16PrecisionNote, type GemmAddon } from '../../src/core/native/gemm.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { roundToBf16 } from '../../src/core/reference/indexing.js';
import { GPT } from '../../src/models/gpt.js';
import { makeOptimizer, optimSpec } from '../../src/optim/config.js';
import { defaultsOf } from '../../src/util/config.js';

loadNativeBackend();

function randomValues(rng: lm.Rng, n: number): number[] {
  return Array.from({ length: n }, () => rng.uniform() * 2 - 1);
}

/** ‖got − want‖ / ‖want‖. */
function relErr(got: readonly number[], want: readonly number[]): number {
  let d = 0;
  let w = 0;
  for (let i = 0; i < want.length; i++) {
    d += (got[i]! - want[i]!) ** 2;
    w += want[i]! ** 2;
  }
  return Math.sqrt(d / w);
}

interface Run {
  out: number[];
  grads: number[][];
}

// The products under test: a batched activation times a weight (linear, bias on), a transposed-view weight (a tied
// head), and a batched matmul of two activations (attention-like, with a transposed operand).
const cases: { name: string; shapes: number[][]; run: (xs: Tensor[]) => Tensor }[] = [
  { name: 'linear (B, T, K)·(K, N) + b', shapes: [[2, 37, 70], [70, 45], [45]], run: ([x, w, b]) => lm.linear(x!, w!, b!) },
  { name: 'tied head x·Eᵀ', shapes: [[3, 19, 64], [101, 64]], run: ([x, e]) => lm.matmul(x!, lm.transpose(e!)) },
  { name: 'batched q·kᵀ', shapes: [[2, 3, 33, 40], [2, 3, 29, 40]], run: ([q, k]) => lm.matmul(q!, lm.transpose(k!)) },
];

function runOp(c: (typeof cases)[number], values: number[][], dtype: 'float32' | 'float64', backend: lm.BackendName, precision: lm.MatmulPrecision): Run {
  return lm.withBackend(backend, () => lm.withMatmulPrecision(precision, () => lm.tidy(() => {
    const xs = c.shapes.map((s, i) => lm.requireGrad(lm.tensor(values[i]!, s, dtype)));
    const out = c.run(xs);
    const rng = new lm.Rng(7);
    lm.backward(lm.sum(lm.mul(out, lm.tensor(randomValues(rng, out.size), out.shape, dtype))));
    const r = { out: out.toArray(), grads: xs.map((x) => x.grad!.toArray()) };
    for (const x of xs) x.dispose();
    return r;
  })));
}

const rounds = bf16GemmKernel() !== 'fp32';

for (const c of cases) {
  test(`bf16 ${c.name}: native = reference bf16 oracle; forward and gradients within 1e-2 of float64`, () => {
    const rng = new lm.Rng(3);
    const values = c.shapes.map((s) => randomValues(rng, s.reduce((a, b) => a * b, 1)));
    const native = runOp(c, values, 'float32', 'native', 'bf16');
    const oracle = runOp(c, values, 'float32', 'reference', 'bf16');
    const exact = runOp(c, values, 'float64', 'reference', 'fp32');
    const fp32 = runOp(c, values, 'float32', 'native', 'fp32');
    if (rounds) {
      // Same bf16 operands, only the fp32 summation order differs.
      assert.ok(relErr(native.out, oracle.out) < 1e-5, `forward vs oracle ${relErr(native.out, oracle.out)}`);
      native.grads.forEach((g, i) => assert.ok(relErr(g, oracle.grads[i]!) < 1e-5, `grad ${i} vs oracle ${relErr(g, oracle.grads[i]!)}`));
      // And bf16 rounding is really there: the result is not the fp32 one.
      assert.ok(relErr(native.out, fp32.out) > 1e-5, 'bf16 forward equals fp32: operands were not rounded');
    }
    // Against exact products: bf16 operands carry ≤ 2⁻⁹ relative error each, so ~1e-2 bounds every result.
    assert.ok(relErr(native.out, exact.out) < 1e-2, `forward vs float64 ${relErr(native.out, exact.out)}`);
    native.grads.forEach((g, i) => assert.ok(relErr(g, exact.grads[i]!) < 1e-2, `grad ${i} vs float64 ${relErr(g, exact.grads[i]!)}`));
    // The oracle itself is bf16 (not exact) and close to exact.
    assert.ok(relErr(oracle.out, exact.out) > 1e-5 && relErr(oracle.out, exact.out) < 1e-2);
  });
}

test('roundToBf16: nearest even on the top 16 bits; exact bf16 values, infinities and NaN unchanged', () => {
  const x = new Float32Array([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -9, -3.140625, Infinity, -Infinity, NaN, 0, 1e-40]);
  const r = roundToBf16(x);
  assert.deepEqual([...r.slice(0, 7)], [1, 1, 1 + 2 ** -6, 1, -3.140625, Infinity, -Infinity]);
  assert.ok(Number.isNaN(r[7]));
  assert.equal(r[8], 0);
});

test('the precision switch: float64 stays exact under bf16, bad values refused, withMatmulPrecision restores', () => {
  const a = lm.tensor([1 + 2 ** -12, 2], [1, 2], 'float64');
  const b = lm.tensor([1, 1], [2, 1], 'float64');
  lm.withMatmulPrecision('bf16', () => assert.equal(lm.matmul(a, b).item(), 3 + 2 ** -12));
  const a32 = lm.tensor([1 + 2 ** -12, 2], [1, 2]);
  const b32 = lm.tensor([1, 1], [2, 1]);
  lm.withMatmulPrecision('bf16', () => assert.equal(lm.matmul(a32, b32).item(), rounds ? 3 : 3 + 2 ** -12));
  assert.equal(lm.getMatmulPrecision(), 'fp32');
  assert.equal(lm.matmul(a32, b32).item(), 3 + 2 ** -12);
  assert.throws(() => lm.setMatmulPrecision('fp16' as lm.MatmulPrecision), /expected 'fp32' or 'bf16', got "fp16"/);
  assert.throws(() => lm.withMatmulPrecision('bf16', () => {
    throw new Error('inside');
  }), /inside/);
  assert.equal(lm.getMatmulPrecision(), 'fp32');
});

test('without bf16 instructions (kernel fp32) bf16 matmuls are the fp32 ones, and the run says so in one line', () => {
  const addon = loadAddon() as unknown as GemmAddon;
  const before = addon.gemmBf16Kernel();
  try {
    addon.gemmBf16Kernel('fp32');
    const note = bf16PrecisionNote();
    assert.equal(note.fallback, true);
    assert.match(note.line, /fall back to fp32/);
    const rng = new lm.Rng(5);
    const x = lm.tensor(randomValues(rng, 6 * 40), [6, 40]);
    const w = lm.tensor(randomValues(rng, 40 * 9), [40, 9]);
    assert.deepEqual(lm.withMatmulPrecision('bf16', () => lm.matmul(x, w).toArray()), lm.matmul(x, w).toArray());
  } finally {
    addon.gemmBf16Kernel(before);
  }
  if (before !== 'fp32') assert.equal(bf16PrecisionNote().fallback, false);
});

test('a small GPT trained in bf16 tracks the fp32 loss step by step', () => {
  const trainLosses = (precision: lm.MatmulPrecision): number[] => lm.withMatmulPrecision(precision, () => {
    const model = new GPT({ vocab_size: 48, block_size: 16, n_layer: 2, n_head: 2, n_embd: 64, dropout: 0, bias: true }, 11);
    const opt = makeOptimizer(model.namedTrainableParameters(), { ...defaultsOf(optimSpec), lr: 3e-3 });
    const rng = new lm.Rng(2);
    // A learnable stream: each token is the previous plus one (mod V), from random starts.
    const B = 8;
    const T = 16;
    const out: number[] = [];
    for (let step = 0; step < 30; step++) {
      const x = new Int32Array(B * T);
      const y = new Int32Array(B * T);
      for (let r = 0; r < B; r++) {
        const start = rng.int(48);
        for (let t = 0; t < T; t++) {
          x[r * T + t] = (start + t) % 48;
          y[r * T + t] = (start + t + 1) % 48;
        }
      }
      out.push(lm.tidy(() => {
        const loss = model.forward(lm.fromArray(x, [B, T]), lm.fromArray(y, [B, T])).loss!;
        lm.backward(loss);
        return loss.item();
      }));
      opt.step();
      opt.zeroGrad();
    }
    opt.dispose();
    model.dispose();
    return out;
  });
  const fp32 = trainLosses('fp32');
  const bf16 = trainLosses('bf16');
  assert.ok(fp32[29]! < fp32[0]! - 1, `fp32 did not learn: ${fp32[0]} → ${fp32[29]}`);
  const worst = Math.max(...fp32.map((l, i) => Math.abs(l - bf16[i]!)));
  assert.ok(worst < 0.05, `bf16 loss departs from fp32 by ${worst} (fp32 ${fp32.map((l) => l.toFixed(3)).join(' ')}, bf16 ${bf16.map((l) => l.toFixed(3)).join(' ')})`);
  if (rounds) assert.notDeepEqual(bf16, fp32);
});
