// Mixture of experts: routing against a hand-worked example (assignments, slots, drops, gates, balance and z-loss),
// the grouped ops against finite differences and native against reference, the whole layer's gradients in float64,
// causality of every variant, KV-cache decoding, save/load and the metrics channel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import type { DType, Tensor } from '../../src/core/index.js';
import { loadAddon, type NativeAddon } from '../../src/core/native/addon.js';
import type { GemmAddon } from '../../src/core/native/gemm.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { prepareCharData } from '../../src/data/prepare.js';
import { GPT, type GPTConfig } from '../../src/models/gpt.js';
import { loadGPT, saveGPT } from '../../src/models/gpt-io.js';
import type { BlockConfig } from '../../src/nn/attention.js';
import type { ForwardContext } from '../../src/nn/context.js';
import { upcycleGPT } from '../../src/models/moe-upcycle.js';
import { MoE, moeForward, route, type MoEFields, type MoEWeights } from '../../src/nn/moe.js';
import { readMetrics } from '../../src/train/metrics.js';
import { TRAIN_ALIASES, trainSpec, type TrainConfig } from '../../src/train/train-config.js';
import { train } from '../../src/train/trainer.js';
import { objectLayer, resolveConfigWithAliases } from '../../src/util/config.js';
import type { OpCase } from '../core/op-cases.js';
import { assertClose, numericGrads, runCase } from '../core/harness.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const native = loadNativeBackend();
const ctxOf = (): ForwardContext => ({ dropout: 0, seed: 5, rope: null, cache: null, aux: {}, metrics: {} });

// The hand-worked example: E = 4 experts, N = 4 tokens, top-2, capacity factor 1 → c = ceil(1·2·4/4) = 2.
//   p(t0) = [.5 .3 .1 .1] → e0, e1      p(t1) = [.6 .1 .2 .1] → e0, e2
//   p(t2) = [.4 .1 .1 .4] → e0, e3 (tie: lower index first)      p(t3) = [.1 .7 .1 .1] → e1, e0 (tie: lowest)
// First choices in token order: t0→e0 slot 0, t1→e0 slot 1, t2→e0 full (dropped), t3→e1 slot 0.
// Second choices: t0→e1 slot 1, t1→e2 slot 0, t2→e3 slot 0, t3→e0 full (dropped).
// Rows (expert-major): e0 [t0, t1], e1 [t3, t0], e2 [t1], e3 [t2] → tokens [0, 1, 3, 0, 1, 2], choices t·2 + j
// [0, 2, 6, 1, 3, 5]. Gates g_j = p_j/(p_1 + p_2): t0 .625/.375, t1 .75/.25, t2 .5/.5, t3 .875/.125.
// Balance: f = first-choice fractions [3/4, 1/4, 0, 0], P = mean p = [.4, .3, .125, .175] → 4·(.3 + .075) = 1.5.
// z-loss with logits ln p_t + s_t, s = [1, 2, 0, −1]: logsumexp = s_t → mean s² = 1.5.
const P = [[0.5, 0.3, 0.1, 0.1], [0.6, 0.1, 0.2, 0.1], [0.4, 0.1, 0.1, 0.4], [0.1, 0.7, 0.1, 0.1]];
const SHIFT = [1, 2, 0, -1];

test('routing: assignments, slots, drops against the hand-worked example', () => {
  const r = route(P.flat(), 4, 4, 2, { capacityFactor: 1, secondUniform: null });
  assert.deepEqual([...r.experts], [0, 1, 0, 2, 0, 3, 1, 0]);
  assert.equal(r.capacity, 2);
  assert.deepEqual(r.counts, [2, 2, 1, 1]);
  assert.deepEqual([...r.slot], [0, 1, 1, 0, -1, 0, 0, -1]);
  assert.deepEqual([...r.rowToken], [0, 1, 3, 0, 1, 2]);
  assert.deepEqual([...r.rowChoice], [0, 2, 6, 1, 3, 5]);
  assert.deepEqual(r.demand, [4, 2, 1, 1]);
  assert.equal(r.dropped, 2);
  // No limit: nothing dropped. Random second choice: kept iff u < 2·g_2 (t0: 2·.375 = .75).
  assert.equal(route(P.flat(), 4, 4, 2, { capacityFactor: 0, secondUniform: null }).dropped, 0);
  const rnd = route(P.flat(), 4, 4, 2, { capacityFactor: 0, secondUniform: (t) => [0.7, 0.6, 0.99, 0.2][t]! });
  // t0: .7 < .75 kept; t1: .6 ≥ .5 skipped; t2: .99 < 1 kept; t3: .2 < .25 kept.
  assert.deepEqual(rnd.demand, [4, 2, 0, 1]);
});

/** A 4-wide MoE whose router is the identity, so that x rows are the router logits. */
function handLayer(): { moe: MoE; c: BlockConfig & MoEFields } {
  const c: BlockConfig & MoEFields = {
    n_layer: 1, n_head: 1, n_embd: 4, bias: false, activation: 'gelu', norm: 'layernorm', norm_eps: 1e-5, mlp: 'gelu', mlp_hidden: 6,
    moe_experts: 4, moe_top_k: 2, moe_capacity_factor: 1, moe_second_policy: 'all', moe_balance_coef: 1, moe_z_coef: 1,
  };
  const moe = new MoE(c, new lm.Rng(3), 0);
  (moe.router.weight.data as Float32Array).set([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
  return { moe, c };
}

test('routing: the layer output, gates, balance and z-loss against the hand-worked example', () => {
  lm.tidy(() => {
    const { moe } = handLayer();
    const logits = P.flatMap((row, t) => row.map((p) => Math.log(p) + SHIFT[t]!));
    const x = lm.tensor(logits, [1, 4, 4]);
    const ctx = ctxOf();
    const out = moe.forward(x, ctx).toArray();
    assert.ok(Math.abs(ctx.aux.moe_balance!.item() - 1.5) < 1e-5, `balance ${ctx.aux.moe_balance!.item()}`);
    assert.ok(Math.abs(ctx.aux.moe_z!.item() - 1.5) < 1e-5, `z ${ctx.aux.moe_z!.item()}`);
    assert.ok(Math.abs(ctx.metrics!.moe_dropped! - 0.25) < 1e-12);
    assert.equal(ctx.metrics!.moe_load_max, 3); // e0 is the first choice of 3 of 4 tokens: 4·3/4
    assert.equal(ctx.metrics!.moe_load_max_all, 2); // e0 has 4 of the 8 dispatched choices, the mean is 2
    // Expected: Σ over kept choices of gate · expert_e(x_t), each expert as a plain dense MLP.
    const w1 = moe.experts.w1.toArray();
    const w2 = moe.experts.w2.toArray();
    const [C, H] = [4, 6];
    const expert = (e: number, t: number): number[] => {
      const h = Array.from({ length: H }, (_, j) => {
        let s = 0;
        for (let i = 0; i < C; i++) s += logits[t * C + i]! * w1[(e * C + i) * H + j]!;
        return 0.5 * s * (1 + erf(s / Math.SQRT2));
      });
      return Array.from({ length: C }, (_, o) => h.reduce((s, v, j) => s + v * w2[(e * H + j) * C + o]!, 0));
    };
    const kept: [number, number, number][] = [[0, 0, 0.625], [0, 1, 0.375], [1, 0, 0.75], [1, 2, 0.25], [2, 3, 0.5], [3, 1, 0.875]];
    const want = new Array<number>(16).fill(0);
    for (const [t, e, g] of kept) expert(e, t).forEach((v, o) => (want[t * C + o] = want[t * C + o]! + g * v));
    assertClose(out, want, 1e-4, 1e-6, 'MoE output');
  });
});

/** erf for the exact GELU of the expected values: its Maclaurin series, accurate to 1e-12 for the |x| < 3 used here. */
function erf(x: number): number {
  let sum = 0;
  let term = x;
  for (let n = 0; n < 60; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

const GROUPED_CASES: OpCase[] = [
  {
    name: 'groupedMatmul ragged groups (one empty)', inputs: [[7, 3], [4, 3, 5]],
    run: (xs) => lm.groupedMatmul(xs[0]!, xs[1]!, lm.fromArray(lm.groupOffsets([2, 0, 4, 1]), [5])),
  },
  {
    name: 'scatterAddRows with repeats', inputs: [[6, 4]],
    run: (xs) => lm.scatterAddRows(xs[0]!, lm.tensor([0, 2, 2, 1, 0, 2], [6], 'int32'), 4),
  },
];

test('grouped ops: gradients against central finite differences (float64)', () => {
  for (const c of GROUPED_CASES) {
    const got = runCase(c, 'reference', 'float64');
    const want = numericGrads(c);
    got.grads.forEach((g, i) => assertClose(g, want[i]!, 1e-6, 1e-8, `${c.name} grad ${i}`));
  }
});

test('grouped ops: native matches the reference (float32), large groups through the packed GEMM too', { skip: !native.loaded }, () => {
  const big: OpCase = {
    name: 'groupedMatmul large', inputs: [[300, 40], [3, 40, 70]],
    run: (xs) => lm.groupedMatmul(xs[0]!, xs[1]!, lm.fromArray(lm.groupOffsets([130, 0, 170]), [4])),
  };
  for (const c of [...GROUPED_CASES, big]) {
    const a = runCase(c, 'native', 'float32');
    const b = runCase(c, 'reference', 'float32');
    assertClose(a.out, b.out, 1e-4, 1e-4, `${c.name} out`);
    a.grads.forEach((g, i) => assertClose(g, b.grads[i]!, 1e-4, 1e-4, `${c.name} grad ${i}`));
  }
});

test('grouped ops: bad offsets and shapes give one-line errors', () => {
  const x = lm.zeros([3, 2]);
  const w = lm.zeros([2, 2, 4]);
  assert.throws(() => lm.groupedMatmul(x, w, lm.fromArray(lm.groupOffsets([1, 1]), [3])), /rows must be \(offsets\[G\], K\) = \(2, 2\)/);
  assert.throws(() => lm.groupedMatmul(x, w, lm.fromArray(Int32Array.from([0, 3]), [2])), /offsets .* must have G \+ 1 = 3 entries/);
  assert.throws(() => lm.withBackend('reference', () => lm.groupedMatmul(x, w, lm.fromArray(Int32Array.from([0, 4, 3]), [3]))), /offsets\[2\] = 3 is less than offsets\[1\] = 4|rows must be/);
  assert.throws(() => lm.scatterAddRows(x, lm.tensor([0, 1, 5], [3], 'int32'), 4), /idx\[2\] = 5 is outside \[0, 4\)/);
  for (const t of [x, w]) t.dispose();
});

const BASE: Partial<GPTConfig> = { vocab_size: 13, block_size: 8, n_layer: 2, n_head: 2, n_embd: 8, moe_experts: 4, moe_expert_hidden: 6 };
const VARIANTS: [string, Partial<GPTConfig>][] = [
  ['top-1 (Switch)', { moe_top_k: 1 }],
  ['top-2 random second (GShard)', { moe_top_k: 2, moe_second_policy: 'random' }],
  ['top-2 all, SwiGLU, bias, one MoE layer', { moe_top_k: 2, moe_second_policy: 'all', mlp: 'swiglu', bias: true, moe_layers: '1' }],
  ['top-2 with jitter and expert dropout', { moe_top_k: 2, moe_router_jitter: 0.1, moe_expert_dropout: 0.2 }],
];

test('layer gradients against central finite differences in float64 (train mode with dropping, losses included)', () => {
  for (const [name, v] of VARIANTS) {
    const c = { ...(BASE as GPTConfig), ...v, moe_capacity_factor: 1, moe_balance_coef: 0.5, moe_z_coef: 0.5 };
    const E = 4;
    const H = 6;
    const F = c.mlp === 'swiglu' ? 2 * H : H;
    const C = 8;
    const shapes = [[2, 5, C], [C, E], [E, C, F], [E, H, C], ...(c.bias ? [[E, F], [E, C]] : [])];
    const run = (xs: Tensor[], dtype: DType): Tensor => {
      const wt: MoEWeights = { router: xs[1]!, w1: xs[2]!, w2: xs[3]!, b1: xs[4] ?? null, b2: xs[5] ?? null };
      const ctx = ctxOf();
      const y = moeForward(xs[0]!, wt, c, ctx, { layer: 0, training: true, losses: true });
      // Output and both losses in one vector, so the weighted sum the harness takes checks every path.
      const aux = lm.reshape(lm.add(ctx.aux.moe_balance!, ctx.aux.moe_z!), [1]);
      void dtype;
      return lm.concat([lm.reshape(y, [-1]), aux], 0);
    };
    const kase: OpCase = { name: `moe ${name}`, inputs: shapes, range: [-1, 1], run };
    const got = runCase(kase, 'reference', 'float64');
    const want = numericGrads(kase);
    got.grads.forEach((g, i) => assertClose(g, want[i]!, 1e-5, 1e-7, `${name}: grad of input ${i}`));
    if (native.loaded) {
      const a = runCase(kase, 'native', 'float32');
      const b = runCase(kase, 'reference', 'float32');
      assertClose(a.out, b.out, 1e-4, 1e-5, `${name}: native out`);
      a.grads.forEach((g, i) => assertClose(g, b.grads[i]!, 1e-3, 1e-5, `${name}: native grad ${i}`));
    }
  }
});

test('causality: changing a future token never changes an earlier logit, for every variant', () => {
  // In evaluation (no dropping: moe_eval_capacity_factor 0) and in training without a capacity limit, each token's
  // output depends on that token alone. With token dropping at train time an earlier token can lose its slot to a
  // later one (capacity is shared by the batch), so causality holds only without dropping, which is what is tested.
  const seq = [3, 1, 4, 1, 5, 9, 2, 6];
  for (const [name, v] of VARIANTS) {
    lm.tidy(() => {
      const m = new GPT({ ...BASE, ...v, moe_capacity_factor: 0 }, 11);
      for (const mode of ['eval', 'train'] as const) {
        if (mode === 'eval') m.eval();
        else m.train();
        const logits = (ids: number[]): number[] => lm.noGrad(() => m.forward(lm.tensor(ids, [1, 8], 'int32'), undefined, { seed: 9 }).logits.toArray());
        const base = logits(seq);
        for (const j of [3, 7]) {
          const changed = [...seq];
          changed[j] = (changed[j]! + 5) % 13;
          const other = logits(changed);
          assert.deepEqual(other.slice(0, j * 13), base.slice(0, j * 13), `${name} (${mode}): changing token ${j} moved an earlier logit`);
          assert.notDeepEqual(other.slice(j * 13), base.slice(j * 13), `${name} (${mode}): token ${j} changed nothing`);
        }
      }
      m.dispose();
    });
  }
});

test('KV-cache decoding matches the full forward (eval, no dropping)', () => {
  lm.tidy(() => {
    const m = new GPT({ ...BASE, moe_top_k: 2 }, 4).eval();
    const seq = [1, 7, 2, 8, 2, 8, 1, 8];
    lm.noGrad(() => {
      const full = m.forward(lm.tensor(seq, [1, 8], 'int32')).logits.toArray();
      const cache = m.newCache(1);
      let at = m.forwardCachedLast(lm.tensor(seq.slice(0, 3), [1, 3], 'int32'), cache, 3).toArray();
      assertClose(at, full.slice(0, 3 * 13), 1e-5, 1e-6, 'prefill');
      for (let t = 3; t < 8; t++) {
        at = m.forwardCached(lm.tensor([seq[t]!], [1, 1], 'int32'), cache).toArray();
        assertClose(at, full.slice(t * 13, (t + 1) * 13), 1e-5, 1e-6, `decode step ${t}`);
      }
    });
    m.dispose();
  });
});

test('save/load: parameter names and shapes, and identical logits after a round trip', () => {
  lm.tidy(() => {
    const m = new GPT({ ...BASE, moe_top_k: 2, moe_layers: '0' }, 8).eval();
    const names = new Map(m.namedParameters().map(([n, p]) => [n, p.shape]));
    assert.deepEqual(names.get('transformer.h.0.mlp.router.weight'), [8, 4]);
    assert.deepEqual(names.get('transformer.h.0.mlp.experts.c_fc.weight'), [4, 8, 6]);
    assert.deepEqual(names.get('transformer.h.0.mlp.experts.c_fc.bias'), [4, 6]);
    assert.deepEqual(names.get('transformer.h.0.mlp.experts.c_proj.weight'), [4, 6, 8]);
    assert.deepEqual(names.get('transformer.h.1.mlp.c_fc.weight'), [8, 32]); // layer 1 stays dense
    const dir = mkdtempSync(join(tmpdir(), 'lmforge-moe-'));
    saveGPT(dir, m);
    const back = loadGPT(dir).eval();
    assert.equal(back.config.moe_experts, 4);
    const idx = lm.tensor([1, 2, 3, 4, 5, 6], [1, 6], 'int32');
    lm.noGrad(() => assert.deepEqual(back.forward(idx).logits.toArray(), m.forward(idx).logits.toArray()));
    m.dispose();
    back.dispose();
  });
});

test('the metrics channel: GPT.forward returns the routing figures while training, none in eval', () => {
  lm.tidy(() => {
    const m = new GPT({ ...BASE, moe_top_k: 2 }, 2);
    const idx = lm.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [2, 6], 'int32');
    const out = m.forward(idx, idx, { seed: 1 });
    assert.ok(out.aux.moe_balance && out.aux.moe_z);
    for (const k of ['moe_dropped', 'moe_load_max', 'moe_load_max_worst', 'moe_load_max_all', 'moe_balance_loss', 'moe_z_loss', 'moe_load_0', 'moe_load_3']) {
      assert.equal(typeof out.metrics[k], 'number', k);
    }
    const loads = [0, 1, 2, 3].reduce((s, e) => s + out.metrics[`moe_load_${e}`]!, 0);
    assert.ok(Math.abs(loads - 1) < 1e-9, `loads sum to ${loads}`);
    m.eval();
    const ev = m.forward(idx, idx);
    assert.deepEqual(ev.metrics, {});
    assert.deepEqual(Object.keys(ev.aux), []);
    m.dispose();
  });
});

test('bad MoE config values name the field', () => {
  assert.throws(() => new GPT({ ...BASE, moe_top_k: 3 }), /moe_top_k = 3, expected 1 or 2/);
  assert.throws(() => new GPT({ ...BASE, moe_layers: '0,5' }), /moe_layers = "0,5", expected 'all', ''/);
  assert.throws(() => new GPT({ ...BASE, moe_expert_dropout: 1 }), /moe_expert_dropout = 1, expected a number in \[0, 1\)/);
});

test('sparse upcycling: every expert starts as the dense MLP, so top-2 computes the dense model exactly', () => {
  lm.tidy(() => {
    const dense = new GPT({ ...BASE, moe_experts: 0, bias: true }, 6).eval();
    const up = upcycleGPT(dense, { moe_experts: 4, moe_top_k: 2, moe_layers: 'all', moe_expert_hidden: 0 }, 1).eval();
    assert.equal(up.config.moe_experts, 4);
    const idx = lm.tensor([4, 8, 1, 5, 12, 3], [1, 6], 'int32');
    lm.noGrad(() => assertClose(up.forward(idx).logits.toArray(), dense.forward(idx).logits.toArray(), 1e-5, 1e-6, 'upcycled logits'));
    assert.throws(() => upcycleGPT(up, { moe_experts: 4 }, 1), /already a mixture of experts/);
    assert.throws(() => upcycleGPT(dense, { moe_experts: 4, moe_expert_hidden: 7 }, 1), /moe_expert_hidden is 7 but the dense MLP is 32 wide/);
    dense.dispose();
    up.dispose();
  });
});

test('train(): init_from a dense run with moe_upcycle trains the upcycled MoE and logs the routing metrics', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-moe-train-'));
  writeFileSync(join(dir, 'input.txt'), readFileSync(join(root, '../shared/data/tinyshakespeare/input.txt'), 'utf8').slice(0, 20000));
  prepareCharData({ input: join(dir, 'input.txt'), outDir: join(dir, 'data'), valFraction: 0.1 });
  const config = (out: string, extra: Record<string, unknown>): TrainConfig => resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, objectLayer({
    data_dir: join(dir, 'data'), out_dir: join(dir, out), n_layer: 2, n_head: 2, n_embd: 16, block_size: 16, batch_size: 4,
    eval_interval: 3, eval_iters: 1, log_interval: 1, checkpoint_interval: 0, warmup_iters: 1, lr_decay_iters: 3, ...extra,
  }, 'test'));
  const quiet = { log: (): void => {} };
  train(config('base', { max_iters: 2 }), quiet);
  const moe = { init_from: join(dir, 'base'), max_iters: 3, moe_experts: 4, moe_top_k: 2 };
  assert.throws(() => train(config('refused', moe), quiet), /model\.moe_experts is 4 but the init_from model .* has 0/);
  const r = train(config('up', { ...moe, moe_upcycle: true }), quiet);
  assert.equal(r.steps, 3);
  const back = loadGPT(join(dir, 'up'));
  assert.equal(back.config.moe_experts, 4);
  back.dispose();
  const recs = readMetrics(join(dir, 'up', 'metrics.jsonl')).filter((m) => typeof m.moe_load_max === 'number');
  assert.equal(recs.length, 3);
  assert.ok(recs.every((m) => typeof m.moe_balance === 'number' && typeof m.moe_z === 'number' && typeof m.moe_dropped === 'number'));
});

test('grouped product: the same bits on 1, 2 and 5 threads (groups side by side and threads inside one), matching the reference', { skip: !native.loaded }, () => {
  const addon = loadAddon() as unknown as GemmAddon & NativeAddon;
  const prev = addon.gemmAdaptiveThreads(false); // run the threaded paths even on a busy machine
  const threads0 = addon.cpuInfo().threads;
  const rng = new lm.Rng(12);
  const rnd = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.uniform() - 0.5);
  try {
    // 8 ragged groups (one empty): parallel over groups; 2 large groups: threads inside each product.
    for (const counts of [[90, 0, 130, 70, 110, 64, 100, 36], [500, 300]]) {
      const G = counts.length;
      const [K, N] = [72, 88];
      const off = lm.groupOffsets(counts);
      const S = off[G]!;
      const x = rnd(S * K);
      const w = rnd(G * K * N);
      const gy = rnd(S * N);
      const run = (threads: number): [Float32Array, Float32Array, Float32Array] => {
        addon.setThreads(threads);
        const k = lm.kernelsFor('float32');
        const out = new Float32Array(S * N);
        const gx = new Float32Array(S * K);
        const gw = new Float32Array(G * K * N).fill(7); // an empty group must come back 0
        k.groupedMatmul(x, w, out, off, G, K, N, false, false);
        k.groupedMatmul(gy, w, gx, off, G, N, K, true, false);
        k.groupedMatmulGradW(x, gy, gw, off, G, K, N, false);
        return [out, gx, gw];
      };
      const one = run(1);
      for (const t of [2, 5]) run(t).forEach((a, i) => assert.deepEqual(a, one[i], `${t} threads differ from 1 (output ${i}, groups ${counts.join(',')})`));
      const ref = lm.withBackend('reference', () => {
        const k = lm.kernelsFor('float32');
        const out = new Float32Array(S * N);
        const gx = new Float32Array(S * K);
        const gw = new Float32Array(G * K * N);
        k.groupedMatmul(x, w, out, off, G, K, N, false, false);
        k.groupedMatmul(gy, w, gx, off, G, N, K, true, false);
        k.groupedMatmulGradW(x, gy, gw, off, G, K, N, false);
        return [out, gx, gw];
      });
      ref.forEach((a, i) => assertClose([...one[i]!], [...a], 1e-4, 1e-4, `native vs reference, output ${i}`));
    }
  } finally {
    addon.setThreads(threads0);
    addon.gemmAdaptiveThreads(prev);
  }
});
