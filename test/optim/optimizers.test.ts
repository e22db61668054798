// Adafactor, Lion, Muon and Shampoo against the golden fixture of test/reference/optimizers_reference.py (an
// independent float64 PyTorch implementation of each published rule): every parameter after every one of 6 steps,
// with gradient scales, weight decay, Muon's AdamW part, Shampoo root refreshes, blocking, a relative ridge, decayed
// statistics and a start step (Shampoo on both backends). Then, per optimizer: the state round-trips exactly,
// stateBytes() counts what it holds, and frozen parameters are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import type { Tensor } from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { Adafactor, type AdafactorOptions } from '../../src/optim/adafactor.js';
import { EMBEDDING_NAME, makeOptimizer, optimSpec } from '../../src/optim/config.js';
import { Lion, type LionOptions } from '../../src/optim/lion.js';
import { Muon, type MuonOptions } from '../../src/optim/muon.js';
import type { NamedParam, Optimizer, ParamGroup } from '../../src/optim/optimizer.js';
import { inverseRoot, Shampoo, type ShampooOptions } from '../../src/optim/shampoo.js';
import { defaultsOf } from '../../src/util/config.js';

loadNativeBackend();

type Kind = 'adafactor' | 'lion' | 'muon' | 'shampoo';
type Options = Record<string, number | boolean | string>;
interface Case {
  name: string;
  kind: Kind;
  options: Options;
  param_options: Record<string, Options>;
  transpose: boolean;
  steps: Record<string, number[]>[];
}
interface Fixture {
  shapes: Record<string, number[]>;
  init: Record<string, number[]>;
  grads: Record<string, number[]>[];
  scales: number[];
  cases: Case[];
}

const fixture = JSON.parse(readFileSync(fileURLToPath(new URL('../../../test/fixtures/optimizers.json', import.meta.url)), 'utf8')) as Fixture;

/** The optimizer of a kind over named groups (options as the fixture spells them: the TypeScript option names). */
function make(kind: Kind, groups: { params: NamedParam[]; options: Options }[], options: Options): Optimizer {
  const lr = Number(options.lr ?? 0.01);
  switch (kind) {
    case 'adafactor':
      return new Adafactor(groups as ParamGroup<AdafactorOptions>[], { ...(options as Partial<AdafactorOptions>), lr });
    case 'lion':
      return new Lion(groups as ParamGroup<LionOptions>[], { ...(options as Partial<LionOptions>), lr });
    case 'muon':
      return new Muon(groups as ParamGroup<MuonOptions>[], { ...(options as Partial<MuonOptions>), lr });
    case 'shampoo':
      return new Shampoo(groups as ParamGroup<ShampooOptions>[], { ...(options as Partial<ShampooOptions>), lr });
  }
}

/** (rows, cols)ᵀ of a row-major array. */
function transposed(x: readonly number[], rows: number, cols: number): number[] {
  return Array.from({ length: x.length }, (_, k) => x[(k % rows) * cols + Math.floor(k / rows)]!);
}

/** A case's parameters w and b (w transposed when the case says so), its optimizer, and its gradients per step. */
function setup(c: Case, init?: Record<string, ArrayLike<number>>): { opt: Optimizer; params: Record<string, Tensor>; grads: Record<string, number[]>[] } {
  const [R, C] = fixture.shapes.w as [number, number];
  const wShape = c.transpose ? [C, R] : [R, C];
  const tw = (x: number[]): number[] => (c.transpose ? transposed(x, R, C) : x);
  const params: Record<string, Tensor> = {
    w: lm.keep(lm.requireGrad(lm.tensor(init?.w ?? tw(fixture.init.w!), wShape))),
    b: lm.keep(lm.requireGrad(lm.tensor(init?.b ?? fixture.init.b!, fixture.shapes.b))),
  };
  const groups = Object.entries(params).map(([k, p]) => ({ params: [[k, p] as const], options: c.param_options[k] ?? {} }));
  const grads = fixture.grads.map((g) => ({ w: tw(g.w!), b: g.b! }));
  return { opt: make(c.kind, groups, c.options), params, grads };
}

function setGrads(params: Record<string, Tensor>, g: Record<string, number[]>): void {
  for (const [k, p] of Object.entries(params)) {
    p.grad?.dispose();
    p.grad = lm.keep(lm.tensor(g[k]!, p.shape));
  }
}

function dispose(opt: Optimizer, params: Record<string, Tensor>): void {
  opt.dispose();
  for (const p of Object.values(params)) p.dispose();
}

/**
 * Relative tolerance per kind. Float32 arithmetic gives ~1e-6; Shampoo's L and R are stored in float32, so the
 * eigenvalues of a rank-deficient L (5×5 from 3-column gradients) move by ~1e-7·‖L‖ against ε = 1e-4, and λ^(−1/4)
 * carries that into the null directions the next gradients enter.
 */
const RTOL: Record<Kind, number> = { adafactor: 2e-5, lion: 2e-5, muon: 2e-5, shampoo: 1e-3 };

/** Runs a fixture case and checks every parameter after every step against the reference trajectory. */
function checkCase(c: Case): void {
  const { opt, params, grads } = setup(c);
  let worst = 0;
  c.steps.forEach((expected, t) => {
    setGrads(params, grads[t]!);
    opt.step(fixture.scales[t]);
    for (const [k, p] of Object.entries(params)) {
      const got = p.toTypedArray();
      const want = expected[k]!;
      for (let i = 0; i < want.length; i++) {
        const err = Math.abs(got[i]! - want[i]!);
        worst = Math.max(worst, err);
        assert.ok(err <= 2e-6 + RTOL[c.kind] * Math.abs(want[i]!), `${c.name} step ${t + 1} ${k}[${i}]: ${got[i]} vs ${want[i]} (error ${err})`);
      }
    }
  });
  if (process.env.LMFORGE_SHOW_ERRORS) console.log(`${c.name}: largest error ${worst.toExponential(2)}`);
  dispose(opt, params);
}

for (const c of fixture.cases) {
  test(`${c.name}: every parameter after each of ${c.steps.length} steps matches the PyTorch reference`, () => checkCase(c));
}

// Shampoo also on the reference backend: its Jacobi inverse roots, reference GEMM and reference AdamW kernel.
for (const c of fixture.cases.filter((x) => x.kind === 'shampoo')) {
  test(`${c.name} on the reference backend: matches the PyTorch reference too`, () => lm.withBackend('reference', () => checkCase(c)));
}

/** One case per kind: the first in the fixture. */
const byKind = new Map<Kind, Case>();
for (const c of fixture.cases) if (!byKind.has(c.kind)) byKind.set(c.kind, c);

for (const [kind, c] of byKind) {
  test(`${kind}: state() → a new optimizer → loadState gives an identical next step`, () => {
    const a = setup(c);
    for (let t = 0; t < 4; t++) {
      setGrads(a.params, a.grads[t]!);
      a.opt.step(fixture.scales[t]);
    }
    const saved = a.opt.state();
    assert.equal(saved.kind, kind);
    assert.equal(saved.step, 4);
    const copy = (m: typeof saved.tensors): typeof saved.tensors => new Map([...m].map(([k, v]) => [k, { shape: v.shape, data: Float32Array.from(v.data) }]));
    const b = setup(c, { w: a.params.w!.toTypedArray(), b: a.params.b!.toTypedArray() });
    b.opt.loadState({ ...saved, tensors: copy(saved.tensors) }, 'test');
    for (const run of [a, b]) {
      setGrads(run.params, a.grads[4]!);
      run.opt.step(fixture.scales[4]);
    }
    for (const k of ['w', 'b']) assert.deepEqual(b.params[k]!.toTypedArray(), a.params[k]!.toTypedArray());
    assert.deepEqual([...b.opt.state().tensors].map(([k, v]) => [k, [...v.data]]), [...a.opt.state().tensors].map(([k, v]) => [k, [...v.data]]));
    const other = setup(byKind.get(kind === 'lion' ? 'muon' : 'lion')!);
    assert.throws(() => other.opt.loadState(saved, 'ckpt'), /optimizer state is .*'s, but this run uses/);
    dispose(a.opt, a.params);
    dispose(b.opt, b.params);
    dispose(other.opt, other.params);
  });

  test(`${kind}: a frozen parameter is refused`, () => {
    const frozen = lm.keep(lm.zeros([4, 3]));
    assert.throws(() => make(kind, [{ params: [['frozen.weight', frozen]], options: {} }], c.options), /"frozen\.weight" is frozen/);
    frozen.dispose();
  });
}

test('stateBytes: Adafactor holds m + n floats for an m×n matrix; Lion one moment; Muon a momentum (AdamW two moments for the rest); Shampoo its blocks', () => {
  const bytes = (c: Case, options: Options = {}): number => {
    const s = setup({ ...c, options: { ...c.options, ...options } });
    const n = s.opt.stateBytes();
    dispose(s.opt, s.params);
    return n;
  };
  const ada = byKind.get('adafactor')!;
  assert.equal(bytes(ada), 4 * (5 + 3 + 3)); // w: R (5) + C (3); b: a full v (3)
  assert.equal(bytes(ada, { beta1: 0.9 }), 4 * (5 + 3 + 3 + 15 + 3)); // plus a first moment of each shape
  const big = lm.keep(lm.requireGrad(lm.zeros([64, 32])));
  const opt = new Adafactor([{ params: [['big', big]] }], { lr: 0 });
  assert.equal(opt.stateBytes(), 4 * (64 + 32));
  assert.deepEqual([...opt.state().tensors.keys()], ['big.exp_avg_sq_row', 'big.exp_avg_sq_col']);
  opt.dispose();
  big.dispose();
  assert.equal(bytes(byKind.get('lion')!), 4 * (15 + 3));
  assert.equal(bytes(byKind.get('muon')!), 4 * (15 + 3 + 3));
  const sh = fixture.cases.filter((x) => x.kind === 'shampoo');
  // One block: L 5×5, R 3×3 and their roots, plus the Adagrad sums of w and b.
  assert.equal(bytes(sh[0]!), 4 * (2 * (25 + 9) + 15 + 3));
  // Blocks of 2: rows 2+2+1, cols 2+1 → six blocks; L (and its root) per block nr², R nc²; AdamW grafting m and v.
  assert.equal(bytes(sh[1]!), 4 * (2 * 2 * (4 + 4 + 1) + 2 * 3 * (4 + 1) + 2 * (15 + 3)));
});

test('muon refuses a vector in a Muon group; the factory sends embeddings, the head and vectors to its AdamW part', () => {
  const v = lm.keep(lm.requireGrad(lm.zeros([3])));
  assert.throws(() => new Muon([{ params: [['v', v]] }], { lr: 0.02 }), /not a 2-D matrix/);
  const named: NamedParam[] = [['transformer.wte.weight', [10, 4]], ['transformer.h.0.attn.c_attn.weight', [4, 12]], ['lm_head.weight', [10, 4]], ['transformer.ln_f.weight', [4]]]
    .map(([n, s]) => [n as string, lm.keep(lm.requireGrad(lm.zeros(s as number[])))] as const);
  assert.ok(EMBEDDING_NAME.test('transformer.wte.weight') && !EMBEDDING_NAME.test('transformer.h.0.mlp.c_fc.weight'));
  const opt = makeOptimizer(named, { ...defaultsOf(optimSpec), name: 'muon', lr: 0.02, muon_adamw_lr: 0.004 });
  assert.equal(opt.kind, 'muon');
  assert.deepEqual([...opt.state().tensors.keys()].sort(), [
    'lm_head.weight.exp_avg', 'lm_head.weight.exp_avg_sq', 'transformer.h.0.attn.c_attn.weight.momentum_buffer',
    'transformer.ln_f.weight.exp_avg', 'transformer.ln_f.weight.exp_avg_sq', 'transformer.wte.weight.exp_avg', 'transformer.wte.weight.exp_avg_sq',
  ]);
  opt.setLearningRate(0.01);
  for (const name of ['adafactor', 'lion', 'shampoo'] as const) {
    const o = makeOptimizer(named, { ...defaultsOf(optimSpec), name });
    assert.equal(o.kind, name);
    o.dispose();
  }
  opt.dispose();
  v.dispose();
  for (const [, p] of named) p.dispose();
});

test('shampoo inverseRoot: (S + εI)^(−1/4) to the 4th power times (S + εI) is the identity, for an ill-conditioned S', () => {
  const n = 12;
  const rng = new lm.Rng(5);
  const G = Array.from({ length: n * 3 }, () => rng.normal()); // rank 3: the ε ridge sets the other 9 eigenvalues
  const S = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < 3; k++) S[i * n + j] = S[i * n + j]! + G[i * 3 + k]! * G[j * 3 + k]!;
  const eps = 1e-3;
  const X = new Float32Array(n * n);
  inverseRoot(S, n, eps, 4, X);
  const mm = (a: ArrayLike<number>, b: ArrayLike<number>): Float64Array => {
    const out = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) out[i * n + j] = out[i * n + j]! + a[i * n + k]! * b[k * n + j]!;
    return out;
  };
  const A = Float64Array.from(S);
  for (let i = 0; i < n; i++) A[i * n + i] = A[i * n + i]! + eps;
  const X2 = mm(X, X);
  const I = mm(mm(X2, X2), A);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) assert.ok(Math.abs(I[i * n + j]! - (i === j ? 1 : 0)) < 2e-3, `(${i}, ${j}): ${I[i * n + j]}`);
});
