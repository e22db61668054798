// KV-cache decoding gives the same logits as re-running the whole context, for GPT-2 style and RoPE models,
// and sampling respects temperature 0, top-k and top-p.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import { GPT, KVCache } from '../../src/models/gpt.js';
import { generate } from '../../src/models/generate.js';
import { sampleToken } from '../../src/models/sampling.js';
import { assertClose } from '../core/harness.js';

for (const position of ['learned', 'rope'] as const) {
  test(`KV-cache logits equal full-context logits (${position} positions)`, () => {
    const model = new GPT({ vocab_size: 13, block_size: 12, n_layer: 2, n_head: 2, n_embd: 8, position, bias: position === 'learned' }).eval();
    const seq = [3, 1, 4, 1, 5, 9, 2, 6];
    const cache = new KVCache(model.config, 1);
    lm.tidy(() => {
      // Prefill with 3 tokens, then one at a time.
      let cached = model.forwardCached(lm.tensor(seq.slice(0, 3), [1, 3], 'int32'), cache).toArray();
      for (let t = 3; t <= seq.length; t++) {
        const full = lm.noGrad(() => model.forward(lm.tensor(seq.slice(0, t), [1, t], 'int32')).logits);
        const last = lm.slice(full, 1, t - 1, t).toArray();
        assertClose(cached, last, 1e-4, 1e-5, `position ${t}`);
        if (t < seq.length) cached = model.forwardCached(lm.tensor([seq[t]!], [1, 1], 'int32'), cache).toArray();
      }
    });
    cache.dispose();
    model.dispose();
  });
}

test('generate is deterministic per seed and greedy decoding matches argmax of the full forward pass', () => {
  const model = new GPT({ vocab_size: 17, block_size: 8, n_layer: 1, n_head: 2, n_embd: 8 });
  const a = generate(model, [1, 2], { maxNewTokens: 20, temperature: 1, topK: 0, topP: 1, seed: 5 });
  const b = generate(model, [1, 2], { maxNewTokens: 20, temperature: 1, topK: 0, topP: 1, seed: 5 });
  assert.deepEqual(a, b);
  assert.equal(a.length, 20); // runs past block_size through the cache rebuild
  const greedy = generate(model, [1, 2], { maxNewTokens: 3, temperature: 0, topK: 0, topP: 1, seed: 0 });
  let ctx = [1, 2];
  for (const tok of greedy) {
    const logits = lm.tidy(() => lm.noGrad(() => {
      const l = model.eval().forward(lm.tensor(ctx, [1, ctx.length], 'int32')).logits;
      return lm.slice(l, 1, ctx.length - 1, ctx.length).toArray();
    }));
    assert.equal(tok, logits.indexOf(Math.max(...logits)));
    ctx = [...ctx, tok];
  }
  model.dispose();
});

test('top-k and top-p restrict the candidates', () => {
  const rng = new lm.Rng(3);
  const logits = [0, 5, 4, 1, 3];
  for (let i = 0; i < 200; i++) {
    assert.ok([1, 2].includes(sampleToken(logits, { temperature: 1, topK: 2, topP: 1 }, rng)));
    assert.equal(sampleToken(logits, { temperature: 1, topK: 0, topP: 0.5 }, rng), 1);
  }
});
