// The image-conditioned decoders: Flamingo's tanh gates start at zero, so the cross variant is a pure language model
// at initialisation (its logits ignore the image) and the gates get gradients; the prefix variant sees the image from
// the start; answers are scored on their characters only; generation stops at end-of-text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import { TEXT_CHARS } from '../../src/data/captions.js';
import { DECODER_DEFAULTS, ImageTextDecoder } from '../../src/models/caption.js';
import { VIT_DEFAULTS } from '../../src/models/vit.js';
import { answerSequence } from '../../src/train/tasks/caption.js';
import { assertClose } from '../core/harness.js';

const vision = { ...VIT_DEFAULTS, image_size: 8, patch_size: 4, n_layer: 1, n_head: 2, n_embd: 16 };
const decoder = { ...DECODER_DEFAULTS, n_layer: 2, n_head: 2, n_embd: 16, context_length: 12 };

function logitsFor(model: ImageTextDecoder, seed: number): number[] {
  return lm.tidy(() => {
    const images = lm.randn([2, 1, 8, 8], new lm.Rng(seed));
    const ids = lm.fromArray(Int32Array.from({ length: 2 * 5 }, (_, i) => i % 7), [2, 5]);
    return model.logits(ids, model.imageTokens(images)).toArray();
  });
}

test('decoder (cross): zero tanh gates make the initial model ignore the image; the gates receive gradients', () => {
  const model = new ImageTextDecoder(vision, { ...decoder, variant: 'cross' }, TEXT_CHARS, 1);
  assertClose(logitsFor(model, 1), logitsFor(model, 2), 0, 0, 'logits with two different images');
  lm.tidy(() => {
    const images = lm.randn([2, 1, 8, 8], new lm.Rng(3));
    const ids = lm.fromArray(Int32Array.from({ length: 2 * 12 }, (_, i) => i % 7), [2, 12]);
    lm.backward(model.forward(images, ids, ids));
  });
  const gate = model.gated_xattn!.items[0]!.attn_gate;
  assert.ok(gate.grad && Math.abs(gate.grad.item()) > 0, 'attn_gate has a gradient');
  model.dispose();
});

test('decoder (prefix): the projected image tokens change the logits from the start', () => {
  const model = new ImageTextDecoder(vision, { ...decoder, variant: 'prefix' }, TEXT_CHARS, 1);
  const a = logitsFor(model, 1), b = logitsFor(model, 2);
  assert.ok(a.some((v, i) => Math.abs(v - b[i]!) > 1e-6));
  assert.equal(model.prefixLength, 5);
  model.dispose();
});

test('decoder: only the answer and end-of-text are targets; generation returns at most the characters asked for', () => {
  const model = new ImageTextDecoder(vision, { ...decoder, variant: 'cross' }, TEXT_CHARS, 1);
  const T = 12;
  const ids = new Int32Array(T), targets = new Int32Array(T);
  answerSequence(model, 'q?', 'ab', T, ids, targets, 0);
  const c = (s: string): number => model.codec.encode(s)[0]!;
  // Sequence "q? ab<eot>": inputs q ? ␠ a b, targets at positions 2.. are a, b, <eot>.
  assert.deepEqual(Array.from(ids.subarray(0, 5)), [c('q'), c('?'), c(' '), c('a'), c('b')]);
  assert.deepEqual(Array.from(targets.subarray(0, 6)), [-100, -100, c('a'), c('b'), model.codec.eot, -100]);
  const out = lm.tidy(() => model.generate(lm.randn([3, 1, 8, 8], new lm.Rng(4)), 'q? ', 4));
  assert.equal(out.length, 3);
  for (const s of out) assert.ok(s.length <= 4);
  model.dispose();
});
