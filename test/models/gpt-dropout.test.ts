// The GPT's attention dropout (nanoGPT's attn_dropout): in training every layer drops its attention probabilities
// at the model's dropout rate with its own seed (site 2·n_layer + 1 + l), beside the residual dropout; eval runs
// none. Checked bitwise against the forward pass composed by hand from the model's own modules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import type { Tensor } from '../../src/core/index.js';
import { GPT, siteSeed } from '../../src/models/gpt.js';

test('training drops attention probabilities per layer with its own seed; eval drops nothing', () => {
  const p = 0.3;
  const seed = 9;
  const model = new GPT({ vocab_size: 11, block_size: 8, n_layer: 2, n_head: 2, n_embd: 8, dropout: p });
  const L = model.config.n_layer;
  const idx = lm.keep(lm.tensor([1, 4, 2, 8, 5, 7, 3, 0, 9, 10, 6, 2], [2, 6], 'int32'));
  // The forward pass by hand: residual dropout at rate pRes, attention dropout at rate pAttn.
  const byHand = (pRes: number, pAttn: number): number[] => {
    const t = model.transformer;
    const drop = (x: Tensor, site: number): Tensor => (pRes > 0 ? lm.dropout(x, pRes, siteSeed(seed, site)) : x);
    let x = drop(lm.add(t.wte.forward(idx), lm.slice(t.wpe!.weight, 0, 0, 6)), 0);
    t.h.items.forEach((block, l) => {
      // Attention alone, with its own dropout rate: a context whose residual dropout is pAttn, used only inside attn.
      const ctx = { dropout: pAttn, seed, rope: null, cache: null, aux: {} };
      const x1 = lm.add(x, drop(block.attn.forward(block.ln_1.forward(x), ctx), 2 * l + 1));
      x = lm.add(x1, drop(block.mlp.forward(block.ln_2.forward(x1)), 2 * l + 2));
    });
    return lm.matmul(t.ln_f.forward(x), lm.transpose(t.wte.weight)).toArray();
  };
  lm.tidy(() => lm.noGrad(() => {
    const train = model.train().forward(idx, undefined, { seed }).logits.toArray();
    assert.deepEqual(train, byHand(p, p));
    assert.notDeepEqual(train, byHand(p, 0), 'attention dropout must be active in training');
    assert.deepEqual(model.train().forward(idx, undefined, { seed }).logits.toArray(), train, 'deterministic per seed');
    assert.notDeepEqual(model.train().forward(idx, undefined, { seed: seed + 1 }).logits.toArray(), train);
    assert.deepEqual(model.eval().forward(idx, undefined, { seed }).logits.toArray(), byHand(0, 0));
  }));
  // The attention sites' seeds differ from every residual site's.
  const residual = new Set(Array.from({ length: 2 * L + 1 }, (_, s) => siteSeed(seed, s)));
  for (let l = 0; l < L; l++) assert.ok(!residual.has(siteSeed(seed, 2 * L + 1 + l)));
  idx.dispose();
  model.dispose();
});
