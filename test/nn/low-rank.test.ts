// Low-rank factorization: the Jacobi SVD against known decompositions (singular values, reconstruction,
// orthogonality), rank-by-energy selection, LowRankLinear's forward and gradients (central differences in float64),
// factorizing a GPT through replaceModule, the saved layout's save → load round trip (also through RunDir, as
// sample/eval read it), damaged files, and `lmforge lowrank` refusing bad input in one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import { energyOfRank, rankForEnergy, svd, symmetricEigen } from '../../src/core/linalg.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { prepareCharData } from '../../src/data/prepare.js';
import { GPT } from '../../src/models/gpt.js';
import { CONFIG_FILE, saveGPT } from '../../src/models/gpt-io.js';
import { isLowRankDir, loadLowRankGPT, saveLowRankGPT } from '../../src/models/low-rank-io.js';
import { Linear } from '../../src/nn/layers.js';
import { factorizeModel, factorizeWeight, LowRankLinear, lowRankLayers } from '../../src/nn/low-rank.js';
import { RunDir } from '../../src/train/run-dir.js';
import { UserError } from '../../src/util/errors.js';
import { lmforge, refused } from '../cli/run-cli.js';

loadNativeBackend();
const root = fileURLToPath(new URL('../../../', import.meta.url));

/** Orthonormal columns (rows × cols, row-major) by Gram–Schmidt (twice, for orthogonality to rounding) on random values. */
function orthonormal(rows: number, cols: number, rng: lm.Rng): Float64Array {
  const q = Float64Array.from({ length: rows * cols }, () => rng.uniform() * 2 - 1);
  for (let j = 0; j < cols; j++) {
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < j; k++) {
        let d = 0;
        for (let i = 0; i < rows; i++) d += q[i * cols + j]! * q[i * cols + k]!;
        for (let i = 0; i < rows; i++) q[i * cols + j] = q[i * cols + j]! - d * q[i * cols + k]!;
      }
    }
    let n = 0;
    for (let i = 0; i < rows; i++) n += q[i * cols + j]! ** 2;
    for (let i = 0; i < rows; i++) q[i * cols + j] = q[i * cols + j]! / Math.sqrt(n);
  }
  return q;
}

/** U·diag(s)·Vᵀ with U (m, k), V (n, k). */
function compose(U: Float64Array, s: ArrayLike<number>, V: Float64Array, m: number, n: number, k: number): Float64Array {
  const a = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let x = 0;
    for (let t = 0; t < k; t++) x += U[i * k + t]! * s[t]! * V[j * k + t]!;
    a[i * n + j] = x;
  }
  return a;
}

/** max |QᵀQ − I| for Q (rows, cols), over the first `cols` columns. */
function orthogonalityError(Q: Float64Array, rows: number, cols: number, ld = cols): number {
  let e = 0;
  for (let a = 0; a < cols; a++) for (let b = 0; b < cols; b++) {
    let d = 0;
    for (let i = 0; i < rows; i++) d += Q[i * ld + a]! * Q[i * ld + b]!;
    e = Math.max(e, Math.abs(d - (a === b ? 1 : 0)));
  }
  return e;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

for (const [m, n] of [[48, 20], [20, 48], [33, 33]] as const) {
  test(`svd of a known ${m}×${n} decomposition (κ = 1000): σ to 1e-11, reconstruction to 1e-12, factors orthonormal to 1e-13`, () => {
    const rng = new lm.Rng(m * 100 + n);
    const k = Math.min(m, n);
    const U0 = orthonormal(m, k, rng);
    const V0 = orthonormal(n, k, rng);
    const s0 = Array.from({ length: k }, (_, i) => 10 * Math.pow(1e-3, i / (k - 1))); // 10 … 0.01, spread over 3 decades
    const A = compose(U0, s0, V0, m, n, k);
    const d = svd(A, m, n);
    assert.equal(d.k, k);
    assert.ok(maxDiff(d.S, s0) < 1e-12 * 10, `σ error ${maxDiff(d.S, s0)}`);
    assert.ok(Math.abs(d.S[k - 1]! / s0[k - 1]! - 1) < 1e-10, `the smallest σ to 1e-10 relative (${d.S[k - 1]} vs ${s0[k - 1]})`);
    assert.ok(maxDiff(compose(d.U, d.S, d.V, m, n, k), A) < 1e-13 * 10, 'U·S·Vᵀ = A');
    assert.ok(orthogonalityError(d.U, m, k) < 1e-13, `UᵀU = I (${orthogonalityError(d.U, m, k)})`);
    assert.ok(orthogonalityError(d.V, n, k) < 1e-13, `VᵀV = I (${orthogonalityError(d.V, n, k)})`);
    // Truncation keeps the leading singular triplets: ‖A − A_r‖_F² = Σ_{i≥r} σ_i² (Eckart–Young).
    const r = 5;
    const Ar = compose(d.U, Array.from(d.S).map((s, i) => (i < r ? s : 0)), d.V, m, n, k);
    let err = 0;
    for (let i = 0; i < A.length; i++) err += (A[i]! - Ar[i]!) ** 2;
    const tail = s0.slice(r).reduce((x, s) => x + s * s, 0);
    assert.ok(Math.abs(err - tail) < 1e-10 * tail, `truncation error ${err} vs Σ tail σ² ${tail}`);
  });
}

test('svd of a rank-deficient matrix: trailing σ are zero to rounding and U·S·Vᵀ still equals A', () => {
  const rng = new lm.Rng(5);
  const [m, n, k] = [30, 20, 4];
  const A = compose(orthonormal(m, k, rng), [3, 2, 1, 0.5], orthonormal(n, k, rng), m, n, k);
  const d = svd(A, m, n);
  assert.ok(maxDiff(d.S.subarray(0, 4), [3, 2, 1, 0.5]) < 1e-13);
  for (let i = 4; i < n; i++) assert.ok(d.S[i]! < 1e-13, `σ_${i} = ${d.S[i]}`);
  assert.ok(maxDiff(compose(d.U, d.S, d.V, m, n, n), A) < 1e-13);
  assert.equal(rankForEnergy(d.S, 1), 4);
});

test('symmetricEigen: a known 3×3 spectrum, and an asymmetric matrix is refused', () => {
  // [[2, 1, 0], [1, 2, 1], [0, 1, 2]] has eigenvalues 2 + √2, 2, 2 − √2.
  const e = symmetricEigen([2, 1, 0, 1, 2, 1, 0, 1, 2], 3);
  assert.ok(maxDiff(e.values, [2 + Math.SQRT2, 2, 2 - Math.SQRT2]) < 1e-14);
  const v0 = [e.vectors[0]!, e.vectors[3]!, e.vectors[6]!]; // first column ∝ (1, √2, 1)/2
  assert.ok(maxDiff(v0.map((x) => x * Math.sign(v0[0]!)), [0.5, Math.SQRT1_2, 0.5]) < 1e-14);
  assert.throws(() => symmetricEigen([1, 2, 3, 4], 2), /not symmetric/);
  assert.throws(() => svd([1, Number.NaN], 1, 2), /finite/);
});

test('rank by energy: the smallest r keeping the fraction of Σσ²; bad energies refused', () => {
  const S = [3, 2, 1]; // Σσ² = 14: r = 1 keeps 9/14 ≈ 0.643, r = 2 keeps 13/14 ≈ 0.929
  assert.equal(rankForEnergy(S, 0.5), 1);
  assert.equal(rankForEnergy(S, 9 / 14), 1);
  assert.equal(rankForEnergy(S, 0.65), 2);
  assert.equal(rankForEnergy(S, 0.93), 3);
  assert.equal(rankForEnergy(S, 1), 3);
  assert.ok(Math.abs(energyOfRank(S, 2) - 13 / 14) < 1e-15);
  for (const bad of [0, -0.1, 1.01, Number.NaN]) assert.throws(() => rankForEnergy(S, bad), /energy/);
});

test('LowRankLinear: forward equals Linear with W = A·B; gradients of x, A, B and bias match central differences (float64)', () => {
  const [nIn, nOut, r] = [5, 4, 2];
  const rng = new lm.Rng(3);
  const vals = (n: number): number[] => Array.from({ length: n }, () => rng.uniform() * 2 - 1);
  const a = vals(nIn * r);
  const b = vals(r * nOut);
  const bias = vals(nOut);
  const x = vals(3 * nIn);
  const w = vals(3 * nOut); // loss = Σ w·y
  const lossAt = (av: number[], bv: number[], biasv: number[], xv: number[], grads: boolean): { loss: number; g?: number[][] } =>
    lm.withBackend('reference', () => lm.tidy(() => {
      const layer = new LowRankLinear(lm.tensor(av, [nIn, r], 'float64'), lm.tensor(bv, [r, nOut], 'float64'), lm.tensor(biasv, [nOut], 'float64'));
      const xt = lm.tensor(xv, [3, nIn], 'float64');
      if (grads) lm.requireGrad(xt);
      const loss = lm.sum(lm.mul(layer.forward(xt), lm.tensor(w, [3, nOut], 'float64')));
      const value = loss.item();
      let g: number[][] | undefined;
      if (grads) {
        lm.backward(loss);
        g = [layer.weightA, layer.weightB, layer.bias!, xt].map((t) => t.grad!.toArray());
      }
      layer.dispose();
      return { loss: value, ...(g ? { g } : {}) };
    }));
  const { g } = lossAt(a, b, bias, x, true);
  const inputs = [a, b, bias, x];
  const h = 1e-6;
  inputs.forEach((arr, which) => {
    arr.forEach((v, j) => {
      const plus = inputs.map((q) => [...q]);
      const minus = inputs.map((q) => [...q]);
      plus[which]![j] = v + h;
      minus[which]![j] = v - h;
      const num = (lossAt(plus[0]!, plus[1]!, plus[2]!, plus[3]!, false).loss - lossAt(minus[0]!, minus[1]!, minus[2]!, minus[3]!, false).loss) / (2 * h);
      assert.ok(Math.abs(num - g![which]![j]!) < 1e-8, `input ${which} element ${j}: analytic ${g![which]![j]} vs numeric ${num}`);
    });
  });
  // Forward equals a Linear holding W = A·B (native backend, float32).
  const W = new Float32Array(nIn * nOut);
  for (let i = 0; i < nIn; i++) for (let o = 0; o < nOut; o++) for (let t = 0; t < r; t++) W[i * nOut + o] = W[i * nOut + o]! + a[i * r + t]! * b[t * nOut + o]!;
  const lin = new Linear(nIn, nOut, { bias: true, rng, std: 0 });
  lin.weight.data.set(W);
  lin.bias!.data.set(bias);
  const low = new LowRankLinear(lm.tensor(a, [nIn, r]), lm.tensor(b, [r, nOut]), lm.tensor(bias, [nOut]));
  const [y1, y2] = lm.tidy(() => lm.noGrad(() => [lin, low].map((l) => l.forward(lm.tensor(x, [3, nIn])).toArray())));
  assert.ok(maxDiff(y1!, y2!) < 1e-6);
  assert.throws(() => new LowRankLinear(lm.zeros([5, 2]), lm.zeros([3, 4]), null), /do not chain/);
});

test('factorizeWeight at full rank reconstructs W; at rank r it keeps the reported energy', () => {
  const rng = new lm.Rng(11);
  const [nIn, nOut] = [12, 7];
  const W = Float32Array.from({ length: nIn * nOut }, () => rng.normal());
  const f = factorizeWeight(W, nIn, nOut, { rank: 99 });
  assert.equal(f.rank, 7);
  assert.ok(Math.abs(f.energy - 1) < 1e-12);
  const AB = new Float64Array(nIn * nOut);
  for (let i = 0; i < nIn; i++) for (let o = 0; o < nOut; o++) for (let t = 0; t < f.rank; t++) AB[i * nOut + o] = AB[i * nOut + o]! + f.a[i * f.rank + t]! * f.b[t * nOut + o]!;
  assert.ok(maxDiff(AB, W) < 1e-5);
  const g = factorizeWeight(W, nIn, nOut, { energy: 0.8 });
  assert.ok(g.energy >= 0.8 && g.rank < 7);
  assert.ok(factorizeWeight(W, nIn, nOut, { rank: g.rank - 1 }).energy < 0.8, 'the smallest such rank');
});

const shape = { vocab_size: 30, block_size: 8, n_layer: 2, n_head: 2, n_embd: 16, bias: true };
const idx = [[1, 5, 9, 2, 7, 3, 11, 0], [4, 4, 8, 15, 16, 23, 1, 2]];

function logits(model: GPT): Float32Array {
  return lm.tidy(() => lm.noGrad(() => Float32Array.from(model.eval().forward(lm.tensor(idx.flat(), [2, 8], 'int32')).logits.toTypedArray() as Float32Array)));
}

test('factorizeModel replaces the chosen Linears through replaceModule, reports parameters, and save → load gives the same logits', () => {
  const model = new GPT(shape, 7);
  const dense = logits(model);
  const before = model.numParameters();
  const report = factorizeModel(model, { rank: 4 }, ['c_attn', 'c_fc']);
  assert.deepEqual(report.layers.map((l) => l.path), ['transformer.h.0.attn.c_attn', 'transformer.h.0.mlp.c_fc', 'transformer.h.1.attn.c_attn', 'transformer.h.1.mlp.c_fc']);
  assert.ok(report.layers.every((l) => l.factorized && l.rank === 4));
  // c_attn (16, 48): 768 → 4·64 = 256; c_fc (16, 64): 1024 → 4·80 = 320 (biases unchanged).
  assert.equal(report.paramsBefore, before);
  assert.equal(report.paramsBefore - report.paramsAfter, 2 * (768 - 256 + 1024 - 320));
  assert.equal(model.numParameters(), report.paramsAfter);
  assert.ok(model.getModule('transformer.h.0.attn.c_attn') instanceof LowRankLinear);
  assert.ok(model.getModule('transformer.h.0.attn.c_proj') instanceof Linear);
  const low = logits(model);
  assert.ok(maxDiff(low, dense) > 1e-4, 'rank 4 of 16 changes the logits');
  // The factorized model trains: its factors get gradients.
  lm.tidy(() => {
    const out = model.train().forward(lm.tensor(idx.flat(), [2, 8], 'int32'), lm.tensor(idx.flat().map((v) => (v + 1) % 30), [2, 8], 'int32'));
    lm.backward(out.loss!);
  });
  const layer = lowRankLayers(model)[0]![1];
  assert.ok(layer.weightA.grad && layer.weightB.grad, 'both factors receive gradients');
  model.parameters().forEach((p) => { p.grad?.dispose(); p.grad = null; });

  const dir = mkdtempSync(join(tmpdir(), 'lmf-lowrank-'));
  saveLowRankGPT(dir, model, { rank: 4 });
  assert.ok(isLowRankDir(dir));
  const cfg = JSON.parse(readFileSync(join(dir, CONFIG_FILE), 'utf8')) as { low_rank: { layers: Record<string, number> } };
  assert.equal(cfg.low_rank.layers['transformer.h.1.mlp.c_fc'], 4);
  const back = loadLowRankGPT(dir);
  assert.deepEqual(lowRankLayers(back).map(([p, l]) => [p, l.rank]), lowRankLayers(model).map(([p, l]) => [p, l.rank]));
  assert.equal(maxDiff(logits(back), low), 0, 'bit-identical logits after the round trip');
  const viaRun = new RunDir(dir).loadModel();
  assert.equal(maxDiff(logits(viaRun), low), 0, 'RunDir.loadModel recognises the layout');
  for (const m of [model, back, viaRun]) m.dispose();

  // Energy: per-layer ranks; layers whose rank would save nothing stay dense.
  const m2 = new GPT(shape, 7);
  const r2 = factorizeModel(m2, { energy: 0.5 });
  assert.equal(r2.layers.length, 8);
  for (const l of r2.layers) {
    assert.ok(l.energy >= 0.5);
    assert.equal(l.factorized, l.rank * (l.inFeatures + l.outFeatures) < l.inFeatures * l.outFeatures);
    assert.equal(m2.getModule(l.path) instanceof LowRankLinear, l.factorized);
  }
  m2.dispose();
  assert.throws(() => factorizeModel(new GPT(shape, 7), { rank: 2 }, ['nope']), (e: unknown) => e instanceof UserError && /matches no Linear layer/.test(e.message));
  assert.throws(() => factorizeModel(new GPT(shape, 7), { rank: 0 }), (e: unknown) => e instanceof UserError && /--rank/.test(e.message));
  assert.throws(() => factorizeModel(new GPT(shape, 7), { energy: 1.5 }), (e: unknown) => e instanceof UserError && /--energy/.test(e.message));
});

test('a damaged low-rank directory is refused naming the file and field or tensor', () => {
  const model = new GPT(shape, 3);
  factorizeModel(model, { rank: 3 }, ['c_fc']);
  const dir = mkdtempSync(join(tmpdir(), 'lmf-lowrank-bad-'));
  saveLowRankGPT(dir, model, { rank: 3 });
  model.dispose();
  const cfgPath = join(dir, CONFIG_FILE);
  const good = readFileSync(cfgPath, 'utf8');
  const edit = (f: (c: { low_rank: Record<string, unknown> }) => void): void => {
    const c = JSON.parse(good) as { low_rank: Record<string, unknown> };
    f(c);
    writeFileSync(cfgPath, JSON.stringify(c));
  };
  const refuses = (re: RegExp): void => assert.throws(() => loadLowRankGPT(dir), (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n'));
  edit((c) => { (c.low_rank.layers as Record<string, number>)['transformer.h.0.mlp.c_fc'] = 0; });
  refuses(/config\.json: field low_rank\.layers\["transformer\.h\.0\.mlp\.c_fc"\] is 0, expected an integer ≥ 1/);
  edit((c) => { (c.low_rank.layers as Record<string, number>)['transformer.h.0.mlp.c_fc'] = 5; });
  refuses(/model\.safetensors.*transformer\.h\.0\.mlp\.c_fc\.weight_a/);
  edit((c) => { c.low_rank.layers = { 'transformer.h.9.mlp.c_fc': 2 }; });
  refuses(/layer transformer\.h\.9\.mlp\.c_fc does not exist/);
  edit((c) => { c.low_rank.version = 2; });
  refuses(/low_rank\.version is 2, expected 1/);
  edit((c) => { delete (c.low_rank.layers as Record<string, number>)['transformer.h.1.mlp.c_fc']; });
  refuses(/unexpected.*transformer\.h\.1\.mlp\.c_fc\.weight_a|missing transformer\.h\.1\.mlp\.c_fc\.weight/);
});


test('lmforge lowrank: factorizes a run that sample then reads; bad ranks, energies and runs are one-line errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-lowrank-cli-'));
  writeFileSync(join(dir, 'input.txt'), readFileSync(join(root, '../shared/data/tinyshakespeare/input.txt'), 'utf8').slice(0, 5000));
  const data = join(dir, 'data');
  prepareCharData({ input: join(dir, 'input.txt'), outDir: data, valFraction: 0.1 });
  const vocab = (JSON.parse(readFileSync(join(data, 'meta.json'), 'utf8')) as { vocab_size: number }).vocab_size;
  const run = join(dir, 'run');
  const model = new GPT({ ...shape, vocab_size: vocab, n_embd: 32, block_size: 16 }, 1);
  saveGPT(run, model);
  model.dispose();
  copyFileSync(join(data, 'meta.json'), join(run, 'meta.json'));
  const out = join(dir, 'low');
  const ok = lmforge('lowrank', '--run', run, '--energy', '0.6', '--include', 'c_attn,c_fc', '--out', out);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /transformer\.h\.0\.attn\.c_attn .* rank/);
  assert.match(ok.stdout, /parameters: [\d,]+ before, [\d,]+ after/);
  const s = lmforge('sample', '--run', out, '--max-new-tokens', '5', '--prompt', 'A');
  assert.equal(s.code, 0, s.stderr);
  refused(lmforge('lowrank', '--run', run, '--rank', '0', '--out', join(dir, 'x')), /--rank: "0" is not valid, expected an integer ≥ 1/);
  refused(lmforge('lowrank', '--run', run, '--rank', '2.5', '--out', join(dir, 'x')), /--rank: "2\.5"/);
  refused(lmforge('lowrank', '--run', run, '--energy', '1.5', '--out', join(dir, 'x')), /--energy: "1\.5" is not valid, expected a number in \(0, 1\]/);
  refused(lmforge('lowrank', '--run', run, '--energy', '0', '--out', join(dir, 'x')), /--energy: "0"/);
  refused(lmforge('lowrank', '--run', run, '--out', join(dir, 'x')), /exactly one of --rank/);
  refused(lmforge('lowrank', '--run', run, '--rank', '2', '--energy', '0.5', '--out', join(dir, 'x')), /exactly one of --rank/);
  refused(lmforge('lowrank', '--run', join(dir, 'nope'), '--rank', '2', '--out', join(dir, 'x')), /nope: no such run directory/);
  refused(lmforge('lowrank', '--run', run, '--rank', '2', '--include', 'nope', '--out', join(dir, 'x')), /--include: .* matches no Linear layer/);
  refused(lmforge('lowrank', '--run', out, '--rank', '2', '--out', join(dir, 'x')), /already factorized/);
  refused(lmforge('lowrank', '--run', run, '--rank', '2', '--out', out), /already holds a model; pass --overwrite/);
});
