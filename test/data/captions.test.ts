// Captions for CLIP: the zero-shot prompts stay held out (no training caption of any image equals one), and every
// training caption fits the CLIP recipes' text context, so that the class word at the end is never cut off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CLASS_ATTRIBUTES, FASHION_NAMES, fill, TEXT_CHARS, TRAIN_TEMPLATES, trainCaption, ZERO_SHOT_TEMPLATES, zeroShotPrompts } from '../../src/data/captions.js';
import type { ImageSet } from '../../src/data/images.js';
import { Rng } from '../../src/core/random.js';

/** Ten 4×4 images, one per class, with varied ink so that tones and sizes vary. */
function tinySet(): ImageSet {
  const rng = new Rng(5);
  const images = Uint8Array.from({ length: 10 * 16 }, () => rng.int(256));
  return { images, labels: Int32Array.from({ length: 10 }, (_, i) => i), n: 10, height: 4, width: 4, channels: 1, classNames: FASHION_NAMES.map((n) => n[0]!) };
}

test('captions: zero-shot templates are not training templates, and no drawn training caption is a zero-shot prompt', () => {
  for (const t of ZERO_SHOT_TEMPLATES) assert.ok(!TRAIN_TEMPLATES.includes(t), `${t} is also a training template`);
  const prompts = new Set(FASHION_NAMES.flatMap((_, k) => zeroShotPrompts(k)));
  assert.equal(prompts.size, ZERO_SHOT_TEMPLATES.length * FASHION_NAMES.length);
  const set = tinySet();
  const rng = new Rng(9);
  const seen = new Set<string>();
  for (let draw = 0; draw < 20000; draw++) {
    const caption = trainCaption(set, draw % set.n, () => rng.uniform());
    assert.ok(!prompts.has(caption), `training caption ${JSON.stringify(caption)} is a held-out zero-shot prompt`);
    seen.add(caption);
  }
  // The draws reach many sentence shapes, not a few.
  assert.ok(seen.size > 500, `${seen.size} distinct captions`);
});

test('captions: the longest training caption fits the CLIP recipes\' context_length with its end-of-text token', () => {
  let longest = '';
  for (const t of TRAIN_TEMPLATES) for (const names of FASHION_NAMES) for (const c of names) for (const attrs of CLASS_ATTRIBUTES) for (const a of attrs) {
    for (const tone of ['dark', 'grey', 'bright']) for (const s of ['small', 'medium', 'large']) {
      const caption = fill(t, { c, a, t: tone, s });
      if (caption.length > longest.length) longest = caption;
      for (const ch of caption) assert.ok(TEXT_CHARS.includes(ch), `${JSON.stringify(ch)} of ${JSON.stringify(caption)}`);
    }
  }
  for (const name of ['clip-fashion-mnist.yaml', 'clip-lit-fashion-mnist.yaml']) {
    const yaml = readFileSync(fileURLToPath(new URL(`../../../configs/vision/${name}`, import.meta.url)), 'utf8');
    const L = Number(/^\s+context_length:\s*(\d+)/m.exec(yaml)?.[1]);
    assert.ok(longest.length <= L - 1, `${name}: context_length ${L} cuts ${JSON.stringify(longest)} (${longest.length} characters)`);
  }
});
