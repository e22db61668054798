// GPT with sliding-window (local) attention layers (attention_window, local_layers): KV-cache decoding equals the
// full forward pass (single sequence, chunks at a cache offset, a ragged batch), a window ≥ T is exactly the dense
// model, a token's influence stops after n_layer·(window − 1) positions, and bad settings fail validation.
// Not a kernel test (test/core/native-attention.test.ts, test/core/local-attention.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import { GPT, type GPTConfig } from '../../src/models/gpt.js';
import { assertClose } from '../core/harness.js';

const V = 13;
const SEQ = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7];

function model(extra: Partial<GPTConfig>): GPT {
  return new GPT({ vocab_size: V, block_size: 16, n_layer: 2, n_head: 2, n_embd: 8, ...extra }).eval();
}

/** Logits (V) of the last position of SEQ[0, t) from one full forward pass. */
function fullLast(m: GPT, t: number): number[] {
  return lm.tidy(() => lm.noGrad(() => lm.slice(m.forward(lm.tensor(SEQ.slice(0, t), [1, t], 'int32')).logits, 1, t - 1, t).toArray()));
}

for (const [label, extra] of [
  ['every layer local, window 3, learned positions', { attention_window: 3 }],
  ['layer 1 local, window 4, RoPE', { attention_window: 4, local_layers: '1', position: 'rope' as const, bias: false }],
  ['window 1 (each token sees only itself)', { attention_window: 1, local_layers: '0,1' }],
] as const) {
  test(`local attention: KV-cache logits equal full-context logits, single, chunked and ragged (${label})`, () => {
    const m = model(extra);
    const cache = m.newCache(1);
    lm.tidy(() => {
      // Prefill 3 tokens, then one token at a time, then a 4-token chunk at a cache offset, then one more.
      let cached = m.forwardCached(lm.tensor(SEQ.slice(0, 3), [1, 3], 'int32'), cache).toArray();
      assertClose(cached, fullLast(m, 3), 1e-4, 1e-5, 'prefill');
      for (let t = 3; t < 8; t++) {
        cached = m.forwardCached(lm.tensor([SEQ[t]!], [1, 1], 'int32'), cache).toArray();
        assertClose(cached, fullLast(m, t + 1), 1e-4, 1e-5, `position ${t}`);
      }
      const chunk = m.forwardCachedLast(lm.tensor(SEQ.slice(8, 12), [1, 4], 'int32'), cache, 4).toArray();
      for (let i = 0; i < 4; i++) assertClose(chunk.slice(i * V, (i + 1) * V), fullLast(m, 9 + i), 1e-4, 1e-5, `chunk row ${i}`);
      cached = m.forwardCached(lm.tensor([SEQ[12]!], [1, 1], 'int32'), cache).toArray();
      assertClose(cached, fullLast(m, 13), 1e-4, 1e-5, 'after the chunk');
    });
    cache.dispose();
    // Ragged: rows of 2, 9 and 5 tokens as one padded (3, 9) pass, then two steps of one token each.
    const lens = [2, 9, 5];
    const batch = m.newCache(3);
    lm.tidy(() => {
      const idx = lens.flatMap((n) => [...SEQ.slice(0, n), ...new Array<number>(9 - n).fill(0)]);
      const first = m.forward(lm.tensor(idx, [3, 9], 'int32'), undefined, { cache: batch, counts: lens, last: 1 }).logits.toArray();
      lens.forEach((n, b) => assertClose(first.slice(b * V, (b + 1) * V), fullLast(m, n), 1e-4, 1e-5, `row ${b} prefill`));
      for (let step = 0; step < 2; step++) {
        const next = m.forward(lm.tensor(lens.map((n) => SEQ[n + step]!), [3, 1], 'int32'), undefined, { cache: batch, last: 1 }).logits.toArray();
        lens.forEach((n, b) => assertClose(next.slice(b * V, (b + 1) * V), fullLast(m, n + step + 1), 1e-4, 1e-5, `row ${b} step ${step}`));
      }
    });
    batch.dispose();
    m.dispose();
  });
}

test('local attention with a window ≥ T computes exactly what the dense model does (logits, loss, gradients)', () => {
  const idx = lm.keep(lm.tensor(SEQ.slice(0, 12), [1, 12], 'int32'));
  const targets = lm.keep(lm.tensor(SEQ.slice(1, 13), [1, 12], 'int32'));
  const run = (extra: Partial<GPTConfig>): number[][] => {
    const m = model(extra).train();
    const r = lm.tidy(() => {
      const out = m.forward(idx, targets);
      lm.backward(out.loss!);
      return [out.logits.toArray() as number[], [out.loss!.item()], ...m.parameters().map((p) => p.grad!.toArray() as number[])];
    });
    m.dispose();
    return r;
  };
  const dense = run({});
  assert.deepEqual(run({ attention_window: 12 }), dense);
  assert.deepEqual(run({ attention_window: 16, local_layers: '0' }), dense);
  assert.deepEqual(run({ attention_window: 3, local_layers: '' }), dense, "local_layers '' is dense");
  assert.notDeepEqual(run({ attention_window: 11 })[0], dense[0]);
  idx.dispose();
  targets.dispose();
});

test('a token reaches at most n_layer·(window − 1) positions ahead in a local model', () => {
  const m = model({ attention_window: 3 });
  const logits = (seq: number[]): number[][] => lm.tidy(() => lm.noGrad(() => {
    const flat = m.forward(lm.tensor(seq, [1, seq.length], 'int32')).logits.toArray() as number[];
    return Array.from({ length: seq.length }, (_, t) => flat.slice(t * V, (t + 1) * V));
  }));
  const base = logits(SEQ);
  const changed = logits([12, ...SEQ.slice(1)]);
  // 2 layers × (3 − 1): position 0 reaches positions 0..4 and no further.
  for (let t = 0; t < SEQ.length; t++) {
    if (t <= 4) assert.notDeepEqual(changed[t], base[t], `position ${t} is within reach`);
    else assert.deepEqual(changed[t], base[t], `position ${t} is out of reach`);
  }
  m.dispose();
});

test('bad attention_window or local_layers fail validation with the field named', () => {
  assert.throws(() => model({ attention_window: -1 }), /attention_window = -1, expected an integer ≥ 0/);
  assert.throws(() => model({ attention_window: 2.5 }), /attention_window/);
  for (const bad of ['2', '0,0', 'x', '1,', '-1']) {
    assert.throws(() => model({ attention_window: 4, local_layers: bad }), (e: unknown) => e instanceof RangeError && /local_layers/.test(e.message), bad);
  }
});
