// LoRA layer and adapter files: parity of the adapted logits with an independent PyTorch reading of the same
// PEFT-layout files (test/reference/lora_reference.py), merge = adapted, save → load round trip, target_modules
// rules, the trainable-parameter line, dropout seeding, and bad adapter files refused in one line; rsLoRA,
// modules_to_save (PEFT's layout, tied head kept tied), LoRA+'s faster lora_B (and 1-D parameters, PEFT's grouping),
// DoRA's learned column magnitudes (PyTorch parity, merge, save/load, the magnitude's gradient).
// rank_pattern / alpha_pattern (per-layer r and alpha by PEFT's first-match rule: PyTorch parity, merge, save/load, bad keys).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { readSafetensors, writeSafetensors, type TensorData } from '../../src/core/safetensors.js';
import { GPT } from '../../src/models/gpt.js';
import { loadGPT, saveGPT } from '../../src/models/gpt-io.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, loadAdaptedGPT, loadAdapter, saveAdapter } from '../../src/models/lora-io.js';
import { quantizeRTN } from '../../src/models/quantize.js';
import { Linear } from '../../src/nn/layers.js';
import { QuantizedLinear } from '../../src/nn/quantized.js';
import type { MLP } from '../../src/nn/mlp.js';
import { applyLoRA, LoRALinear, loraLayers, loraPlusLrScale, loraPlusVectors, matchesTarget, mergeAndUnload, modulesToSaveParameters, parseLoRAPattern, parseModulesToSave, parseTargetModules, patternValue, trainableParameters, trainModulesToSave } from '../../src/nn/lora.js';
import { makeOptimizer, optimSpec } from '../../src/optim/config.js';
import { defaultsOf } from '../../src/util/config.js';
import { UserError } from '../../src/util/errors.js';

loadNativeBackend();
const fixtures = fileURLToPath(new URL('../../../test/fixtures/lora/', import.meta.url));
const shape = { vocab_size: 24, block_size: 8, n_layer: 2, n_head: 2, n_embd: 8, bias: true };
const idxRows = [[1, 5, 9, 2, 7, 3, 11, 0], [4, 4, 8, 15, 16, 23, 1, 2]];

function logits(model: GPT, rows = idxRows, seed?: number): Float32Array {
  return lm.tidy(() => lm.noGrad(() => {
    const idx = lm.tensor(rows.flat(), [rows.length, rows[0]!.length], 'int32');
    return Float32Array.from(model.forward(idx, undefined, seed === undefined ? {} : { seed }).logits.toTypedArray() as Float32Array);
  }));
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('adapted logits match the independent PyTorch reference read from the same PEFT-layout files', () => {
  const ref = JSON.parse(readFileSync(join(fixtures, 'logits.json'), 'utf8')) as { idx: number[][]; logits: number[]; adapted_modules: string[] };
  const model = loadAdaptedGPT(join(fixtures, 'adapter')).eval();
  assert.deepEqual(loraLayers(model).map(([p]) => p), ref.adapted_modules);
  const got = logits(model, ref.idx);
  const d = maxDiff(got, ref.logits);
  assert.ok(d < 1e-5, `max |lmforge − torch| = ${d}`);
  const base = loadGPT(join(fixtures, 'base')).eval();
  assert.ok(maxDiff(logits(base, ref.idx), ref.logits) > 1e-3, 'the adapter changes the logits');
  base.dispose();
  model.dispose();
});

test('merge into the (in, out) base weight equals the adapted model; unmerge restores it; merge_and_unload saves a plain GPT', () => {
  const model = loadAdaptedGPT(join(fixtures, 'adapter')).eval();
  const adapted = logits(model);
  const layer = loraLayers(model)[0]![1];
  const w0 = Float32Array.from(layer.base_layer.weight.toTypedArray() as Float32Array);
  for (const [, l] of loraLayers(model)) l.merge();
  assert.ok(maxDiff(logits(model), adapted) < 1e-5, 'merged = adapted');
  for (const [, l] of loraLayers(model)) l.unmerge();
  assert.ok(maxDiff(layer.base_layer.weight.toTypedArray() as Float32Array, w0) < 1e-6);
  assert.ok(maxDiff(logits(model), adapted) < 1e-6);
  mergeAndUnload(model);
  assert.equal(loraLayers(model).length, 0);
  assert.ok(model.transformer.h.items[0]!.attn.c_attn instanceof Linear);
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-lora-merged-'));
  saveGPT(dir, model);
  const merged = loadGPT(dir).eval();
  assert.ok(maxDiff(logits(merged), adapted) < 1e-5, 'the saved merged model = adapted');
  merged.dispose();
  model.dispose();
});

test('applyLoRA: B = 0 keeps the base logits, only lora_A/lora_B train, PEFT counts, A within Kaiming-uniform(a=√5) bounds', () => {
  const model = new GPT(shape, 7).eval();
  const before = logits(model);
  const paths = applyLoRA(model, { r: 4, alpha: 8, dropout: 0, targetModules: ['c_attn', 'c_proj'], seed: 1 });
  assert.deepEqual(paths, ['transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_proj', 'transformer.h.1.attn.c_attn', 'transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_proj']);
  assert.deepEqual(logits(model), before);
  const names = model.namedTrainableParameters().map(([n]) => n);
  assert.equal(names.length, 12);
  assert.ok(names.every((n) => /\.lora_[AB]\.weight$/.test(n)));
  const { trainable, total, line } = trainableParameters(model);
  // Each adapter: r·(in + out); c_attn 4·(8 + 24), c_proj 4·(8 + 8), mlp.c_proj 4·(32 + 8).
  assert.equal(trainable, 2 * 4 * (32 + 16 + 40));
  assert.equal(line, `trainable params: ${trainable.toLocaleString('en-US')} || all params: ${total.toLocaleString('en-US')} || trainable%: ${((100 * trainable) / total).toFixed(4)}`);
  const a = (model.transformer.h.items[1]!.mlp as MLP).c_proj as unknown as LoRALinear;
  const A = a.loraA.toTypedArray() as Float32Array;
  assert.deepEqual(a.loraA.shape, [4, 32]);
  assert.ok(A.every((v) => Math.abs(v) <= 1 / Math.sqrt(32)) && A.some((v) => Math.abs(v) > 0.5 / Math.sqrt(32)));
  assert.equal(a.scaling, 2);
  model.dispose();
});

test('target_modules: PEFT suffix and regex rules; a non-Linear match or no match is refused', () => {
  assert.ok(matchesTarget('transformer.h.0.mlp.c_proj', ['mlp.c_proj']));
  assert.ok(!matchesTarget('transformer.h.0.attn.c_proj', ['mlp.c_proj']));
  assert.ok(!matchesTarget('transformer.h.0.attn.xc_attn', ['c_attn']));
  assert.ok(matchesTarget('transformer.h.1.attn.c_attn', { regex: '.*\\.1\\.attn\\.c_attn' }));
  assert.ok(!matchesTarget('transformer.h.1.attn.c_attn', { regex: 'attn\\.c_attn' }), 'a regex matches the whole path');
  assert.deepEqual(parseTargetModules(' c_attn, c_fc ', 'f'), ['c_attn', 'c_fc']);
  assert.deepEqual(parseTargetModules('/.*c_attn/', 'f'), { regex: '.*c_attn' });
  assert.throws(() => parseTargetModules('c_attn|c_fc', 'lora.target_modules'), /lora\.target_modules: "c_attn\|c_fc" is not a module name/);
  const model = new GPT(shape, 7);
  assert.throws(() => applyLoRA(model, { r: 2, alpha: 2, dropout: 0, targetModules: ['attn'] }), (e: unknown) => e instanceof UserError && /transformer\.h\.0\.attn matches target_modules but is a CausalSelfAttention/.test(e.message));
  assert.throws(() => applyLoRA(model, { r: 2, alpha: 2, dropout: 0, targetModules: ['q_proj'] }), (e: unknown) => e instanceof UserError && /matches no Linear layer \(the model's Linear layers are named c_attn, c_proj, c_fc\)/.test(e.message));
  model.dispose();
});

test('adapter dropout: deterministic per pass seed, and only in training', () => {
  const model = new GPT(shape, 7);
  applyLoRA(model, { r: 2, alpha: 4, dropout: 0.5, targetModules: ['c_fc'], seed: 2 });
  for (const [, l] of loraLayers(model)) l.loraB.data.fill(0.5, l.loraB.offset, l.loraB.offset + l.loraB.size);
  model.train();
  const a = logits(model, idxRows, 11);
  assert.deepEqual(logits(model, idxRows, 11), a);
  assert.notDeepEqual(logits(model, idxRows, 12), a);
  model.eval();
  const e = logits(model, idxRows, 11);
  assert.notDeepEqual(e, a);
  assert.deepEqual(logits(model, idxRows, 12), e);
  model.dispose();
});

test('save → load round-trips the logits exactly, under PEFT names and shapes', () => {
  const model = loadAdaptedGPT(join(fixtures, 'adapter')).eval();
  const want = logits(model);
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-lora-rt-'));
  saveAdapter(dir, model, { r: 2, alpha: 6, dropout: 0.1, targetModules: ['c_attn', 'mlp.c_proj'], useRsLoRA: false, baseModel: join(fixtures, 'base') });
  const file = readSafetensors(join(dir, ADAPTER_WEIGHTS_FILE));
  assert.deepEqual(file.tensors.get('base_model.model.transformer.h.0.attn.c_attn.lora_A.weight')!.shape, [2, 8]);
  assert.deepEqual(file.tensors.get('base_model.model.transformer.h.0.attn.c_attn.lora_B.weight')!.shape, [24, 2]);
  assert.deepEqual(file.tensors.get('base_model.model.transformer.h.1.mlp.c_proj.lora_A.weight')!.shape, [2, 32]);
  assert.equal(file.tensors.size, 8);
  const cfg = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
  assert.deepEqual([cfg.peft_type, cfg.task_type, cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.fan_in_fan_out, cfg.bias, cfg.inference_mode], ['LORA', 'CAUSAL_LM', 2, 6, 0.1, true, 'none', true]);
  assert.deepEqual(cfg.target_modules, ['c_attn', 'mlp.c_proj']);
  const back = loadAdaptedGPT(dir).eval();
  assert.deepEqual(logits(back), want);
  back.dispose();
  model.dispose();
});

/** A copy of the fixture adapter with its tensors (and optionally its config) changed. */
function badAdapter(edit: (t: Map<string, TensorData>) => void, config: Record<string, unknown> = {}): string {
  return badAdapterFrom('adapter', edit, config);
}

/** A copy of one of the fixture adapters (a directory under test/fixtures/lora) with its tensors and config changed. */
function badAdapterFrom(fixture: string, edit: (t: Map<string, TensorData>) => void, config: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-lora-bad-'));
  cpSync(join(fixtures, fixture), dir, { recursive: true });
  const tensors = new Map<string, TensorData>();
  for (const [n, t] of readSafetensors(join(dir, ADAPTER_WEIGHTS_FILE)).tensors) tensors.set(n, { shape: t.shape, data: t.data as Float32Array });
  edit(tensors);
  writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), tensors, { format: 'pt' });
  const cfg = { ...(JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>), ...config };
  writeFileSync(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify(cfg));
  return dir;
}

test('a bad adapter (wrong shape, missing tensor, wrong r, unknown field value) is refused in one line naming file and tensor', () => {
  const key = 'base_model.model.transformer.h.1.attn.c_attn.lora_B.weight';
  const cases: [string, string, RegExp][] = [
    ['wrong shape', badAdapter((t) => t.set(key, { shape: [24, 3], data: new Float32Array(72) })), /adapter_model\.safetensors: tensor base_model\.model\.transformer\.h\.1\.attn\.c_attn\.lora_B\.weight has shape \[24,3\], expected \(out_features, r\) = \(24, 2\)/],
    ['missing tensor', badAdapter((t) => t.delete(key)), /adapter_model\.safetensors: missing tensor base_model\.model\.transformer\.h\.1\.attn\.c_attn\.lora_B\.weight/],
    ['wrong r', badAdapter(() => {}, { r: 4 }), /adapter_model\.safetensors: tensor base_model\.model\.transformer\.h\.0\.attn\.c_attn\.lora_A\.weight has shape \[2,8\], expected \(r, in_features\) = \(4, 8\).*; and \d+ more/],
    ['unexpected tensor', badAdapter((t) => t.set('base_model.model.transformer.h.0.attn.c_proj.lora_A.weight', { shape: [2, 8], data: new Float32Array(16) })), /unexpected tensor base_model\.model\.transformer\.h\.0\.attn\.c_proj\.lora_A\.weight/],
    ['fan_in_fan_out', badAdapter(() => {}, { fan_in_fan_out: false }), /adapter_config\.json: field fan_in_fan_out is false, expected true/],
    ['peft_type', badAdapter(() => {}, { peft_type: 'IA3' }), /adapter_config\.json: field peft_type is "IA3", expected "LORA"/],
  ];
  for (const [what, dir, re] of cases) {
    const model = loadGPT(join(fixtures, 'base'));
    assert.throws(() => loadAdapter(dir, model), (e: unknown) => {
      assert.ok(e instanceof UserError, what);
      assert.match(e.message, re, what);
      assert.ok(!e.message.includes('\n'), `${what}: one line`);
      assert.ok(e.message.startsWith(dir), `${what}: names the file`);
      return true;
    });
    model.dispose();
  }
});

test('on a fixed batch the adapters alone fit the data while every base weight stays bit-identical', () => {
  const model = new GPT(shape, 9);
  // The tied head stays frozen: at GPT-2's init scale (0.02) it allows logits of only ±0.2, so widen it first.
  const wte = model.transformer.wte.weight;
  for (let i = 0; i < wte.size; i++) wte.data[wte.offset + i] = (wte.data[wte.offset + i] as number) * 50;
  const before = model.namedParameters().map(([n, p]) => [n, Float32Array.from(p.toTypedArray() as Float32Array)] as const);
  applyLoRA(model, { r: 4, alpha: 8, dropout: 0, targetModules: ['c_attn', 'c_fc', 'c_proj'], seed: 1 });
  const opt = makeOptimizer(model.namedTrainableParameters(), { ...defaultsOf(optimSpec), lr: 3e-2, weight_decay: 0 });
  assert.ok([...opt.state().tensors.keys()].every((k) => /\.lora_[AB]\.weight\./.test(k)));
  const x = lm.keep(lm.tensor(idxRows.flat(), [2, 8], 'int32'));
  const y = lm.keep(lm.tensor(idxRows.flat().map((v) => (v * 7 + 3) % 24), [2, 8], 'int32'));
  const losses: number[] = [];
  for (let i = 0; i < 30; i++) {
    losses.push(lm.tidy(() => {
      const { loss } = model.forward(x, y);
      lm.backward(loss!);
      return loss!.item();
    }));
    opt.step();
    opt.zeroGrad();
  }
  assert.ok(losses[29]! < losses[0]! - 0.5, `${losses[0]} → ${losses[29]}`);
  const after = new Map(model.namedParameters().map(([n, p]) => [n.replace('.base_layer', ''), p] as const));
  for (const [n, w] of before) assert.deepEqual(after.get(n)!.toTypedArray(), w, n);
  opt.dispose();
  model.dispose();
  x.dispose();
  y.dispose();
});

test('rsLoRA + modules_to_save (layer norms, tied wte): adapted logits match the PyTorch reference; merged = adapted', () => {
  const ref = JSON.parse(readFileSync(join(fixtures, 'logits-extras.json'), 'utf8')) as { idx: number[][]; logits: number[]; adapted_modules: string[]; saved_parameters: string[] };
  const dir = join(fixtures, 'adapter-extras');
  const cfg = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
  assert.deepEqual([cfg.use_rslora, cfg.modules_to_save, cfg.ensure_weight_tying], [true, ['ln_1', 'ln_f', 'wte'], true]);
  const names = [...readSafetensors(join(dir, ADAPTER_WEIGHTS_FILE)).tensors.keys()].filter((n) => !n.includes('.lora_')).sort();
  assert.deepEqual(names, ref.saved_parameters.map((n) => `base_model.model.${n}`));
  const model = loadAdaptedGPT(dir).eval();
  assert.deepEqual(loraLayers(model).map(([p]) => p), ref.adapted_modules);
  assert.equal(loraLayers(model)[0]![1].scaling, 3 / Math.sqrt(4));
  const got = logits(model, ref.idx);
  assert.ok(maxDiff(got, ref.logits) < 1e-5, `max |lmforge − torch| = ${maxDiff(got, ref.logits)}`);
  // Without the saved modules (the plain adapter files' rule) the logits would differ: the reference needs them.
  const bare = loadGPT(join(fixtures, 'base'));
  applyLoRA(bare, { r: 4, alpha: 3, dropout: 0, targetModules: ['c_fc'], useRsLoRA: true });
  for (const [[, a], [, b]] of loraLayers(bare).map((e, i) => [e, loraLayers(model)[i]!] as const)) {
    a.loraA.data.set(b.loraA.toTypedArray() as Float32Array, a.loraA.offset);
    a.loraB.data.set(b.loraB.toTypedArray() as Float32Array, a.loraB.offset);
  }
  assert.ok(maxDiff(logits(bare.eval(), ref.idx), ref.logits) > 1e-2, 'the saved modules change the logits');
  bare.dispose();
  mergeAndUnload(model);
  assert.ok(maxDiff(logits(model, ref.idx), got) < 1e-5, 'merged = adapted');
  model.dispose();
});

test('modules_to_save: trained in full beside the adapters, saved under their own names, round-trip exactly; bad names refused', () => {
  const model = new GPT(shape, 7);
  applyLoRA(model, { r: 2, alpha: 4, dropout: 0, targetModules: ['c_fc'], seed: 1 });
  const saved = trainModulesToSave(model, parseModulesToSave(' ln_2, wte ', 'f'));
  assert.deepEqual(saved, ['transformer.wte.weight', 'transformer.h.0.ln_2.weight', 'transformer.h.0.ln_2.bias', 'transformer.h.1.ln_2.weight', 'transformer.h.1.ln_2.bias']);
  const trainable = model.namedTrainableParameters().map(([n]) => n);
  assert.deepEqual(trainable.filter((n) => !n.includes('.lora_')), saved);
  const { trainable: count } = trainableParameters(model);
  assert.equal(count, 2 * 2 * (8 + 32) + 24 * 8 + 2 * 2 * 8);
  for (const [, p] of modulesToSaveParameters(model, ['ln_2', 'wte'])) for (let i = 0; i < p.size; i++) p.data[p.offset + i] = Math.sin(i + p.size);
  for (const [, l] of loraLayers(model)) l.loraB.data.fill(0.25, l.loraB.offset, l.loraB.offset + l.loraB.size);
  const want = logits(model.eval());
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-lora-mts-'));
  const base = mkdtempSync(join(tmpdir(), 'lmforge-lora-mts-base-'));
  const fresh = new GPT(shape, 7);
  saveGPT(base, fresh);
  fresh.dispose();
  saveAdapter(dir, model, { r: 2, alpha: 4, dropout: 0, targetModules: ['c_fc'], useRsLoRA: false, baseModel: base, modulesToSave: ['ln_2', 'wte'], ensureWeightTying: true });
  const back = loadAdaptedGPT(dir).eval();
  assert.deepEqual(logits(back), want);
  back.dispose();
  model.dispose();
  assert.throws(() => parseModulesToSave('ln_1|ln_2', 'lora.modules_to_save'), /lora\.modules_to_save: "ln_1\|ln_2" is not a module name/);
  assert.deepEqual(parseModulesToSave('', 'f'), []);
  const m2 = new GPT(shape, 7);
  applyLoRA(m2, { r: 2, alpha: 4, dropout: 0, targetModules: ['c_fc'] });
  assert.throws(() => trainModulesToSave(m2, ['mlp']), (e: unknown) => e instanceof UserError && /lora\.modules_to_save: transformer\.h\.0\.mlp\.c_fc is a LoRA target/.test(e.message));
  assert.throws(() => trainModulesToSave(m2, ['norm_x']), (e: unknown) => e instanceof UserError && /"norm_x"\] matches no module with parameters \(the model.s modules are named .*ln_1.*\)/.test(e.message));
  m2.dispose();
  // An adapter file that lacks a modules_to_save tensor its config names is refused, naming it.
  const broken = badAdapter(() => {}, { modules_to_save: ['ln_f'] });
  const m3 = loadGPT(join(fixtures, 'base'));
  assert.throws(() => loadAdapter(broken, m3), /missing tensor base_model\.model\.transformer\.ln_f\.weight/);
  m3.dispose();
});

test('LoRA+: lora_B steps lr_ratio × the scheduled lr, lora_A and the rest 1× (groups split by the factor)', () => {
  const model = new GPT(shape, 7);
  applyLoRA(model, { r: 2, alpha: 2, dropout: 0, targetModules: ['c_fc'], seed: 1 });
  trainModulesToSave(model, ['ln_f']);
  const scale = loraPlusLrScale(16);
  assert.deepEqual(model.namedTrainableParameters().map(([n]) => scale(n)), [1, 16, 1, 16, 1, 1]);
  assert.equal(loraPlusLrScale(1)('transformer.h.0.mlp.c_fc.lora_B.weight'), 1);
  for (const [, l] of loraLayers(model)) l.loraB.data.fill(0.1, l.loraB.offset, l.loraB.offset + l.loraB.size);
  // Plain SGD: each parameter moves by −lr·scale·grad exactly.
  const opt = makeOptimizer(model.namedTrainableParameters(), { ...defaultsOf(optimSpec), name: 'sgd', momentum: 0, weight_decay: 0, lr: 1e-2 }, scale);
  opt.setLearningRate(1e-2);
  const x = lm.tensor(idxRows.flat(), [2, 8], 'int32');
  const before = model.namedTrainableParameters().map(([n, p]) => [n, Float32Array.from(p.toTypedArray() as Float32Array)] as const);
  lm.tidy(() => lm.backward(model.forward(x, x).loss!));
  const grads = new Map(model.namedTrainableParameters().map(([n, p]) => [n, Float32Array.from(p.grad!.toTypedArray() as Float32Array)]));
  opt.step();
  for (const [n, w0] of before) {
    const p = model.namedTrainableParameters().find(([m]) => m === n)![1].toTypedArray() as Float32Array;
    const g = grads.get(n)!;
    const want = w0.map((w, i) => w - 1e-2 * scale(n) * g[i]!);
    assert.ok(maxDiff(p, want) < 1e-6, n);
    assert.ok(g.some((v) => v !== 0), `${n} has a gradient`);
  }
  opt.dispose();
  x.dispose();
  model.dispose();
});

test('LoRA+ with lr_ratio_vectors: the trainable 1-D parameters (saved norms, DoRA magnitudes) take the ratio too', () => {
  const model = new GPT(shape, 7);
  applyLoRA(model, { r: 2, alpha: 2, dropout: 0, targetModules: ['c_fc'], useDora: true, seed: 1 });
  trainModulesToSave(model, ['ln_f']);
  const names = model.namedTrainableParameters().map(([n]) => n);
  const vectors = loraPlusVectors(model, true);
  assert.deepEqual([...vectors], names.filter((n) => /lora_magnitude_vector$|ln_f\./.test(n)));
  const scale = loraPlusLrScale(8, vectors);
  assert.deepEqual(names.map((n) => [n.replace(/^transformer\./, ''), scale(n)]), [
    ['h.0.mlp.c_fc.lora_A.weight', 1], ['h.0.mlp.c_fc.lora_B.weight', 8], ['h.0.mlp.c_fc.lora_magnitude_vector', 8],
    ['h.1.mlp.c_fc.lora_A.weight', 1], ['h.1.mlp.c_fc.lora_B.weight', 8], ['h.1.mlp.c_fc.lora_magnitude_vector', 8],
    ['ln_f.weight', 8], ['ln_f.bias', 8],
  ]);
  assert.equal(loraPlusVectors(model, false).size, 0);
  assert.equal(loraPlusLrScale(1, vectors)('transformer.ln_f.weight'), 1);
  model.dispose();
});

test('DoRA: starts as the base (m = column norms of W0), logits match the PyTorch reference, merged = adapted, unmerge restores', () => {
  const fresh = new GPT(shape, 7).eval();
  const before = logits(fresh);
  applyLoRA(fresh, { r: 2, alpha: 4, dropout: 0, targetModules: ['c_fc'], useDora: true, seed: 1 });
  assert.ok(maxDiff(logits(fresh), before) < 1e-6, 'B = 0 and m = ‖W0‖: the base');
  const [, first] = loraLayers(fresh)[0]!;
  const w = first.base_layer.weight.toTypedArray() as Float32Array;
  const m = first.magnitude!.toTypedArray() as Float32Array;
  assert.deepEqual(first.magnitude!.shape, [32]);
  for (const j of [0, 5, 31]) assert.ok(Math.abs(m[j]! - Math.hypot(...Array.from({ length: 8 }, (_, i) => w[i * 32 + j]!))) < 1e-6);
  // Each DoRA layer trains r·(in + out) + out parameters.
  assert.equal(trainableParameters(fresh).trainable, 2 * (2 * (8 + 32) + 32));
  fresh.dispose();

  const ref = JSON.parse(readFileSync(join(fixtures, 'logits-dora.json'), 'utf8')) as { idx: number[][]; logits: number[]; adapted_modules: string[] };
  const dir = join(fixtures, 'adapter-dora');
  const cfg = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
  assert.equal(cfg.use_dora, true);
  assert.deepEqual(readSafetensors(join(dir, ADAPTER_WEIGHTS_FILE)).tensors.get('base_model.model.transformer.h.1.mlp.c_fc.lora_magnitude_vector')!.shape, [32]);
  const model = loadAdaptedGPT(dir).eval();
  assert.deepEqual(loraLayers(model).map(([p]) => p), ref.adapted_modules);
  const got = logits(model, ref.idx);
  assert.ok(maxDiff(got, ref.logits) < 1e-5, `max |lmforge − torch| = ${maxDiff(got, ref.logits)}`);
  // Read as plain LoRA (the magnitudes ignored) the same A, B give other logits: the reference sees the renormalisation.
  const plain = loadAdaptedGPT(badAdapterFrom('adapter-dora', (t) => { for (const n of [...t.keys()]) if (n.endsWith('lora_magnitude_vector')) t.delete(n); }, { use_dora: false }), { base: join(fixtures, 'base') }).eval();
  assert.ok(maxDiff(logits(plain, ref.idx), ref.logits) > 1e-3, 'the magnitudes change the logits');
  plain.dispose();
  const layer = loraLayers(model)[0]![1];
  const w0 = Float32Array.from(layer.base_layer.weight.toTypedArray() as Float32Array);
  for (const [, l] of loraLayers(model)) l.merge();
  assert.ok(maxDiff(logits(model, ref.idx), got) < 1e-5, 'merged = adapted');
  for (const [, l] of loraLayers(model)) l.unmerge();
  assert.ok(maxDiff(layer.base_layer.weight.toTypedArray() as Float32Array, w0) < 1e-6, 'unmerge restores W0');
  mergeAndUnload(model);
  assert.ok(maxDiff(logits(model, ref.idx), got) < 1e-5, 'merge_and_unload = adapted');
  model.dispose();
});

test('DoRA: save → load round-trips exactly; a missing magnitude is refused; the magnitude gradient matches finite differences', () => {
  const model = loadAdaptedGPT(join(fixtures, 'adapter-dora')).eval();
  const want = logits(model);
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-lora-dora-'));
  saveAdapter(dir, model, { r: 2, alpha: 4, dropout: 0, targetModules: ['c_attn', 'c_fc'], useRsLoRA: false, useDora: true, baseModel: join(fixtures, 'base') });
  assert.equal(readSafetensors(join(dir, ADAPTER_WEIGHTS_FILE)).tensors.size, 4 * 3);
  const back = loadAdaptedGPT(dir).eval();
  assert.deepEqual(logits(back), want);
  back.dispose();
  const broken = badAdapterFrom('adapter-dora', (t) => t.delete('base_model.model.transformer.h.0.attn.c_attn.lora_magnitude_vector'));
  const base = loadGPT(join(fixtures, 'base'));
  assert.throws(() => loadAdapter(broken, base), (e: unknown) => e instanceof UserError && /missing tensor base_model\.model\.transformer\.h\.0\.attn\.c_attn\.lora_magnitude_vector/.test(e.message));
  base.dispose();
  assert.throws(() => loadAdapter(badAdapterFrom('adapter-dora', () => {}, { use_dora: 'yes' }), loadGPT(join(fixtures, 'base'))), /field use_dora is "yes", expected true or false/);

  // The loss depends on m only through g = m/‖W0 + ΔW‖ with the norm independent of m: the analytic gradient of m
  // equals a central difference (A and B see the norm as a constant, as in PEFT, so they are not compared).
  const x = lm.keep(lm.tensor(idxRows.flat(), [2, 8], 'int32'));
  const y = lm.keep(lm.tensor(idxRows.flat().map((v) => (v * 5 + 1) % 24), [2, 8], 'int32'));
  const lossOf = (): number => lm.tidy(() => lm.noGrad(() => model.forward(x, y).loss!.item()));
  lm.tidy(() => lm.backward(model.forward(x, y).loss!));
  for (const [path, layer] of loraLayers(model)) {
    const m = layer.magnitude!;
    const g = m.grad!.toTypedArray() as Float32Array;
    const j = g.reduce((best, v, i) => (Math.abs(v) > Math.abs(g[best]!) ? i : best), 0);
    const old = m.data[m.offset + j] as number;
    const h = 1e-2;
    m.data[m.offset + j] = old + h;
    const up = lossOf();
    m.data[m.offset + j] = old - h;
    const down = lossOf();
    m.data[m.offset + j] = old;
    const numeric = (up - down) / (2 * h);
    assert.ok(Math.abs(numeric - g[j]!) < 0.05 * Math.abs(g[j]!) + 1e-4, `${path}: ∂L/∂m[${j}] ${g[j]} vs ${numeric}`);
  }
  x.dispose();
  y.dispose();
  model.dispose();
});

test('DoRA over a quantized base is refused (its norms need the float weight)', () => {
  const wv = Array.from({ length: 64 * 8 }, (_, i) => Math.sin(i) * 0.2);
  const q = new QuantizedLinear(quantizeRTN(wv, 8, 64, 4, 32), null);
  assert.throws(() => new LoRALinear(q, { r: 2, alpha: 4, dropout: 0, useDora: true }, new lm.Rng(1), 'h.0.mlp.c_fc'), (e: unknown) => e instanceof UserError && /LoRA h\.0\.mlp\.c_fc: DoRA \(use_dora\) needs the base layer's float weight/.test(e.message));
  const plain = new LoRALinear(q, { r: 2, alpha: 4, dropout: 0 }, new lm.Rng(1), 'h.0.mlp.c_fc');
  assert.equal(plain.magnitude, null, 'plain LoRA (QLoRA) over the same base is fine');
  plain.dispose();
});

test('rank_pattern / alpha_pattern: per-layer r and alpha by first match; logits match the PyTorch reference; merged = adapted; round trip', () => {
  const ref = JSON.parse(readFileSync(join(fixtures, 'logits-pattern.json'), 'utf8')) as { idx: number[][]; logits: number[]; adapted_modules: string[] };
  const dir = join(fixtures, 'adapter-pattern');
  const model = loadAdaptedGPT(dir).eval();
  assert.deepEqual(loraLayers(model).map(([p]) => p), ref.adapted_modules);
  // h.1's c_fc matches 'h.1.mlp.c_fc' first (rank 3); h.0's only 'c_fc' (4); the alpha of both c_fc is 12.
  const byPath = Object.fromEntries(loraLayers(model).map(([p, l]) => [p.replace('transformer.', ''), [l.options.r, l.scaling]]));
  assert.deepEqual(byPath, {
    'h.0.attn.c_attn': [2, 5 / 2], 'h.0.mlp.c_fc': [4, 12 / 4], 'h.0.mlp.c_proj': [1, 4 / 1],
    'h.1.attn.c_attn': [2, 4 / 2], 'h.1.mlp.c_fc': [3, 12 / 3], 'h.1.mlp.c_proj': [1, 4 / 1],
  });
  const got = logits(model, ref.idx);
  assert.ok(maxDiff(got, ref.logits) < 1e-5, `max |lmforge − torch| = ${maxDiff(got, ref.logits)}`);
  // Save → load keeps the patterns (in order) and the logits exactly.
  const out = mkdtempSync(join(tmpdir(), 'lmforge-lora-pattern-'));
  const rankPattern = { 'h.1.mlp.c_fc': 3, 'c_fc': 4, 'mlp.c_proj': 1 };
  saveAdapter(out, model, { r: 2, alpha: 4, dropout: 0, targetModules: ['c_attn', 'c_fc', 'mlp.c_proj'], useRsLoRA: false, baseModel: join(fixtures, 'base'), rankPattern, alphaPattern: { 'h.0.attn.c_attn': 5, 'c_fc': 12 } });
  const cfg = JSON.parse(readFileSync(join(out, ADAPTER_CONFIG_FILE), 'utf8')) as { rank_pattern: Record<string, number> };
  assert.deepEqual(Object.entries(cfg.rank_pattern), Object.entries(rankPattern));
  const back = loadAdaptedGPT(out).eval();
  assert.deepEqual(logits(back, ref.idx), got);
  back.dispose();
  mergeAndUnload(model);
  assert.ok(maxDiff(logits(model, ref.idx), got) < 1e-5, 'merged = adapted');
  model.dispose();
});

test('rank_pattern / alpha_pattern: the config syntax, PEFT matching rule, and bad patterns refused with the field named', () => {
  assert.deepEqual(parseLoRAPattern(' h.2.mlp.c_fc=12, c_proj = 4 ', 'f', 'rank'), { 'h.2.mlp.c_fc': 12, c_proj: 4 });
  assert.deepEqual(parseLoRAPattern('', 'f', 'rank'), {});
  assert.deepEqual(parseLoRAPattern('c_fc=2.5', 'f', 'alpha'), { c_fc: 2.5 });
  // A key matches the whole path or a dotted suffix (regex, `.` any character), never a bare substring.
  assert.equal(patternValue({ 'mlp.c_proj': 3 }, 'transformer.h.0.mlp.c_proj', 8), 3);
  assert.equal(patternValue({ 'c_proj': 3 }, 'transformer.h.0.attn.c_proj', 8), 3);
  assert.equal(patternValue({ 'proj': 3 }, 'transformer.h.0.attn.c_proj', 8), 8);
  assert.equal(patternValue({ 'h\\.[01]\\.mlp\\..*': 5 }, 'transformer.h.1.mlp.c_fc', 8), 5);
  assert.equal(patternValue({ 'h\\.[01]\\.mlp\\..*': 5 }, 'transformer.h.2.mlp.c_fc', 8), 8);
  const refused: [() => unknown, RegExp][] = [
    [() => parseLoRAPattern('c_fc', 'lora.rank_pattern', 'rank'), /lora\.rank_pattern: "c_fc" is not pattern=rank/],
    [() => parseLoRAPattern('c_fc=0', 'lora.rank_pattern', 'rank'), /lora\.rank_pattern: "c_fc" has rank 0, expected an integer ≥ 1/],
    [() => parseLoRAPattern('c_fc=2.5', 'lora.rank_pattern', 'rank'), /has rank 2\.5, expected an integer ≥ 1/],
    [() => parseLoRAPattern('c_fc=-1', 'lora.alpha_pattern', 'alpha'), /lora\.alpha_pattern: "c_fc" has alpha -1, expected a number ≥ 0/],
    [() => parseLoRAPattern('c_fc=2,c_fc=3', 'lora.rank_pattern', 'rank'), /pattern "c_fc" is given twice/],
    [() => parseLoRAPattern('c_(fc=2', 'lora.rank_pattern', 'rank'), /pattern "c_\(fc" is not a valid regular expression/],
    [() => applyLoRA(new GPT(shape, 7), { r: 2, alpha: 4, dropout: 0, targetModules: ['c_fc'], rankPattern: { 'c_attn': 4 } }), /lora\.rank_pattern: pattern "c_attn" matches none of the adapted layers \(transformer\.h\.0\.mlp\.c_fc, transformer\.h\.1\.mlp\.c_fc\)/],
  ];
  for (const [f, re] of refused) assert.throws(f, (e: unknown) => e instanceof UserError && re.test(e.message));
  // In adapter_config.json: a rank that is not an integer ≥ 1 is refused naming the file and field.
  const dir = badAdapterFrom('adapter-pattern', () => {}, { rank_pattern: { c_fc: 0 } });
  const model = loadGPT(join(fixtures, 'base'));
  assert.throws(() => loadAdapter(dir, model), (e: unknown) => e instanceof UserError && e.message.startsWith(join(dir, ADAPTER_CONFIG_FILE)) && /field rank_pattern: "c_fc" has rank 0/.test(e.message));
  model.dispose();
});
