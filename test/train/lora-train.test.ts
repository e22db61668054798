// LoRA fine-tuning through `train`: a run with init_from + lora.r trains only the adapters (the base bit-identical,
// optimizer state only for lora_A/lora_B), writes PEFT's adapter files, resumes exactly; `sample`/`eval` load the run
// (base + adapter merged) and `lmforge lora merge` writes a merged model equal to the adapted one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { readSafetensors } from '../../src/core/safetensors.js';
import { prepareCharData } from '../../src/data/prepare.js';
import type { GPT } from '../../src/models/gpt.js';
import { loadGPT } from '../../src/models/gpt-io.js';
import { loadAdaptedGPT } from '../../src/models/lora-io.js';
import { loraLayers } from '../../src/nn/lora.js';
import { findLatestComplete, loadCheckpoint } from '../../src/train/checkpoint.js';
import { readMetrics } from '../../src/train/metrics.js';
import { RunDir } from '../../src/train/run-dir.js';
import { TRAIN_ALIASES, trainSpec, type TrainConfig } from '../../src/train/train-config.js';
import { train } from '../../src/train/trainer.js';
import { objectLayer, resolveConfigWithAliases } from '../../src/util/config.js';
import { UserError } from '../../src/util/errors.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
loadNativeBackend();
const quiet = { log: (): void => {} };

function config(dir: string, out: string, extra: Record<string, unknown>): TrainConfig {
  return resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, objectLayer({
    data_dir: join(dir, 'data'), out_dir: join(dir, out), n_layer: 2, n_head: 2, n_embd: 32, block_size: 32, batch_size: 4,
    eval_interval: 10, eval_iters: 2, log_interval: 1, checkpoint_interval: 5, warmup_iters: 2, lr_decay_iters: 20, learning_rate: 1e-2,
    ...extra,
  }, 'test'));
}

function curve(runDir: string): [number, number | null, number | null][] {
  return readMetrics(join(runDir, 'metrics.jsonl')).map((r) => [r.step, (r.loss as number | undefined) ?? null, (r.val_loss as number | undefined) ?? null]);
}

function logits(model: GPT): Float32Array {
  return lm.tidy(() => lm.noGrad(() => Float32Array.from(model.eval().forward(lm.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1, 10], 'int32')).logits.toTypedArray() as Float32Array)));
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

const dir = mkdtempSync(join(tmpdir(), 'lmforge-lora-train-'));
writeFileSync(join(dir, 'input.txt'), readFileSync(join(root, '../shared/data/tinyshakespeare/input.txt'), 'utf8').slice(0, 60000));
prepareCharData({ input: join(dir, 'input.txt'), outDir: join(dir, 'data'), valFraction: 0.1 });
train(config(dir, 'base', { max_iters: 10 }), quiet);
const lora = (out: string, maxIters: number): TrainConfig => config(dir, out, {
  init_from: join(dir, 'base'), max_iters: maxIters, learning_rate: 3e-2, lora: { r: 4, alpha: 8, dropout: 0.1, target_modules: 'c_attn,c_fc' },
});

test('a LoRA run trains only the adapters: base bit-identical, optimizer state only for lora_A/lora_B, PEFT files written', () => {
  train(lora('lora', 20), quiet);
  const run = join(dir, 'lora');
  assert.ok(existsSync(join(run, 'adapter_model.safetensors')) && existsSync(join(run, 'adapter_config.json')));
  assert.equal(existsSync(join(run, 'model.safetensors')), false, 'the run keeps its adapter, not a copy of the base');
  const ck = loadCheckpoint(findLatestComplete(run)!.dir);
  const stateKeys = [...ck.optimizer.tensors.keys()];
  assert.ok(stateKeys.length > 0 && stateKeys.every((k) => /\.lora_[AB]\.weight\./.test(k)), stateKeys.join(', '));
  const base = readSafetensors(join(dir, 'base', 'model.safetensors')).tensors;
  for (const [name, t] of base) {
    const wrapped = name.replace(/\.(c_attn|c_fc)\.(weight|bias)$/, '.$1.base_layer.$2');
    assert.deepEqual(ck.params.get(wrapped)!.data, t.data, `${wrapped} unchanged in the checkpoint`);
  }
  const adapted = loadAdaptedGPT(run);
  assert.deepEqual(loraLayers(adapted).map(([p]) => p), ['transformer.h.0.attn.c_attn', 'transformer.h.0.mlp.c_fc', 'transformer.h.1.attn.c_attn', 'transformer.h.1.mlp.c_fc']);
  assert.ok(loraLayers(adapted).every(([, l]) => (l.loraB.toTypedArray() as Float32Array).some((v) => v !== 0)), 'lora_B moved');
  const losses = curve(run).filter(([, l]) => l !== null).map(([, l]) => l!);
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const [first, last] = [mean(losses.slice(0, 5)), mean(losses.slice(-5))];
  assert.ok(last < first, `the adapter lowers the loss (mean of 5 steps): ${first} → ${last}`);
  // sample and eval load the run through RunDir: base + adapter merged, equal to the adapted model.
  const merged = RunDir.open(run).loadModel();
  assert.equal(loraLayers(merged).length, 0);
  assert.ok(maxDiff(logits(merged), logits(adapted)) < 1e-5);
  merged.dispose();
  adapted.dispose();
});

test('train --resume of a LoRA run (with adapter dropout) is exact; a changed lora.r is refused', () => {
  train(lora('straight', 20), quiet);
  train(lora('split', 10), quiet);
  train(lora('split', 20), { ...quiet, resume: true });
  assert.deepEqual(curve(join(dir, 'split')), curve(join(dir, 'straight')));
  assert.ok(readFileSync(join(dir, 'split', 'adapter_model.safetensors')).equals(readFileSync(join(dir, 'straight', 'adapter_model.safetensors'))));
  const other = lora('split', 30);
  other.lora.r = 2;
  assert.throws(() => train(other, { ...quiet, resume: true }), (e: unknown) => e instanceof UserError && /--resume: lora\.r is 2 but the checkpoint .* was trained with 4/.test(e.message));
});

test('a LoRA+ / rsLoRA / modules_to_save run: the saved modules train and land in the adapter; the run loads as trained; a changed modules_to_save is refused on resume', () => {
  const c = lora('extras', 10);
  c.lora = { ...c.lora, use_rslora: true, lr_ratio: 4, modules_to_save: 'ln_f,wte' };
  train(c, quiet);
  const run = join(dir, 'extras');
  const cfg = JSON.parse(readFileSync(join(run, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual([cfg.use_rslora, cfg.modules_to_save, cfg.ensure_weight_tying], [true, ['ln_f', 'wte'], true]);
  const saved = readSafetensors(join(run, 'adapter_model.safetensors')).tensors;
  const base = readSafetensors(join(dir, 'base', 'model.safetensors')).tensors;
  for (const n of ['transformer.wte.weight', 'transformer.ln_f.weight']) {
    assert.notDeepEqual(saved.get(`base_model.model.${n}`)!.data, base.get(n)!.data, `${n} trained`);
  }
  const ck = loadCheckpoint(findLatestComplete(run)!.dir);
  assert.ok([...ck.optimizer.tensors.keys()].some((k) => k.startsWith('transformer.wte.weight.')), 'optimizer state for the saved modules');
  // The adapted run (base + adapter) equals the checkpointed model: modules_to_save came back from the adapter file.
  const adapted = loadAdaptedGPT(run);
  const wte = adapted.transformer.wte.weight.toTypedArray() as Float32Array;
  assert.deepEqual(Float32Array.from(wte), ck.params.get('transformer.wte.weight')!.data);
  const merged = RunDir.open(run).loadModel();
  assert.ok(maxDiff(logits(merged), logits(adapted)) < 1e-5);
  merged.dispose();
  adapted.dispose();
  const other = lora('extras', 20);
  other.lora = { ...other.lora, use_rslora: true, lr_ratio: 4, modules_to_save: 'ln_f' };
  assert.throws(() => train(other, { ...quiet, resume: true }), (e: unknown) => e instanceof UserError && /--resume: lora\.modules_to_save is "ln_f" but the checkpoint .* was trained with "ln_f,wte"/.test(e.message));
});

test('a rank_pattern / alpha_pattern run: per-layer shapes and scalings in the adapter and its config, loads as trained; a changed rank_pattern is refused on resume', () => {
  const c = lora('pattern', 10);
  c.lora = { ...c.lora, rank_pattern: 'h.1.mlp.c_fc=6,c_attn=2', alpha_pattern: 'h.1.mlp.c_fc=3' };
  train(c, quiet);
  const run = join(dir, 'pattern');
  const cfg = JSON.parse(readFileSync(join(run, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual([cfg.r, cfg.lora_alpha, cfg.rank_pattern, cfg.alpha_pattern], [4, 8, { 'h.1.mlp.c_fc': 6, c_attn: 2 }, { 'h.1.mlp.c_fc': 3 }]);
  const saved = readSafetensors(join(run, 'adapter_model.safetensors')).tensors;
  const rankOf = (path: string): number => saved.get(`base_model.model.transformer.${path}.lora_A.weight`)!.shape[0]!;
  assert.deepEqual(['h.0.attn.c_attn', 'h.0.mlp.c_fc', 'h.1.attn.c_attn', 'h.1.mlp.c_fc'].map(rankOf), [2, 4, 2, 6]);
  const adapted = loadAdaptedGPT(run);
  assert.deepEqual(loraLayers(adapted).map(([p, l]) => [p, l.options.r, l.scaling]), [
    ['transformer.h.0.attn.c_attn', 2, 4], ['transformer.h.0.mlp.c_fc', 4, 2], ['transformer.h.1.attn.c_attn', 2, 4], ['transformer.h.1.mlp.c_fc', 6, 0.5],
  ]);
  const merged = RunDir.open(run).loadModel();
  assert.ok(maxDiff(logits(merged), logits(adapted)) < 1e-5);
  merged.dispose();
  adapted.dispose();
  const other = lora('pattern', 20);
  other.lora = { ...other.lora, rank_pattern: 'c_attn=2', alpha_pattern: 'h.1.mlp.c_fc=3' };
  assert.throws(() => train(other, { ...quiet, resume: true }), (e: unknown) => e instanceof UserError && /--resume: lora\.rank_pattern is "c_attn=2" but the checkpoint .* was trained with "h\.1\.mlp\.c_fc=6,c_attn=2"/.test(e.message));
});

test('a DoRA run (lora.use_dora, LoRA+ with lr_ratio_vectors): magnitudes train, land in the adapter under PEFT names, resume exactly; the run loads and merges as trained', () => {
  const dora = (out: string, maxIters: number): TrainConfig => {
    const c = lora(out, maxIters);
    c.lora = { ...c.lora, dropout: 0, use_dora: true, lr_ratio: 4, lr_ratio_vectors: true };
    return c;
  };
  train(dora('dora', 10), quiet);
  train(dora('dora-split', 5), quiet);
  train(dora('dora-split', 10), { ...quiet, resume: true });
  const run = join(dir, 'dora');
  assert.deepEqual(curve(join(dir, 'dora-split')), curve(run));
  assert.ok(readFileSync(join(dir, 'dora-split', 'adapter_model.safetensors')).equals(readFileSync(join(run, 'adapter_model.safetensors'))));
  const cfg = JSON.parse(readFileSync(join(run, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(cfg.use_dora, true);
  const saved = readSafetensors(join(run, 'adapter_model.safetensors')).tensors;
  const m = saved.get('base_model.model.transformer.h.1.mlp.c_fc.lora_magnitude_vector')!;
  assert.deepEqual(m.shape, [128]);
  // The magnitude starts at the base weight's column norms; training moves it.
  const w = readSafetensors(join(dir, 'base', 'model.safetensors')).tensors.get('transformer.h.1.mlp.c_fc.weight')!.data as Float32Array;
  const norms = Array.from({ length: 128 }, (_, j) => Math.hypot(...Array.from({ length: 32 }, (_, i) => w[i * 128 + j]!)));
  assert.ok(maxDiff(Float32Array.from(m.data as Float32Array), Float32Array.from(norms)) > 1e-4, 'the magnitudes trained');
  const ck = loadCheckpoint(findLatestComplete(run)!.dir);
  assert.ok([...ck.optimizer.tensors.keys()].some((k) => k.includes('.lora_magnitude_vector.')), 'optimizer state for the magnitudes');
  const adapted = loadAdaptedGPT(run);
  const merged = RunDir.open(run).loadModel();
  assert.ok(maxDiff(logits(merged), logits(adapted)) < 1e-5, 'merged = adapted');
  merged.dispose();
  adapted.dispose();
  const other = dora('dora', 20);
  other.lora = { ...other.lora, use_dora: false };
  assert.throws(() => train(other, { ...quiet, resume: true }), (e: unknown) => e instanceof UserError && /--resume: lora\.use_dora is false but the checkpoint .* was trained with true/.test(e.message));
});

test('lora.r without init_from, and an architecture key that contradicts the base, are refused', () => {
  assert.throws(() => train(config(dir, 'x', { lora: { r: 4 } }), quiet), /lora\.r: a LoRA run adapts a trained model; set init_from/);
  assert.throws(() => train(config(dir, 'y', { init_from: join(dir, 'base'), n_layer: 3, lora: { r: 4 } }), quiet), /model\.n_layer is 3 but the init_from model .* has 2/);
});

test('`lmforge lora merge` writes a merged model equal to the adapted one; `lmforge sample --run` reads the LoRA run', () => {
  const run = join(dir, 'lora');
  if (!existsSync(join(run, 'adapter_config.json'))) train(lora('lora', 20), quiet);
  const out = join(dir, 'merged');
  const r = spawnSync(process.execPath, [cli, 'lora', 'merge', '--run', run, '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const merged = loadGPT(out);
  const adapted = loadAdaptedGPT(run);
  assert.ok(maxDiff(logits(merged), logits(adapted)) < 1e-5);
  assert.ok(existsSync(join(out, 'meta.json')));
  merged.dispose();
  adapted.dispose();
  const s = spawnSync(process.execPath, [cli, 'sample', '--run', run, '--prompt', 'ROMEO:', '--max-new-tokens', '8', '--temperature', '0'], { encoding: 'utf8' });
  assert.equal(s.status, 0, s.stderr);
  const m = spawnSync(process.execPath, [cli, 'sample', '--run', out, '--prompt', 'ROMEO:', '--max-new-tokens', '8', '--temperature', '0'], { encoding: 'utf8' });
  assert.equal(s.stdout, m.stdout, 'the adapter run and its merged model sample the same greedy text');
});

test('prepare --instructions --vocab-from: Alpaca prompts in the base vocabulary, bare headers without "#"', () => {
  const out = join(dir, 'ins');
  const file = join(dir, 'ins.jsonl');
  writeFileSync(file, '{"instruction": "Say hi #1.", "instances": [{"input": "", "output": "Hi!"}]}\n');
  const r = prepareCharData({ input: file, outDir: out, valFraction: 0.1, instructions: true, vocabFrom: join(dir, 'base') });
  assert.equal(r.dropped, 2, '"#" and "1" are not in the Shakespeare sample');
  const meta = JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8')) as { tokenizer: unknown };
  assert.deepEqual(meta.tokenizer, (JSON.parse(readFileSync(join(dir, 'base', 'meta.json'), 'utf8')) as { tokenizer: unknown }).tokenizer);
  assert.equal(r.trainTokens + r.valTokens, 'Instruction:\nSay hi .\n\nResponse:\nHi!\n\n'.length);
});
