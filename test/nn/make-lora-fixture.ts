// Writes the inputs of the LoRA parity fixture once: a tiny GPT base (test/fixtures/lora/base) and an adapter on it
// with non-zero lora_B (test/fixtures/lora/adapter), one with rsLoRA and modules_to_save (adapter-extras), one with
// DoRA (adapter-dora) and one with per-layer ranks and alphas (adapter-pattern).
// test/reference/lora_reference.py then computes the logits from
// these files alone. Run: npx tsc -p . && node dist/test/nn/make-lora-fixture.js (not a test; CI only reads the files).
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import * as lm from '../../src/core/index.js';
import { GPT } from '../../src/models/gpt.js';
import { saveGPT } from '../../src/models/gpt-io.js';
import { saveAdapter } from '../../src/models/lora-io.js';
import { applyLoRA, loraLayers, modulesToSaveParameters } from '../../src/nn/lora.js';

const dir = fileURLToPath(new URL('../../../test/fixtures/lora/', import.meta.url));
const model = new GPT({ vocab_size: 24, block_size: 8, n_layer: 2, n_head: 2, n_embd: 8, bias: true }, 7);
saveGPT(join(dir, 'base'), model);
const lora = { r: 2, alpha: 6, dropout: 0.1, targetModules: ['c_attn', 'mlp.c_proj'] };
applyLoRA(model, { ...lora, seed: 3 });
const rng = new lm.Rng(5);
// A trained adapter has B ≠ 0; draw one so the update shows in the logits.
for (const [, layer] of loraLayers(model)) {
  const b = lm.randn(layer.loraB.shape, rng, 0.3);
  layer.loraB.data.set(b.toTypedArray() as Float32Array, layer.loraB.offset);
  b.dispose();
}
saveAdapter(join(dir, 'adapter'), model, { ...lora, useRsLoRA: false, baseModel: '../base' });
console.log(`wrote ${dir}base and ${dir}adapter`);
model.dispose();

// A second adapter (test/fixtures/lora/adapter-extras) with what PEFT stores beyond A and B: rsLoRA scaling and
// modules_to_save (the layer norms ln_1 and ln_f, and the tied token embedding wte, with ensure_weight_tying).
const extras = new GPT({ vocab_size: 24, block_size: 8, n_layer: 2, n_head: 2, n_embd: 8, bias: true }, 7);
const extrasLora = { r: 4, alpha: 3, dropout: 0, targetModules: ['c_fc'], useRsLoRA: true, modulesToSave: ['ln_1', 'ln_f', 'wte'], ensureWeightTying: true };
applyLoRA(extras, { ...extrasLora, seed: 4 });
const rng2 = new lm.Rng(6);
for (const [, layer] of loraLayers(extras)) {
  const b = lm.randn(layer.loraB.shape, rng2, 0.3);
  layer.loraB.data.set(b.toTypedArray() as Float32Array, layer.loraB.offset);
  b.dispose();
}
// Trained copies of the saved modules differ from the base's: shift each by noise so the logits show it.
for (const [, p] of modulesToSaveParameters(extras, extrasLora.modulesToSave)) {
  const noise = lm.randn(p.shape, rng2, 0.2);
  const n = noise.toTypedArray() as Float32Array;
  for (let i = 0; i < p.size; i++) p.data[p.offset + i] = (p.data[p.offset + i] as number) + n[i]!;
  noise.dispose();
}
saveAdapter(join(dir, 'adapter-extras'), extras, { ...extrasLora, baseModel: '../base' });
console.log(`wrote ${dir}adapter-extras`);
extras.dispose();

// A third adapter (test/fixtures/lora/adapter-dora) with DoRA (use_dora): each adapted layer also holds
// lora_magnitude_vector; the base has biases, so the reference checks that they stay outside the renormalisation.
const dora = new GPT({ vocab_size: 24, block_size: 8, n_layer: 2, n_head: 2, n_embd: 8, bias: true }, 7);
const doraLora = { r: 2, alpha: 4, dropout: 0, targetModules: ['c_attn', 'c_fc'], useDora: true };
applyLoRA(dora, { ...doraLora, seed: 5 });
const rng3 = new lm.Rng(8);
for (const [, layer] of loraLayers(dora)) {
  const b = lm.randn(layer.loraB.shape, rng3, 0.3);
  layer.loraB.data.set(b.toTypedArray() as Float32Array, layer.loraB.offset);
  b.dispose();
  // A trained magnitude differs from the column norms it starts at.
  const m = layer.magnitude!;
  for (let i = 0; i < m.size; i++) m.data[m.offset + i] = (m.data[m.offset + i] as number) * (1 + 0.3 * Math.sin(3 * i + 1));
}
saveAdapter(join(dir, 'adapter-dora'), dora, { ...doraLora, useRsLoRA: false, baseModel: '../base' });
console.log(`wrote ${dir}adapter-dora`);
dora.dispose();

// A fourth adapter (test/fixtures/lora/adapter-pattern) with per-layer ranks and alphas (PEFT's rank_pattern and
// alpha_pattern): keys in order, the first match winning (h.1's c_fc takes 3, h.0's falls to the c_fc key's 4).
const pattern = new GPT({ vocab_size: 24, block_size: 8, n_layer: 2, n_head: 2, n_embd: 8, bias: true }, 7);
const patternLora = {
  r: 2, alpha: 4, dropout: 0, targetModules: ['c_attn', 'c_fc', 'mlp.c_proj'],
  rankPattern: { 'h.1.mlp.c_fc': 3, 'c_fc': 4, 'mlp.c_proj': 1 }, alphaPattern: { 'h.0.attn.c_attn': 5, 'c_fc': 12 },
};
applyLoRA(pattern, { ...patternLora, seed: 6 });
const rng4 = new lm.Rng(9);
for (const [, layer] of loraLayers(pattern)) {
  const b = lm.randn(layer.loraB.shape, rng4, 0.3);
  layer.loraB.data.set(b.toTypedArray() as Float32Array, layer.loraB.offset);
  b.dispose();
}
saveAdapter(join(dir, 'adapter-pattern'), pattern, { ...patternLora, useRsLoRA: false, baseModel: '../base' });
console.log(`wrote ${dir}adapter-pattern`);
pattern.dispose();
