// options.inputFeatures: a (B, T, C) tensor added to the input embeddings (a QA reader's exact-match feature). Adding
// wte(idx2) − wte(idx) to the embeddings of idx must give the logits of idx2 (the positions are the same); a wrong
// shape or a cache is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import { GPT } from '../../src/models/gpt.js';
import { assertClose } from '../core/harness.js';

test('inputFeatures are added to the input embeddings: wte(b) − wte(a) turns the logits of a into those of b', () => {
  for (const position of ['learned', 'rope'] as const) {
    const model = new GPT({ vocab_size: 13, block_size: 8, n_layer: 2, n_head: 2, n_embd: 8, position }, 3).eval();
    lm.tidy(() => lm.noGrad(() => {
      const a = lm.tensor([1, 4, 2, 8, 5, 7, 3, 0, 9, 10, 6, 2], [2, 6], 'int32');
      const b = lm.tensor([1, 4, 12, 8, 5, 11, 3, 0, 9, 10, 6, 2], [2, 6], 'int32');
      const wte = model.transformer.wte;
      const shift = lm.sub(wte.forward(b), wte.forward(a));
      assertClose(model.forward(a, undefined, { inputFeatures: shift }).logits.toArray(), model.forward(b).logits.toArray(), 1e-5, 1e-5, `${position}: logits`);
      const zero = lm.zeros([2, 6, 8]);
      assert.deepEqual(model.forward(a, undefined, { inputFeatures: zero }).logits.toArray(), model.forward(a).logits.toArray());
      assert.throws(() => model.forward(a, undefined, { inputFeatures: lm.zeros([2, 5, 8]) }), /inputFeatures must be \(2, 6, 8\)/);
      assert.throws(() => model.forward(a, undefined, { inputFeatures: zero, cache: model.newCache(2) }), /not with a cache/);
    }));
    model.dispose();
  }
});
