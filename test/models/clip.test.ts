// CLIP: the symmetric InfoNCE with the clamped logit scale against an independent PyTorch computation
// (test/reference/clip_loss_reference.py: loss and gradients of the raw features and of logit_scale, below and above
// the clamp); the model's initial scale, text codec, zero-shot classifier and a training step of the whole model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { CLIP_DEFAULTS, CLIPModel, clampedScale, clipLoss, l2Normalize, TextCodec } from '../../src/models/clip.js';
import { TEXT_CHARS } from '../../src/data/captions.js';
import { VIT_DEFAULTS } from '../../src/models/vit.js';
import { assertClose } from '../core/harness.js';

interface Case { B: number; E: number; img: number[]; txt: number[]; logit_scale: number; loss: number; grad_img: number[]; grad_txt: number[]; grad_scale: number }
const fixture = JSON.parse(readFileSync(fileURLToPath(new URL('../../../test/fixtures/clip-loss.json', import.meta.url)), 'utf8')) as { cases: Case[] };
const backends: lm.BackendName[] = loadNativeBackend().loaded ? ['reference', 'native'] : ['reference'];

for (const backend of backends) {
  test(`CLIP loss (${backend}): symmetric InfoNCE, its gradients and the clamp at 100 match PyTorch`, () => lm.withBackend(backend, () => {
    for (const c of fixture.cases) {
      lm.tidy(() => {
        const img = lm.requireGrad(lm.tensor(c.img, [c.B, c.E]));
        const txt = lm.requireGrad(lm.tensor(c.txt, [c.B, c.E]));
        const s = lm.requireGrad(lm.tensor([c.logit_scale], [1]));
        const { loss } = clipLoss(l2Normalize(img), l2Normalize(txt), clampedScale(s, 100));
        assertClose([loss.item()], [c.loss], 1e-5, 1e-6, 'loss');
        lm.backward(loss);
        assertClose(img.grad!.toArray(), c.grad_img, 1e-4, 1e-6, 'grad img');
        assertClose(txt.grad!.toArray(), c.grad_txt, 1e-4, 1e-6, 'grad txt');
        assertClose([s.grad!.item()], [c.grad_scale], 1e-4, 1e-6, 'grad logit_scale');
      });
    }
  }));
}

const vision = { ...VIT_DEFAULTS, image_size: 8, patch_size: 4, n_layer: 1, n_head: 2, n_embd: 16 };
const clipCfg = { ...CLIP_DEFAULTS, embed_dim: 8, text_width: 16, text_layers: 1, text_heads: 2, context_length: 16 };

test('CLIP: logit scale starts at 1/0.07, the codec pads with end-of-text, and a training step lowers the loss', () => {
  const model = new CLIPModel(vision, clipCfg, TEXT_CHARS, 3);
  assert.ok(Math.abs(model.scale().item() - 1 / 0.07) < 1e-3);
  const codec = new TextCodec(['a', 'b'], 4);
  const { ids, eot } = codec.batch(['ab', 'babab']);
  assert.deepEqual(Array.from(ids), [0, 1, 2, 2, 1, 0, 1, 2]);
  assert.deepEqual(Array.from(eot), [2, 3]);
  assert.equal(codec.decode([0, 1, 2, 0]), 'ab');
  assert.throws(() => codec.encode('abc'), /"c" at position 2/);
  const rng = new lm.Rng(1);
  const images = lm.keep(lm.randn([4, 1, 8, 8], rng));
  const texts = ['a photo of a bag.', 'a dark coat.', 'one dress.', 'a sneaker.'];
  const params = model.parameters();
  const losses: number[] = [];
  for (let step = 0; step < 3; step++) {
    losses.push(lm.tidy(() => {
      const { loss } = model.forward(images, texts);
      lm.backward(loss);
      return loss.item();
    }));
    for (const p of params) {
      if (!p.grad) continue;
      const d = p.data, g = p.grad.data;
      for (let i = 0; i < p.size; i++) d[p.offset + i] = d[p.offset + i]! - 0.05 * g[p.grad.offset + i]!;
      p.grad.dispose();
      p.grad = null;
    }
  }
  assert.ok(losses[2]! < losses[0]!, `losses ${losses.join(', ')}`);
  // Zero-shot classifier: one unit row per class.
  lm.tidy(() => {
    const w = model.zeroShotClassifier([['a bag.', 'one bag.'], ['a coat.']]);
    assert.deepEqual(w.shape, [2, 8]);
    const norms = lm.sum(lm.square(w), 1).toArray();
    assertClose(norms, [1, 1], 1e-5, 1e-6, 'unit rows');
  });
  images.dispose();
  model.dispose();
});
