// Dropout on the attention probabilities (AttentionArgs.dropout): the exact keep pattern and the 1/(1 − p) scale
// read back through one-hot values, on the reference and on every native SIMD path; native against reference
// (float64) forward and backward with dropout on — causal and full, Tq ≠ Tk, masks, fused-QKV strided views, the
// split-key backward at several thread counts; p = 0 equal to no dropout; determinism per seed; bad rates.
// The finite-difference gradient checks of the dropout ops are op cases (op-cases.ts, gradcheck.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import type { AttentionBackwardArgs, FloatArray, Kernels, StridedArg } from '../../src/core/kernels.js';
import { loadAddon } from '../../src/core/native/addon.js';
import { attentionIsa, attentionWorkPerThread, nativeAttention } from '../../src/core/native/attention.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { hashUniform, Rng } from '../../src/core/random.js';
import { referenceKernels } from '../../src/core/reference/index.js';

type AttnKernels = Pick<Kernels<FloatArray>, 'attention' | 'attentionBackward'>;

interface Case {
  B: number;
  H: number;
  Tq: number;
  Tk: number;
  D: number;
  causal: boolean;
  /** 'broadcast': one (Tq, Tk) additive mask with some −∞ for every head. */
  mask: 'none' | 'broadcast';
  /** q, k, v as views of one fused (B, T, 3, H, D) buffer, out and grads as (B, T, H, D) views (Tq = Tk). */
  fused: boolean;
  dropout: number;
  seed: number;
}

function randn(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

function build(c: Case, seed: number): AttentionBackwardArgs<Float32Array> {
  const rng = new Rng(seed);
  const { B, H, Tq, Tk, D } = c;
  const bhtd = (data: Float32Array, T: number): StridedArg<Float32Array> => ({ data, offset: 0, strides: [H * T * D, T * D, D] });
  const nan = (n: number): Float32Array => new Float32Array(n).fill(Number.NaN);
  let views: Pick<AttentionBackwardArgs<Float32Array>, 'q' | 'k' | 'v' | 'out' | 'gout' | 'gq' | 'gk' | 'gv'>;
  if (c.fused) {
    const T = Tq;
    const s = [T * 3 * H * D, D, 3 * H * D];
    const qkv = randn(rng, B * T * 3 * H * D);
    const gqkv = nan(B * T * 3 * H * D);
    const bthd = (data: Float32Array): StridedArg<Float32Array> => ({ data, offset: 0, strides: [T * H * D, D, H * D] });
    views = {
      q: { data: qkv, offset: 0, strides: s }, k: { data: qkv, offset: H * D, strides: s }, v: { data: qkv, offset: 2 * H * D, strides: s },
      out: bthd(nan(B * T * H * D)), gout: bthd(randn(rng, B * T * H * D)),
      gq: { data: gqkv, offset: 0, strides: s }, gk: { data: gqkv, offset: H * D, strides: s }, gv: { data: gqkv, offset: 2 * H * D, strides: s },
    };
  } else {
    views = {
      q: bhtd(randn(rng, B * H * Tq * D), Tq), k: bhtd(randn(rng, B * H * Tk * D), Tk), v: bhtd(randn(rng, B * H * Tk * D), Tk),
      out: bhtd(nan(B * H * Tq * D), Tq), gout: bhtd(randn(rng, B * H * Tq * D), Tq),
      gq: bhtd(nan(B * H * Tq * D), Tq), gk: bhtd(nan(B * H * Tk * D), Tk), gv: bhtd(nan(B * H * Tk * D), Tk),
    };
  }
  let mask: StridedArg<Float32Array> | null = null;
  if (c.mask === 'broadcast') {
    const m = randn(rng, Tq * Tk);
    for (let i = 0; i < m.length; i++) if (rng.uniform() < 0.2) m[i] = -Infinity;
    mask = { data: m, offset: 0, strides: [0, 0, Tk] };
  }
  return {
    ...views, lse: nan(B * H * Tq), mask, B, H, Tq, Tk, D, scale: 1 / Math.sqrt(D), causal: c.causal,
    dropout: c.dropout, dropoutSeed: c.seed,
  };
}

/** The same arguments over float64 copies (views sharing a buffer share its copy), for the reference kernels. */
function toF64(a: AttentionBackwardArgs<Float32Array>): AttentionBackwardArgs<Float64Array> {
  const copies = new Map<Float32Array, Float64Array>();
  const f64 = (v: StridedArg<Float32Array>): StridedArg<Float64Array> => {
    let d = copies.get(v.data);
    if (!d) copies.set(v.data, (d = Float64Array.from(v.data)));
    return { data: d, offset: v.offset, strides: v.strides };
  };
  return {
    ...a, q: f64(a.q), k: f64(a.k), v: f64(a.v), out: f64(a.out), lse: new Float64Array(a.lse.length),
    mask: a.mask ? f64(a.mask) : null, gout: f64(a.gout), gq: f64(a.gq), gk: f64(a.gk), gv: f64(a.gv),
  };
}

function at(x: StridedArg, b: number, h: number, t: number, d: number): number {
  return x.data[x.offset + b * x.strides[0]! + h * x.strides[1]! + t * x.strides[2]! + d]!;
}

/** Native forward and backward against the float64 reference on the same inputs. */
function checkParity(c: Case, seed: number, label: string): void {
  const a = build(c, seed);
  const ref = toF64(a);
  nativeAttention.attention(a);
  nativeAttention.attentionBackward(a);
  referenceKernels.attention(ref);
  referenceKernels.attentionBackward(ref);
  const tag = `${label} ${JSON.stringify(c)}`;
  for (let i = 0; i < a.lse.length; i++) {
    const g = a.lse[i]!, w = ref.lse[i]!;
    assert.ok(g === w || Math.abs(g - w) <= 2e-5 * (1 + Math.abs(w)), `lse[${i}] ${tag}: ${g} vs ${w}`);
  }
  for (const [name, got, want, T, tol] of [
    ['out', a.out, ref.out, c.Tq, 2e-5], ['gq', a.gq, ref.gq, c.Tq, 1e-4], ['gk', a.gk, ref.gk, c.Tk, 1e-4], ['gv', a.gv, ref.gv, c.Tk, 1e-4],
  ] as const) {
    let err = 0;
    for (let b = 0; b < c.B; b++) for (let h = 0; h < c.H; h++) for (let t = 0; t < T; t++) for (let d = 0; d < c.D; d++) {
      const w = at(want, b, h, t, d);
      const e = Math.abs(at(got, b, h, t, d) - w) / (1 + Math.abs(w));
      err = Number.isNaN(e) ? Infinity : Math.max(err, e);
    }
    assert.ok(err <= tol, `${name} ${tag}: max relative error ${err}`);
  }
}

const ISAS = (['portable', 'avx2', 'avx512'] as const).filter((name) => attentionIsa(name) === name);
const BEST = ISAS[ISAS.length - 1]!;

/**
 * With D = Tk and v_j the one-hot e_j, out_ij = P̃_ij: the whole dropped probability matrix, read back. Checks every
 * entry against the contract — kept ⇔ hashUniform(seed, ((b·H + h)·Tq + i)·Tk + j) ≥ p, kept = P/(1 − p), dropped
 * exactly 0 — with P from the same kernel without dropout, and that lse ignores dropout. Returns the kept fraction.
 */
function keepPattern(kern: AttnKernels, f: <T extends FloatArray>(n: number) => T, c: Omit<Case, 'D' | 'fused' | 'mask'>, tol: number): number {
  const { B, H, Tq, Tk, causal, dropout: p, seed } = c;
  const D = Tk;
  const rng = new Rng(seed + 1);
  const view = (T: number, fill: (i: number) => number): StridedArg<FloatArray> => {
    const data = f(B * H * T * D);
    for (let i = 0; i < data.length; i++) data[i] = fill(i);
    return { data, offset: 0, strides: [H * T * D, T * D, D] };
  };
  // q and k random in their first 8 dims (zero beyond), v_j = e_j.
  const q = view(Tq, (i) => (i % D < 8 ? rng.normal() : 0));
  const k = view(Tk, (i) => (i % D < 8 ? rng.normal() : 0));
  const v = view(Tk, (i) => (Math.floor(i / D) % Tk === i % D ? 1 : 0));
  const args = (dropout: number): Parameters<AttnKernels['attention']>[0] => ({
    q, k, v, out: view(Tq, () => Number.NaN), lse: f(B * H * Tq), mask: null, B, H, Tq, Tk, D, scale: 0.5, causal,
    dropout, dropoutSeed: seed,
  });
  const plain = args(0);
  const dropped = args(p);
  kern.attention(plain);
  kern.attention(dropped);
  let kept = 0, visible = 0;
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < Tq; i++) {
    const li = (b * H + h) * Tq + i;
    assert.equal(dropped.lse[li], plain.lse[li], `lse[${li}] must not depend on dropout`);
    for (let j = 0; j < Tk; j++) {
      const P = at(plain.out, b, h, i, j);
      const got = at(dropped.out, b, h, i, j);
      if (causal && j > i + Tk - Tq) {
        assert.equal(got, 0, `hidden key (${b}, ${h}, ${i}, ${j})`);
        continue;
      }
      visible++;
      const keep = hashUniform(seed, (((b * H + h) * Tq + i) * Tk + j) >>> 0) >= p;
      if (keep) {
        kept++;
        assert.ok(Math.abs(got - P / (1 - p)) <= tol * Math.abs(P / (1 - p)), `kept (${b}, ${h}, ${i}, ${j}): ${got} vs ${P / (1 - p)}`);
      } else {
        assert.equal(got, 0, `dropped (${b}, ${h}, ${i}, ${j}) must be exactly 0, got ${got}`);
      }
    }
  }
  return kept / visible;
}

test('the keep pattern is hashUniform(seed, ((b·H + h)·Tq + i)·Tk + j) ≥ p, kept entries × 1/(1 − p), in every backend', () => {
  const f32 = <T extends FloatArray>(n: number): T => new Float32Array(n) as T;
  const f64 = <T extends FloatArray>(n: number): T => new Float64Array(n) as T;
  const base = { B: 2, H: 3, Tq: 24, Tk: 40, causal: false, dropout: 0.2, seed: 77 };
  const fraction = keepPattern(referenceKernels, f64, base, 1e-12);
  // 5760 Bernoulli(0.8) draws: σ ≈ 0.0053, so ±0.025 is beyond 4.5σ.
  assert.ok(Math.abs(fraction - 0.8) < 0.025, `kept fraction ${fraction}, want ≈ 0.8`);
  for (const isa of ISAS) {
    attentionIsa(isa);
    assert.equal(keepPattern(nativeAttention as AttnKernels, f32, base, 2e-6), fraction, isa);
    keepPattern(nativeAttention as AttnKernels, f32, { ...base, Tq: 9, causal: true, dropout: 0.5, seed: 3 }, 2e-6);
  }
  attentionIsa(BEST);
  const half = keepPattern(referenceKernels, f64, { ...base, dropout: 0.5, seed: 5 }, 1e-12);
  assert.ok(Math.abs(half - 0.5) < 0.03, `kept fraction ${half}, want ≈ 0.5`);
});

test('native equals the reference with dropout on: every SIMD path, causal and full, masks, fused QKV views', () => {
  let seed = 500;
  for (const isa of ISAS) {
    attentionIsa(isa);
    const cases: Case[] = [
      { B: 2, H: 3, Tq: 64, Tk: 64, D: 32, causal: true, mask: 'none', fused: true, dropout: 0.2, seed: 1 },
      { B: 2, H: 2, Tq: 70, Tk: 70, D: 16, causal: false, mask: 'none', fused: true, dropout: 0.1, seed: 2 },
      { B: 1, H: 2, Tq: 5, Tk: 17, D: 7, causal: true, mask: 'broadcast', fused: false, dropout: 0.5, seed: 3 },
      { B: 1, H: 2, Tq: 70, Tk: 130, D: 33, causal: false, mask: 'broadcast', fused: false, dropout: 0.3, seed: 4 },
      { B: 2, H: 1, Tq: 1, Tk: 20, D: 8, causal: true, mask: 'none', fused: false, dropout: 0.2, seed: -9 },
    ];
    for (const c of cases) checkParity(c, seed++, isa);
  }
  attentionIsa(BEST);
  // More threads than heads (the split-key backward with its dQ reduction) and a single thread.
  const setThreads = loadAddon()['setThreads'] as (n: number) => void;
  const before = (loadAddon()['cpuInfo'] as () => { threads: number })().threads;
  const work = attentionWorkPerThread(1);
  try {
    for (const threads of [3, 2, 1]) {
      setThreads(threads);
      checkParity({ B: 1, H: 1, Tq: 130, Tk: 130, D: 64, causal: true, mask: 'none', fused: false, dropout: 0.2, seed: 11 }, seed++, `${threads} threads`);
      checkParity({ B: 2, H: 4, Tq: 70, Tk: 70, D: 16, causal: true, mask: 'none', fused: true, dropout: 0.2, seed: 12 }, seed++, `${threads} threads`);
    }
  } finally {
    setThreads(before);
    attentionWorkPerThread(work);
  }
});

test('determinism per seed; another seed gives another mask; p = 0 ignores the seed', () => {
  const c: Case = { B: 2, H: 2, Tq: 40, Tk: 40, D: 16, causal: true, mask: 'none', fused: true, dropout: 0.2, seed: 42 };
  const run = (kern: AttnKernels, over: Partial<Case>): number[][] => {
    const a = build({ ...c, ...over }, 7);
    kern.attention(a);
    kern.attentionBackward(a);
    return [Array.from(a.out.data), Array.from(a.lse), Array.from(a.gq.data)];
  };
  for (const kern of [nativeAttention as AttnKernels, referenceKernels as AttnKernels]) {
    assert.deepEqual(run(kern, {}), run(kern, {}));
    const other = run(kern, { seed: 43 });
    assert.notDeepEqual(other[0], run(kern, {})[0]);
    assert.deepEqual(other[1], run(kern, {})[1], 'lse does not depend on the mask');
    assert.deepEqual(run(kern, { dropout: 0, seed: 1 }), run(kern, { dropout: 0, seed: 99 }));
  }
});

test('the autograd ops: dropout 0 is bitwise no dropout, dropout > 0 changes the output, bad rates throw', () => {
  assert.ok(loadNativeBackend().loaded, 'the native backend loads');
  for (const backend of ['reference', 'native'] as const) {
    lm.withBackend(backend, () => lm.tidy(() => {
      const rng = new Rng(3);
      const qkv = lm.requireGrad(lm.tensor(Array.from({ length: 2 * 9 * 36 }, () => rng.normal()), [2, 9, 36]));
      const grads = (options: Parameters<typeof lm.selfAttention>[2]): number[][] => {
        qkv.grad?.dispose();
        qkv.grad = null;
        const y = lm.selfAttention(qkv, 3, options);
        lm.backward(lm.sum(lm.mul(y, y)));
        return [y.toArray(), qkv.grad!.toArray()];
      };
      const none = grads({});
      assert.deepEqual(grads({ dropout: 0, dropoutSeed: 1234 }), none, backend);
      const dropped = grads({ dropout: 0.3, dropoutSeed: 1234 });
      assert.notDeepEqual(dropped[0], none[0], backend);
      assert.deepEqual(grads({ dropout: 0.3, dropoutSeed: 1234 }), dropped, backend);
      for (const bad of [1, -0.1, Number.NaN]) {
        assert.throws(() => lm.selfAttention(qkv, 3, { dropout: bad }), /selfAttention: options\.dropout/);
        assert.throws(() => lm.attention(lm.reshape(qkv, [2, 9, 3, 12]), lm.reshape(qkv, [2, 9, 3, 12]), lm.reshape(qkv, [2, 9, 3, 12]), { dropout: bad }), /attention: options\.dropout/);
      }
    }));
  }
  const a = build({ B: 1, H: 1, Tq: 3, Tk: 3, D: 4, causal: true, mask: 'none', fused: false, dropout: 1, seed: 0 }, 1);
  assert.throws(() => nativeAttention.attention(a), (e: unknown) => e instanceof TypeError && /dropout/.test(e.message));
  assert.throws(() => nativeAttention.attentionBackward({ ...a, dropout: -1 }), (e: unknown) => e instanceof TypeError && /dropout/.test(e.message));
  assert.throws(() => referenceKernels.attention(toF64(a)), /dropout must be a probability/);
});
