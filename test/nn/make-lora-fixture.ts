// Writes the inputs of the LoRA parity fixture once: a tiny GPT base (test/fixtures/lora/base) and an adapter on it
// with non-zero lora_B (test/fixtures/lora/adapter). test/reference/lora_reference.py then computes the logits from
// these files alone. Run: npx tsc -p . && node dist/test/nn/make-lora-fixture.js (not a test; CI only reads the files).
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import * as lm from '../../src/core/index.js';
import { GPT } from '../../src/models/gpt.js';
import { saveGPT } from '../../src/models/gpt-io.js';
import { saveAdapter } from '../../src/models/lora-io.js';
import { applyLoRA, loraLayers } from '../../src/nn/lora.js';

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
