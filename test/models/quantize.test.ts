// Quantization end to end: GPTQ against round-to-nearest on a small problem, the inverse-Hessian factor, the quantized
// model directory (save → load gives the dequantized model's logits; KV-cache decoding agrees), the CLI on real text
// (quantize with calibration, sample, refusals of bad --bits/--group-size) and QLoRA (adapters over a 4-bit base:
// only they get gradients, and `train` runs it from the command line).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { quantActivationMode } from '../../src/core/native/quant.js';
import { prepareCharData } from '../../src/data/prepare.js';
import { GPT } from '../../src/models/gpt.js';
import { cholesky, inverseHessianFactor, quantizeGPTQ, quantizeRTN } from '../../src/models/quantize.js';
import { loadQuantizedGPT, saveQuantizedGPT } from '../../src/models/quantize-io.js';
import { EMBEDDING_PATH, quantizeGPT } from '../../src/models/quantize-model.js';
import { Linear } from '../../src/nn/layers.js';
import { applyLoRA } from '../../src/nn/lora.js';
import { dequantize, QuantizedEmbedding, QuantizedLinear } from '../../src/nn/quantized.js';
import { RunDir } from '../../src/train/run-dir.js';

loadNativeBackend();
const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const shakespeare = join(root, '../shared/data/tinyshakespeare/input.txt');
const runCli = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

/** ‖X·(W − Ŵ)ᵀ‖² for X (R, K), W and Ŵ (N, K). */
function outputError(X: Float64Array, R: number, W: ArrayLike<number>, What: Float32Array, N: number, K: number): number {
  let e = 0;
  for (let r = 0; r < R; r++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += X[r * K + k]! * (W[n * K + k]! - What[n * K + k]!);
      e += s * s;
    }
  }
  return e;
}

test('GPTQ lowers the layer output error against round-to-nearest (int8 and 4-bit, correlated inputs)', () => {
  const rng = new lm.Rng(7);
  const N = 24, K = 64, R = 512;
  const W = Array.from({ length: N * K }, () => rng.normal());
  // Correlated inputs X = Z·A (as a layer's activations are), H = 2XᵀX/R.
  const A = Array.from({ length: K * K }, () => rng.normal() * 0.3);
  for (let k = 0; k < K; k++) A[k * K + k] = A[k * K + k]! + 1;
  const X = new Float64Array(R * K);
  for (let r = 0; r < R; r++) {
    const z = Array.from({ length: K }, () => rng.normal());
    for (let j = 0; j < K; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += z[k]! * A[k * K + j]!;
      X[r * K + j] = s;
    }
  }
  const H = new Float64Array(K * K);
  for (let r = 0; r < R; r++) for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) H[i * K + j] = H[i * K + j]! + (2 * X[r * K + i]! * X[r * K + j]!) / R;
  for (const [bits, G] of [[8, K], [4, 32]] as const) {
    const rtn = outputError(X, R, W, dequantize(quantizeRTN(W, N, K, bits, G)), N, K);
    const gptq = outputError(X, R, W, dequantize(quantizeGPTQ(W, N, K, H, bits, G)), N, K);
    assert.ok(gptq < 0.8 * rtn, `${bits}-bit: GPTQ error ${gptq.toExponential(3)} vs round-to-nearest ${rtn.toExponential(3)}`);
  }
});

test('inverseHessianFactor gives upper U with UᵀU = H⁻¹; cholesky refuses a matrix that is not positive definite', () => {
  const n = 6;
  const rng = new lm.Rng(3);
  const B = Array.from({ length: n * n }, () => rng.normal());
  const H = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { let s = i === j ? 0.5 : 0; for (let k = 0; k < n; k++) s += B[i * n + k]! * B[j * n + k]!; H[i * n + j] = s; }
  const U = inverseHessianFactor(H, n)!;
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) assert.equal(U[i * n + j], 0);
  // (UᵀU)·H = I
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) { let uu = 0; for (let m = 0; m < n; m++) uu += U[m * n + i]! * U[m * n + k]!; s += uu * H[k * n + j]!; }
      assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-9, `(UᵀU·H)[${i},${j}] = ${s}`);
    }
  }
  assert.equal(cholesky(Float64Array.from([1, 2, 2, 1]), 2), null);
});

/** A small trained-shape GPT (random weights) saved as a run directory with Shakespeare character data beside it. */
function makeRun(): { dir: string; run: string; data: string } {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-quant-'));
  writeFileSync(join(dir, 'input.txt'), readFileSync(shakespeare, 'utf8').slice(0, 30000));
  const data = join(dir, 'data');
  prepareCharData({ input: join(dir, 'input.txt'), outDir: data, valFraction: 0.1 });
  const meta = JSON.parse(readFileSync(join(data, 'meta.json'), 'utf8')) as { vocab_size: number; tokenizer: Record<string, unknown> };
  const model = new GPT({ vocab_size: meta.vocab_size, block_size: 32, n_layer: 2, n_head: 2, n_embd: 64, bias: true }, 5);
  const run = join(dir, 'run');
  const rd = new RunDir(run);
  rd.saveModel(model, {});
  rd.writeMeta(meta, data, meta.vocab_size);
  model.dispose();
  return { dir, run, data };
}

const ids = lm.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3], [2, 8], 'int32');

function logitsOf(model: GPT): Float32Array {
  return lm.noGrad(() => lm.tidy(() => model.eval().forward(ids).logits.toTypedArray() as Float32Array));
}

test('a quantized model round-trips through its directory: logits equal the dequantized float model, cached decoding agrees', () => {
  const { dir, run } = makeRun();
  for (const bits of [8, 4] as const) {
    const model = new RunDir(run).loadModel();
    const layers = quantizeGPT(model, { bits, groupSize: 32, calibration: null });
    const out = join(dir, `q${bits}`);
    saveQuantizedGPT(out, model, layers, { bits, group_size: bits === 4 ? 32 : null, method: 'rtn', sym: bits === 8, calibration_tokens: 0 });
    const fp = logitsOf(model);
    // The float model with every quantized weight replaced by its decoded value is what the quantized one computes.
    for (const { path, w } of layers) {
      const deq = dequantize(w);
      const target = path === EMBEDDING_PATH ? model.transformer.wte.weight : (model.getModule(path) as Linear).weight;
      const d = target.data as Float32Array;
      if (path === EMBEDDING_PATH) d.set(deq);
      else for (let n = 0; n < w.N; n++) for (let k = 0; k < w.K; k++) d[k * w.N + n] = deq[n * w.K + k]!;
    }
    const want = logitsOf(model);
    model.dispose();
    const q = loadQuantizedGPT(out);
    const got = logitsOf(q);
    let maxErr = 0, maxQ = 0;
    for (let i = 0; i < want.length; i++) { maxErr = Math.max(maxErr, Math.abs(got[i]! - want[i]!)); maxQ = Math.max(maxQ, Math.abs(fp[i]! - want[i]!)); }
    assert.ok(maxErr < 1e-4, `${bits}-bit: loaded vs dequantized float model differ by ${maxErr}`);
    assert.ok(maxQ > 0, 'quantization changed something');
    // Decoding with the KV cache, one token at a time, gives the last position's logits of the full pass (with float
    // activations; the int8-activation decoding path is checked in its own test below).
    const mode = quantActivationMode();
    quantActivationMode('off');
    const cache = q.newCache(2);
    let last: number[] = [];
    for (let t = 0; t < 8; t++) last = lm.tidy(() => q.forwardCached(lm.slice(ids, 1, t, t + 1), cache).toArray());
    const V = q.config.vocab_size;
    quantActivationMode(mode);
    for (let b = 0; b < 2; b++) for (let v = 0; v < V; v++) assert.ok(Math.abs(last[b * V + v]! - got[(b * 8 + 7) * V + v]!) < 1e-4);
    q.dispose();
  }
});

test('lmforge quantize on real text: GPTQ with calibration, then sample; bad --bits and --group-size are refused', () => {
  const { dir, run, data } = makeRun();
  const out = join(dir, 'q4');
  const r = runCli(['quantize', '--run', run, '--bits', '4', '--group-size', '32', '--calibration', join(data, 'train.bin'), '--calibration-tokens', '2048', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /GPTQ on 2048 calibration tokens/);
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { quantization_config: { bits: number; method: string; modules: string[] } };
  assert.equal(config.quantization_config.bits, 4);
  assert.equal(config.quantization_config.method, 'gptq');
  assert.ok(config.quantization_config.modules.includes('transformer.wte'));
  const s = runCli(['sample', '--run', out, '--prompt', 'ROMEO:', '--max-new-tokens', '12', '--seed', '1']);
  assert.equal(s.status, 0, s.stderr);
  assert.ok(s.stdout.startsWith('ROMEO:'));
  const bad = runCli(['quantize', '--run', run, '--bits', '3', '--out', join(dir, 'x')]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--bits: expected 8 or 4, got "3"/);
  const badGroup = runCli(['quantize', '--run', run, '--bits', '4', '--group-size', '48', '--out', join(dir, 'x')]);
  assert.equal(badGroup.status, 1);
  assert.match(badGroup.stderr, /--group-size: expected a multiple of 32/);
  const noDivide = runCli(['quantize', '--run', run, '--bits', '4', '--group-size', '128', '--out', join(dir, 'x')]);
  assert.equal(noDivide.status, 1);
  assert.match(noDivide.stderr, /--group-size: 128 does not divide the model width n_embd = 64/);
  assert.ok(!existsSync(join(dir, 'x', 'model.safetensors')));
  const again = runCli(['quantize', '--run', out, '--bits', '8', '--out', join(dir, 'y')]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already quantized/);
});

test('QLoRA: adapters over a 4-bit base get every gradient (the base none); train runs it from the command line', () => {
  const { dir, run, data } = makeRun();
  const out = join(dir, 'q4');
  assert.equal(runCli(['quantize', '--run', run, '--bits', '4', '--group-size', '32', '--out', out]).status, 0);
  const model = loadQuantizedGPT(out);
  applyLoRA(model, { r: 4, alpha: 8, dropout: 0, targetModules: ['c_attn', 'c_proj', 'c_fc'] });
  const trainable = model.namedTrainableParameters().map(([n]) => n);
  assert.ok(trainable.length === 2 * 2 * 4 && trainable.every((n) => /lora_[AB]\.weight$/.test(n)), trainable.join(', '));
  assert.ok(model.namedModules().some(([, m]) => m instanceof QuantizedLinear));
  // B starts at zero, so after one backward only lora_B has a non-zero gradient; no other parameter has one at all.
  lm.tidy(() => {
    const targets = lm.tensor([1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2], [2, 8], 'int32');
    lm.backward(model.train().forward(ids, targets).loss!);
  });
  for (const [name, p] of model.namedParameters()) {
    if (/lora_B\.weight$/.test(name)) assert.ok(p.grad && p.grad.toArray().some((g) => g !== 0), `${name} has a gradient`);
    else if (!/lora_A\.weight$/.test(name)) assert.equal(p.grad, null, `${name} must get no gradient`);
  }
  model.dispose();
  const fp = runCli(['train', `--data_dir=${data}`, `--out_dir=${join(dir, 'full')}`, `--init_from=${out}`, '--max_iters=2']);
  assert.equal(fp.status, 1);
  assert.match(fp.stderr, /holds a quantized model.*QLoRA/);
  const tr = runCli(['train', `--data_dir=${data}`, `--out_dir=${join(dir, 'qlora')}`, `--init_from=${out}`, '--lora.r=4', '--lora.target_modules=c_attn,c_fc',
    '--batch_size=2', '--max_iters=4', '--eval_interval=4', '--eval_iters=1', '--log_interval=1', '--checkpoint_interval=0', '--warmup_iters=1', '--lr_decay_iters=4']);
  assert.equal(tr.status, 0, tr.stderr);
  assert.ok(existsSync(join(dir, 'qlora', 'adapter_model.safetensors')));
  // The QLoRA run samples over its 4-bit base; merging into 4-bit weights is refused with one line.
  const s = runCli(['sample', '--run', join(dir, 'qlora'), '--prompt', 'ROMEO:', '--max-new-tokens', '8', '--seed', '1']);
  assert.equal(s.status, 0, s.stderr);
  assert.ok(s.stdout.startsWith('ROMEO:'), s.stdout);
  const mg = runCli(['lora', 'merge', '--run', join(dir, 'qlora'), '--out', join(dir, 'merged')]);
  assert.equal(mg.status, 1);
  assert.match(mg.stderr, /^error: .*/);
  assert.ok(!mg.stderr.includes('    at '), mg.stderr);
});

test('QuantizedEmbedding looks up exactly the dequantized rows (int8, 4-bit g32 and g64); an id out of range is refused', () => {
  const rng = new lm.Rng(5);
  const [N, K] = [11, 128];
  for (const [bits, G] of [[8, 128], [4, 32], [4, 64]] as const) {
    const w = quantizeRTN(Array.from({ length: N * K }, () => rng.normal()), N, K, bits, G);
    const emb = new QuantizedEmbedding(w);
    const ids = [3, 0, 10, 3, 7];
    const got = lm.tidy(() => Float32Array.from(emb.forward(lm.tensor(ids, [5], 'int32')).toTypedArray() as Float32Array));
    const full = dequantize(w);
    ids.forEach((id, i) => assert.deepEqual(got.subarray(i * K, (i + 1) * K), full.subarray(id * K, (id + 1) * K), `${bits}-bit g${G}, id ${id}`));
    assert.throws(() => lm.tidy(() => emb.forward(lm.tensor([1, 11], [2], 'int32'))), /id 11 at position 1 is outside \[0, 11\)/);
  }
});

/** x (M, K) with each block of 64 inputs rounded as the VNNI kernels round activations: to int8 steps of max|x|/127. */
function roundedActivations(x: Float32Array, M: number, K: number): Float32Array {
  const out = new Float32Array(M * K);
  const even = (v: number): number => (Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : Math.round(v));
  for (let b = 0; b < (M * K) / 64; b++) {
    let amax = 0;
    for (let i = 0; i < 64; i++) amax = Math.max(amax, Math.abs(x[b * 64 + i]!));
    const inv = amax > 0 ? Math.fround(127 / amax) : 0;
    const sx = Math.fround(amax / 127);
    for (let i = 0; i < 64; i++) out[b * 64 + i] = sx * Math.min(127, Math.max(-127, even(Math.fround(x[b * 64 + i]! * inv))));
  }
  return out;
}

test('the VNNI decoding kernels compute exactly the product with activations rounded per 64 (row counts and widths off the unrolling)', { skip: !lm.nativeAvailable() || quantActivationMode() === 'off' }, () => {
  const rng = new lm.Rng(12);
  // N = 37 is not a multiple of the 8 rows done at once; K = 4160 is 65 blocks, past one 64-block pass; G = 192 is 3 blocks a group.
  for (const [bits, G, K] of [[8, 256, 256], [4, 64, 256], [4, 128, 256], [4, 192, 384], [4, 64, 4160]] as const) {
    const N = 37;
    const w = quantizeRTN(Array.from({ length: N * K }, () => rng.normal()), N, K, bits, bits === 8 ? K : G);
    for (const M of [1, 3, 8]) {
      const x = lm.randn([M, K], rng);
      const xr = lm.fromArray(roundedActivations(x.toTypedArray() as Float32Array, M, K), [M, K]);
      const want = lm.withBackend('reference', () => lm.quantLinear(xr, w, null)).toTypedArray() as Float32Array;
      const got = lm.quantLinear(x, w, null).toTypedArray() as Float32Array;
      let err = 0, norm = 0;
      for (let i = 0; i < want.length; i++) { err = Math.max(err, Math.abs(got[i]! - want[i]!)); norm = Math.max(norm, Math.abs(want[i]!)); }
      assert.ok(err < 2e-5 * norm, `${bits}-bit g${G} K ${K}, ${M} rows: max error ${err} of ${norm}`);
    }
  }
});

test('decoding with int8 activations (AVX-512 VNNI) stays within the rounding of the reference; other rows match exactly', { skip: !lm.nativeAvailable() }, () => {
  const rng = new lm.Rng(11);
  for (const [bits, G] of [[8, 256], [4, 64], [4, 128]] as const) {
    const N = 40, K = 256;
    const w = quantizeRTN(Array.from({ length: N * K }, () => rng.normal()), N, K, bits, G);
    for (const M of [1, 3, 12]) {
      const x = lm.randn([M, K], rng);
      const want = lm.withBackend('reference', () => lm.quantLinear(x, w, null)).toTypedArray() as Float32Array;
      const prev = quantActivationMode();
      const got = lm.quantLinear(x, w, null).toTypedArray() as Float32Array;
      quantActivationMode(prev);
      let err = 0, norm = 0;
      for (let i = 0; i < want.length; i++) { err = Math.max(err, Math.abs(got[i]! - want[i]!)); norm = Math.max(norm, Math.abs(want[i]!)); }
      // Each activation moves by ≤ 1/254 of its block's largest: relative output error ~1e-3, not ~1e-7.
      assert.ok(err < 0.01 * norm, `${bits}-bit g${G}, ${M} rows (${prev}): max error ${err} of ${norm}`);
      if (prev === 'off' || M > 8) assert.ok(err < 1e-4 * norm, `${bits}-bit, ${M} rows: the float path must match the reference`);
    }
  }
});
