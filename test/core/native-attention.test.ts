// Native fused attention (forward and backward) against a float64 naive implementation written here and against
// the reference backend (core/reference, run in float64), across
// every SIMD path this CPU runs: causal and full, Tq ≠ Tk, masks, strided views of a fused QKV buffer, odd D,
// sliding windows (local attention), NaN propagation, fully masked rows, bad arguments; plus finite-difference
// checks of the backward.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AttentionBackwardArgs, StridedArg } from '../../src/core/kernels.js';
import { loadAddon } from '../../src/core/native/addon.js';
import { attentionIsa, attentionWorkPerThread, nativeAttention } from '../../src/core/native/attention.js';
import { Rng } from '../../src/core/random.js';
import { referenceKernels } from '../../src/core/reference/index.js';

interface Case {
  B: number;
  H: number;
  Tq: number;
  Tk: number;
  D: number;
  causal: boolean;
  /** 'none', 'broadcast' (one (Tq, Tk) mask for every head), 'full' ((B, H, Tq, Tk)) or 'keys' (a (B, Tk) padding mask). */
  mask: 'none' | 'broadcast' | 'full' | 'keys';
  /** q, k, v as views of one fused (B, T, 3, H, D) buffer (needs Tq = Tk) and out/grads as (B, T, H, D) views. */
  fused: boolean;
  /** Sliding window (causal only); absent or 0 = none. */
  window?: number;
}

interface Built {
  args: AttentionBackwardArgs<Float32Array>;
  /** Element (b, h, t, d) of a view, as float64. */
  at: (v: StridedArg<Float32Array>, b: number, h: number, t: number, d: number) => number;
  maskAt: (b: number, h: number, i: number, j: number) => number;
}

function randn(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

function contiguous(data: Float32Array, H: number, T: number, D: number): StridedArg<Float32Array> {
  return { data, offset: 0, strides: [H * T * D, T * D, D] };
}

function build(c: Case, seed: number): Built {
  const rng = new Rng(seed);
  const { B, H, Tq, Tk, D } = c;
  let q: StridedArg<Float32Array>, k: StridedArg<Float32Array>, v: StridedArg<Float32Array>;
  let out: StridedArg<Float32Array>, gq: StridedArg<Float32Array>, gk: StridedArg<Float32Array>;
  let gv: StridedArg<Float32Array>, gout: StridedArg<Float32Array>;
  if (c.fused) {
    assert.equal(Tq, Tk);
    const T = Tq;
    const qkv = randn(rng, B * T * 3 * H * D);
    const s = [T * 3 * H * D, D, 3 * H * D];
    q = { data: qkv, offset: 0, strides: s };
    k = { data: qkv, offset: H * D, strides: s };
    v = { data: qkv, offset: 2 * H * D, strides: s };
    const bthd = (data: Float32Array): StridedArg<Float32Array> => ({ data, offset: 0, strides: [T * H * D, D, H * D] });
    out = bthd(new Float32Array(B * T * H * D).fill(Number.NaN));
    gout = bthd(randn(rng, B * T * H * D));
    const gqkv = new Float32Array(B * T * 3 * H * D).fill(Number.NaN);
    gq = { data: gqkv, offset: 0, strides: s };
    gk = { data: gqkv, offset: H * D, strides: s };
    gv = { data: gqkv, offset: 2 * H * D, strides: s };
  } else {
    q = contiguous(randn(rng, B * H * Tq * D), H, Tq, D);
    k = contiguous(randn(rng, B * H * Tk * D), H, Tk, D);
    v = contiguous(randn(rng, B * H * Tk * D), H, Tk, D);
    out = contiguous(new Float32Array(B * H * Tq * D).fill(Number.NaN), H, Tq, D);
    gout = contiguous(randn(rng, B * H * Tq * D), H, Tq, D);
    gq = contiguous(new Float32Array(B * H * Tq * D).fill(Number.NaN), H, Tq, D);
    gk = contiguous(new Float32Array(B * H * Tk * D).fill(Number.NaN), H, Tk, D);
    gv = contiguous(new Float32Array(B * H * Tk * D).fill(Number.NaN), H, Tk, D);
  }
  let mask: StridedArg<Float32Array> | null = null;
  if (c.mask !== 'none') {
    const n = c.mask === 'full' ? B * H * Tq * Tk : c.mask === 'keys' ? B * Tk : Tq * Tk;
    const m = randn(rng, n);
    // Some keys masked out entirely (−inf), as a padding mask would.
    for (let i = 0; i < n; i++) if (rng.uniform() < 0.2) m[i] = -Infinity;
    const strides = { full: [H * Tq * Tk, Tq * Tk, Tk], broadcast: [0, 0, Tk], keys: [Tk, 0, 0] }[c.mask];
    mask = { data: m, offset: 0, strides };
  }
  const at = (x: StridedArg<Float32Array>, b: number, h: number, t: number, d: number): number =>
    x.data[x.offset + b * x.strides[0]! + h * x.strides[1]! + t * x.strides[2]! + d]!;
  const maskAt = (b: number, h: number, i: number, j: number): number =>
    mask ? mask.data[mask.offset + b * mask.strides[0]! + h * mask.strides[1]! + i * mask.strides[2]! + j]! : 0;
  const args: AttentionBackwardArgs<Float32Array> = {
    q, k, v, out, lse: new Float32Array(B * H * Tq).fill(Number.NaN), mask, B, H, Tq, Tk, D,
    scale: 1 / Math.sqrt(Math.max(D, 1)), causal: c.causal, window: c.window ?? 0, dropout: 0, dropoutSeed: 0, gout, gq, gk, gv,
  };
  return { args, at, maskAt };
}

interface Naive {
  out: Float64Array; // (B, H, Tq, D)
  lse: Float64Array; // (B, H, Tq)
  gq: Float64Array; // (B, H, Tq, D)
  gk: Float64Array; // (B, H, Tk, D)
  gv: Float64Array; // (B, H, Tk, D)
}

/**
 * Materialises P per head in float64. A row with no finite score gets out 0, lse −inf and no gradient.
 * With a window w (causal), query i sees keys (i + Tk − Tq − w, i + Tk − Tq]: the others get score −inf.
 */
function naive(x: Built): Naive {
  const { B, H, Tq, Tk, D, scale, causal, q, k, v, gout } = x.args;
  const w = causal ? x.args.window ?? 0 : 0;
  const r: Naive = {
    out: new Float64Array(B * H * Tq * D), lse: new Float64Array(B * H * Tq),
    gq: new Float64Array(B * H * Tq * D), gk: new Float64Array(B * H * Tk * D), gv: new Float64Array(B * H * Tk * D),
  };
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const bh = b * H + h;
      for (let i = 0; i < Tq; i++) {
        const lim = causal ? Math.min(Tk, i + Tk - Tq + 1) : Tk;
        const s = new Float64Array(Math.max(lim, 0));
        let m = -Infinity;
        for (let j = 0; j < lim; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += x.at(q, b, h, i, d) * x.at(x.args.k, b, h, j, d);
          s[j] = w > 0 && j <= i + Tk - Tq - w ? -Infinity : dot * scale + x.maskAt(b, h, i, j);
          m = Math.max(m, s[j]!);
        }
        if (m === -Infinity) {
          r.lse[bh * Tq + i] = -Infinity;
          continue;
        }
        let sum = 0;
        for (let j = 0; j < lim; j++) sum += Math.exp(s[j]! - m);
        r.lse[bh * Tq + i] = m + Math.log(sum);
        const p = s.map((sj) => Math.exp(sj - m) / sum);
        const o = r.out.subarray((bh * Tq + i) * D, (bh * Tq + i + 1) * D);
        for (let j = 0; j < lim; j++) for (let d = 0; d < D; d++) o[d]! += p[j]! * x.at(v, b, h, j, d);
        // Backward: dP_j = dO·v_j, Di = dO·O, dS = P(dP − Di), dQ = scale·dS·K, dK_j += scale·dS_j·q, dV_j += P_j·dO.
        let Di = 0;
        for (let d = 0; d < D; d++) Di += x.at(gout, b, h, i, d) * o[d]!;
        for (let j = 0; j < lim; j++) {
          let dP = 0;
          for (let d = 0; d < D; d++) dP += x.at(gout, b, h, i, d) * x.at(v, b, h, j, d);
          const dS = p[j]! * (dP - Di) * scale;
          for (let d = 0; d < D; d++) {
            r.gq[(bh * Tq + i) * D + d]! += dS * x.at(k, b, h, j, d);
            r.gk[(bh * Tk + j) * D + d]! += dS * x.at(q, b, h, i, d);
            r.gv[(bh * Tk + j) * D + d]! += p[j]! * x.at(gout, b, h, i, d);
          }
        }
      }
    }
  }
  return r;
}

/** max |got − want| / (1 + |want|) over a (B, H, T, D) view. */
function viewErr(x: Built, view: StridedArg<Float32Array>, want: Float64Array, T: number): number {
  const { B, H, D } = x.args;
  let err = 0;
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) for (let d = 0; d < D; d++) {
    const w = want[((b * H + h) * T + t) * D + d]!;
    const g = x.at(view, b, h, t, d);
    const e = Math.abs(g - w) / (1 + Math.abs(w));
    err = Number.isNaN(e) ? Infinity : Math.max(err, e);
  }
  return err;
}

function check(c: Case, seed: number, label: string): void {
  const x = build(c, seed);
  nativeAttention.attention(x.args);
  nativeAttention.attentionBackward(x.args);
  const want = naive(x);
  const { Tq, Tk } = x.args;
  const tag = `${label} ${JSON.stringify(c)}`;
  assert.ok(viewErr(x, x.args.out, want.out, Tq) < 2e-5, `out ${tag}: ${viewErr(x, x.args.out, want.out, Tq)}`);
  for (let i = 0; i < want.lse.length; i++) {
    const w = want.lse[i]!, g = x.args.lse[i]!;
    assert.ok(w === g || Math.abs(g - w) / (1 + Math.abs(w)) < 2e-5, `lse[${i}] ${tag}: ${g} vs ${w}`);
  }
  for (const [name, view, w, T] of [
    ['gq', x.args.gq, want.gq, Tq], ['gk', x.args.gk, want.gk, Tk], ['gv', x.args.gv, want.gv, Tk],
  ] as const) {
    const e = viewErr(x, view, w, T);
    assert.ok(e < 1e-4, `${name} ${tag}: ${e}`);
  }
}

const ISAS = (['portable', 'avx2', 'avx512'] as const).filter((name) => {
  const got = attentionIsa(name);
  return got === name;
});
const BEST = ISAS[ISAS.length - 1]!;

test('every D and T, causal and full, fused (B, T, 3, H, D) views, on the best SIMD path', () => {
  attentionIsa(BEST);
  let seed = 1;
  for (const D of [1, 7, 32, 64]) {
    for (const T of [1, 5, 64, 130]) {
      for (const causal of [true, false]) {
        check({ B: 2, H: 3, Tq: T, Tk: T, D, causal, mask: 'none', fused: (T + D) % 2 === 0 }, seed++, BEST);
      }
    }
  }
});

test('every SIMD path: Tq ≠ Tk (KV-cache decode), masks, one head (split key tiles), odd D', () => {
  let seed = 100;
  for (const isa of ISAS) {
    attentionIsa(isa);
    const cases: Case[] = [
      { B: 2, H: 2, Tq: 1, Tk: 17, D: 7, causal: true, mask: 'none', fused: false },
      { B: 1, H: 3, Tq: 1, Tk: 17, D: 32, causal: false, mask: 'none', fused: false },
      { B: 2, H: 2, Tq: 5, Tk: 17, D: 64, causal: true, mask: 'broadcast', fused: false },
      { B: 2, H: 2, Tq: 9, Tk: 4, D: 5, causal: true, mask: 'none', fused: false },
      { B: 2, H: 3, Tq: 64, Tk: 64, D: 32, causal: true, mask: 'full', fused: true },
      { B: 1, H: 2, Tq: 70, Tk: 130, D: 33, causal: false, mask: 'broadcast', fused: false },
      { B: 1, H: 1, Tq: 130, Tk: 130, D: 64, causal: true, mask: 'none', fused: true },
      { B: 1, H: 1, Tq: 200, Tk: 200, D: 16, causal: false, mask: 'full', fused: false },
      { B: 3, H: 1, Tq: 130, Tk: 130, D: 1, causal: true, mask: 'none', fused: false },
      { B: 1, H: 2, Tq: 67, Tk: 67, D: 96, causal: true, mask: 'none', fused: true },
      { B: 3, H: 2, Tq: 20, Tk: 90, D: 8, causal: false, mask: 'keys', fused: false },
      // Short sequences run on narrow key tiles (2 vectors) when every key fits in one: a ViT's 17 tokens of
      // D = 24, and the edges of the narrow tile (Tk = 2W fits, 2W + 1 takes the wide tiles) on each ISA.
      { B: 3, H: 4, Tq: 17, Tk: 17, D: 24, causal: false, mask: 'none', fused: true },
      { B: 2, H: 2, Tq: 17, Tk: 17, D: 24, causal: true, mask: 'full', fused: false },
      { B: 2, H: 2, Tq: 32, Tk: 32, D: 24, causal: false, mask: 'broadcast', fused: false },
      { B: 2, H: 2, Tq: 33, Tk: 33, D: 24, causal: false, mask: 'none', fused: true },
      { B: 2, H: 2, Tq: 16, Tk: 16, D: 9, causal: true, mask: 'keys', fused: false },
      { B: 1, H: 2, Tq: 3, Tk: 9, D: 24, causal: false, mask: 'full', fused: false },
    ];
    for (const c of cases) check(c, seed++, isa);
  }
  // More threads than key tiles or heads (the split-key backward and its dQ reduction), and a single thread.
  const setThreads = loadAddon()['setThreads'] as (n: number) => void;
  const before = (loadAddon()['cpuInfo'] as () => { threads: number })().threads;
  const work = attentionWorkPerThread(1);  // every thread gets a share, even of these small shapes
  try {
    for (const threads of [3, 1]) {
      setThreads(threads);
      const tag = `${threads} threads`;
      check({ B: 1, H: 1, Tq: 130, Tk: 130, D: 64, causal: true, mask: 'none', fused: false }, seed++, tag);
      check({ B: 1, H: 3, Tq: 64, Tk: 200, D: 32, causal: true, mask: 'full', fused: false }, seed++, tag);
      check({ B: 2, H: 4, Tq: 70, Tk: 70, D: 16, causal: true, mask: 'broadcast', fused: true }, seed++, tag);
    }
  } finally {
    setThreads(before);
    attentionWorkPerThread(work);
  }
  attentionIsa(BEST);
});

test('sliding window on every SIMD path: windows below and above the tile sizes, Tq ≠ Tk, masks, odd D, threads', () => {
  // Key tiles are 16, 32 or 64 keys (4 vectors) and query blocks 64 rows, so windows of 1, 3, 17, 40, 64, 100 and
  // 129 start bands inside, at and across tile edges; Tq < Tk puts the band at a cache offset; Tq > Tk leaves
  // rows with no key; w ≥ Tk hides nothing.
  let seed = 500;
  const cases: Case[] = [
    { B: 2, H: 2, Tq: 130, Tk: 130, D: 7, causal: true, mask: 'none', fused: true, window: 1 },
    { B: 1, H: 2, Tq: 200, Tk: 200, D: 33, causal: true, mask: 'full', fused: false, window: 3 },
    { B: 2, H: 2, Tq: 5, Tk: 90, D: 8, causal: true, mask: 'broadcast', fused: false, window: 17 },
    { B: 1, H: 2, Tq: 70, Tk: 130, D: 5, causal: true, mask: 'keys', fused: false, window: 40 },
    { B: 1, H: 1, Tq: 130, Tk: 130, D: 64, causal: true, mask: 'none', fused: true, window: 64 },
    { B: 1, H: 1, Tq: 200, Tk: 200, D: 16, causal: true, mask: 'broadcast', fused: false, window: 100 },
    { B: 1, H: 2, Tq: 130, Tk: 130, D: 9, causal: true, mask: 'none', fused: false, window: 129 },
    { B: 2, H: 1, Tq: 1, Tk: 17, D: 7, causal: true, mask: 'none', fused: false, window: 5 },
    { B: 2, H: 2, Tq: 9, Tk: 4, D: 5, causal: true, mask: 'none', fused: false, window: 2 },
    { B: 1, H: 1, Tq: 40, Tk: 40, D: 3, causal: true, mask: 'none', fused: false, window: 300 },
  ];
  for (const isa of ISAS) {
    attentionIsa(isa);
    for (const c of cases) check(c, seed++, `${isa} window`);
  }
  attentionIsa(BEST);
  const setThreads = loadAddon()['setThreads'] as (n: number) => void;
  const before = (loadAddon()['cpuInfo'] as () => { threads: number })().threads;
  const work = attentionWorkPerThread(1);
  try {
    for (const threads of [3, 1]) {
      setThreads(threads);
      const tag = `${threads} threads window`;
      check({ B: 1, H: 1, Tq: 200, Tk: 200, D: 32, causal: true, mask: 'none', fused: false, window: 50 }, seed++, tag);
      check({ B: 1, H: 3, Tq: 64, Tk: 200, D: 16, causal: true, mask: 'full', fused: false, window: 70 }, seed++, tag);
      check({ B: 2, H: 4, Tq: 70, Tk: 70, D: 16, causal: true, mask: 'broadcast', fused: true, window: 9 }, seed++, tag);
    }
  } finally {
    setThreads(before);
    attentionWorkPerThread(work);
  }
});

test('sliding window: w ≥ Tk is bit-identical to dense causal; a NaN key or value reaches only the rows whose window holds it', () => {
  for (const isa of ISAS) {
    attentionIsa(isa);
    const dense = build({ B: 1, H: 2, Tq: 70, Tk: 130, D: 12, causal: true, mask: 'broadcast', fused: false }, 40);
    const wide = build({ B: 1, H: 2, Tq: 70, Tk: 130, D: 12, causal: true, mask: 'broadcast', fused: false, window: 130 }, 40);
    for (const x of [dense, wide]) {
      nativeAttention.attention(x.args);
      nativeAttention.attentionBackward(x.args);
    }
    for (const name of ['out', 'gq', 'gk', 'gv'] as const) assert.deepEqual(wide.args[name].data, dense.args[name].data, `${isa} ${name}`);
    assert.deepEqual(wide.args.lse, dense.args.lse, `${isa} lse`);

    // Window 5 over 70 positions: key / value row 10 is seen by queries 10..14 only.
    const w = build({ B: 1, H: 1, Tq: 70, Tk: 70, D: 5, causal: true, mask: 'none', fused: false, window: 5 }, 41);
    w.args.v.data[10 * 5 + 2] = Number.NaN;
    w.args.k.data[30 * 5 + 1] = Number.NaN;
    nativeAttention.attention(w.args);
    nativeAttention.attentionBackward(w.args);
    for (let t = 0; t < 70; t++) {
      const seesV = t >= 10 && t < 15, seesK = t >= 30 && t < 35;
      assert.equal(Number.isNaN(w.args.out.data[t * 5 + 2]!), seesV || seesK, `${isa}: out row ${t}`);
      assert.equal(Number.isNaN(w.args.gq.data[t * 5]!), seesV || seesK, `${isa}: gq row ${t}`);
      // Key row t meets queries t..t+4; it turns NaN when one of them saw a NaN.
      const meets = (lo: number): boolean => t + 4 >= lo && t < lo + 5;
      assert.equal(Number.isNaN(w.args.gk.data[t * 5]!), meets(10) || meets(30), `${isa}: gk row ${t}`);
    }
  }
  attentionIsa(BEST);
});

test('fully masked rows give out 0, lse −inf and zero gradients; NaN inputs propagate', () => {
  for (const isa of ISAS) {
    attentionIsa(isa);
    // Row 2 of the mask is all −inf: out and its gradients are 0 there, other rows are unaffected.
    const x = build({ B: 1, H: 2, Tq: 4, Tk: 6, D: 3, causal: false, mask: 'broadcast', fused: false }, 7);
    x.args.mask!.data.fill(0);
    for (let j = 0; j < 6; j++) x.args.mask!.data[2 * 6 + j] = -Infinity;
    nativeAttention.attention(x.args);
    nativeAttention.attentionBackward(x.args);
    const want = naive(x);
    assert.equal(x.args.lse[2], -Infinity);
    assert.equal(x.args.lse[4 + 2], -Infinity);
    for (let d = 0; d < 3; d++) {
      assert.equal(x.args.out.data[2 * 3 + d], 0);
      assert.equal(x.args.gq.data[2 * 3 + d], 0);
    }
    assert.ok(viewErr(x, x.args.out, want.out, 4) < 2e-5, isa);
    assert.ok(viewErr(x, x.args.gk, want.gk, 6) < 1e-4, isa);

    // A NaN in key 3 reaches every query that sees key 3 (causal: rows 3.. with Tq = Tk), and no other row.
    const y = build({ B: 1, H: 1, Tq: 6, Tk: 6, D: 4, causal: true, mask: 'none', fused: false }, 8);
    y.args.k.data[3 * 4 + 1] = Number.NaN;
    nativeAttention.attention(y.args);
    for (let i = 0; i < 6; i++) {
      const rowNaN = Number.isNaN(y.args.out.data[i * 4]!) && Number.isNaN(y.args.lse[i]!);
      assert.equal(rowNaN, i >= 3, `${isa}: row ${i} of out/lse NaN = ${rowNaN}`);
    }
    nativeAttention.attentionBackward(y.args);
    assert.ok(Number.isNaN(y.args.gq.data[3 * 4]!), `${isa}: gq row 3 should be NaN`);
    assert.ok(!Number.isNaN(y.args.gq.data[1 * 4]!), `${isa}: gq row 1 never saw key 3`);

    // A NaN in a future value row, query row or upstream gradient never leaks to rows or keys that cannot see it.
    const w = build({ B: 1, H: 1, Tq: 70, Tk: 70, D: 5, causal: true, mask: 'none', fused: false }, 10);
    w.args.v.data[40 * 5 + 2] = Number.NaN;
    w.args.q.data[50 * 5 + 1] = Number.NaN;
    w.args.gout.data[45 * 5 + 3] = Number.NaN;
    nativeAttention.attention(w.args);
    nativeAttention.attentionBackward(w.args);
    for (let t = 0; t < 70; t++) {
      assert.equal(Number.isNaN(w.args.out.data[t * 5 + 2]!), t >= 40, `${isa}: out row ${t}`);
      assert.equal(Number.isNaN(w.args.gk.data[t * 5]!), true, `${isa}: gk row ${t} sees query 50 or dO row 45`);
      assert.equal(Number.isNaN(w.args.gv.data[t * 5 + 3]!), t <= 50, `${isa}: gv row ${t} (query 50 has NaN lse)`);
      assert.equal(Number.isNaN(w.args.gq.data[t * 5]!), t >= 40, `${isa}: gq row ${t}`);
    }

    // A NaN in the mask or in a value row propagates the same way (no silent masking).
    const z = build({ B: 1, H: 1, Tq: 3, Tk: 5, D: 2, causal: false, mask: 'broadcast', fused: false }, 9);
    z.args.mask!.data.fill(-Infinity);
    z.args.mask!.data[1 * 5 + 2] = Number.NaN;
    nativeAttention.attention(z.args);
    assert.ok(Number.isNaN(z.args.out.data[1 * 2]!) && Number.isNaN(z.args.lse[1]!), `${isa}: NaN mask entry`);
    assert.equal(z.args.lse[0], -Infinity);
  }
  attentionIsa(BEST);
});

for (const [label, c] of [
  ['tiny causal case with a mask', { B: 1, H: 2, Tq: 3, Tk: 4, D: 3, causal: true, mask: 'full', fused: false }],
  ['sliding window 2, Tq < Tk, a mask', { B: 1, H: 2, Tq: 4, Tk: 6, D: 3, causal: true, mask: 'full', fused: false, window: 2 }],
] as const) test(`finite differences of the native forward match the native backward (${label})`, () => {
  const x = build(c, 11);
  for (let i = 0; i < x.args.mask!.data.length; i++) if (x.args.mask!.data[i] === -Infinity) x.args.mask!.data[i] = -1;
  // L = Σ out ⊙ gout, so dL/dq etc. are exactly what the backward computes from gout.
  const loss = (): number => {
    nativeAttention.attention(x.args);
    let s = 0;
    for (let i = 0; i < x.args.out.data.length; i++) s += x.args.out.data[i]! * x.args.gout.data[i]!;
    return s;
  };
  loss();
  nativeAttention.attentionBackward(x.args);
  const eps = 1e-2;
  for (const [input, grad] of [[x.args.q, x.args.gq], [x.args.k, x.args.gk], [x.args.v, x.args.gv]] as const) {
    const analytic = Float64Array.from(grad.data);
    for (let i = 0; i < input.data.length; i++) {
      const keep = input.data[i]!;
      input.data[i] = keep + eps;
      const up = loss();
      input.data[i] = keep - eps;
      const down = loss();
      input.data[i] = keep;
      const fd = (up - down) / (2 * eps);
      assert.ok(Math.abs(fd - analytic[i]!) < 2e-3 * (1 + Math.abs(fd)), `element ${i}: fd ${fd} vs ${analytic[i]}`);
    }
  }
});

test('bad arguments throw a TypeError naming the argument instead of reading out of bounds', () => {
  const x = build({ B: 2, H: 2, Tq: 5, Tk: 5, D: 4, causal: true, mask: 'broadcast', fused: false }, 12);
  const short = { ...x.args, k: { ...x.args.k, data: x.args.k.data.subarray(0, x.args.k.data.length - 1) } };
  assert.throws(() => nativeAttention.attention(short), (e: unknown) => e instanceof TypeError && /\bk\b.*reaches element 79/.test(e.message));
  const wide = { ...x.args, mask: { ...x.args.mask!, strides: [0, 0, 6] } };
  assert.throws(() => nativeAttention.attention(wide), (e: unknown) => e instanceof TypeError && /mask/.test(e.message));
  const neg = { ...x.args, q: { ...x.args.q, strides: [40, 20, -4] } };
  assert.throws(() => nativeAttention.attention(neg), (e: unknown) => e instanceof TypeError && /\bq\b/.test(e.message));
  const lse = { ...x.args, lse: new Float32Array(3) };
  assert.throws(() => nativeAttention.attention(lse), (e: unknown) => e instanceof TypeError && /lse/.test(e.message));
  const gv = { ...x.args, gv: { ...x.args.gv, offset: 1 } };
  assert.throws(() => nativeAttention.attentionBackward(gv), (e: unknown) => e instanceof TypeError && /\bgv\b/.test(e.message));
  const f64 = { ...x.args, v: { ...x.args.v, data: new Float64Array(80) as unknown as Float32Array } };
  assert.throws(() => nativeAttention.attention(f64), TypeError);
  const dims = { ...x.args, D: 2.5 };
  assert.throws(() => nativeAttention.attention(dims), (e: unknown) => e instanceof TypeError && /\(D\)/.test(e.message));
  const strides = { ...x.args, out: { ...x.args.out, strides: [1, 2] } };
  assert.throws(() => nativeAttention.attention(strides), (e: unknown) => e instanceof TypeError && /out\.strides/.test(e.message));
});

test('empty dims: Tk = 0 gives fully masked rows, Tq = 0 or B = 0 touch nothing', () => {
  const x = build({ B: 1, H: 1, Tq: 2, Tk: 0, D: 3, causal: false, mask: 'none', fused: false }, 13);
  nativeAttention.attention(x.args);
  assert.deepEqual(Array.from(x.args.lse), [-Infinity, -Infinity]);
  assert.deepEqual(Array.from(x.args.out.data), [0, 0, 0, 0, 0, 0]);
  nativeAttention.attentionBackward(x.args);
  assert.deepEqual(Array.from(x.args.gq.data), [0, 0, 0, 0, 0, 0]);
  const y = build({ B: 0, H: 2, Tq: 3, Tk: 3, D: 3, causal: true, mask: 'none', fused: false }, 14);
  nativeAttention.attention(y.args);
  nativeAttention.attentionBackward(y.args);
  const z = build({ B: 1, H: 1, Tq: 0, Tk: 3, D: 2, causal: true, mask: 'none', fused: false }, 15);
  nativeAttention.attention(z.args);
  nativeAttention.attentionBackward(z.args);
  assert.deepEqual(Array.from(z.args.gk.data), [0, 0, 0, 0, 0, 0]);
});

test('parity with the reference backend (float64) on the same inputs, NaN and fully masked rows included', () => {
  attentionIsa(BEST);
  const cases: [Case, (x: Built) => void][] = [
    [{ B: 2, H: 3, Tq: 64, Tk: 64, D: 32, causal: true, mask: 'none', fused: true }, () => undefined],
    [{ B: 1, H: 2, Tq: 1, Tk: 17, D: 7, causal: true, mask: 'full', fused: false }, () => undefined],
    [{ B: 2, H: 1, Tq: 130, Tk: 130, D: 64, causal: false, mask: 'broadcast', fused: false }, () => undefined],
    [{ B: 1, H: 2, Tq: 9, Tk: 4, D: 3, causal: true, mask: 'none', fused: false }, () => undefined],
    [{ B: 2, H: 2, Tq: 130, Tk: 130, D: 7, causal: true, mask: 'none', fused: true, window: 20 }, () => undefined],
    [{ B: 1, H: 2, Tq: 33, Tk: 150, D: 16, causal: true, mask: 'full', fused: false, window: 70 }, () => undefined],
    // Fully masked row 1 and a NaN query in row 3 (its whole row and the keys it sees turn NaN in both).
    [{ B: 1, H: 1, Tq: 5, Tk: 5, D: 4, causal: false, mask: 'broadcast', fused: false }, (x) => {
      x.args.mask!.data.fill(0);
      x.args.mask!.data.fill(-Infinity, 5, 10);
      x.args.q.data[3 * 4 + 2] = Number.NaN;
    }],
  ];
  let seed = 300;
  for (const [c, edit] of cases) {
    const x = build(c, seed++);
    edit(x);
    nativeAttention.attention(x.args);
    nativeAttention.attentionBackward(x.args);
    // The same arguments over float64 copies; views that share a buffer (fused qkv) share its copy.
    const copies = new Map<Float32Array, Float64Array>();
    const f64 = (v: StridedArg<Float32Array>): StridedArg<Float64Array> => {
      let d = copies.get(v.data);
      if (!d) copies.set(v.data, (d = Float64Array.from(v.data)));
      return { data: d, offset: v.offset, strides: v.strides };
    };
    const a = x.args;
    const ref = {
      ...a, q: f64(a.q), k: f64(a.k), v: f64(a.v), out: f64(a.out), lse: new Float64Array(a.lse.length),
      mask: a.mask ? f64(a.mask) : null, gout: f64(a.gout), gq: f64(a.gq), gk: f64(a.gk), gv: f64(a.gv),
    };
    referenceKernels.attention(ref);
    referenceKernels.attentionBackward(ref);
    const tag = JSON.stringify(c);
    const close = (got: number, want: number, tol: number, what: string): void => {
      if (Number.isNaN(want) || Number.isNaN(got)) assert.equal(Number.isNaN(got), Number.isNaN(want), `${what} ${tag}: ${got} vs ${want}`);
      else assert.ok(got === want || Math.abs(got - want) <= tol * (1 + Math.abs(want)), `${what} ${tag}: ${got} vs ${want}`);
    };
    for (let i = 0; i < a.lse.length; i++) close(a.lse[i]!, ref.lse[i]!, 2e-5, `lse[${i}]`);
    for (const [name, got, want, T, tol] of [
      ['out', a.out, ref.out, a.Tq, 2e-5], ['gq', a.gq, ref.gq, a.Tq, 1e-4], ['gk', a.gk, ref.gk, a.Tk, 1e-4], ['gv', a.gv, ref.gv, a.Tk, 1e-4],
    ] as const) {
      for (let b = 0; b < a.B; b++) for (let h = 0; h < a.H; h++) for (let t = 0; t < T; t++) for (let d = 0; d < a.D; d++) {
        const o = b * got.strides[0]! + h * got.strides[1]! + t * got.strides[2]! + d;
        close(got.data[got.offset + o]!, want.data[want.offset + o]!, tol, `${name}[${b},${h},${t},${d}]`);
      }
    }
  }
});
