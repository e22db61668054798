// Batched generation: the KV cache with a length per row gives the logits of a full forward pass; 4 prompts of
// different lengths generate together exactly what each generates alone (greedy and sampled, through the context
// slide); the returned log-probabilities are those of a full forward pass; the logits processors do their job.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import { GPT } from '../../src/models/gpt.js';
import { loadGPT } from '../../src/models/gpt-io.js';
import { generate } from '../../src/serve/generate.js';
import { logSoftmaxAt, repetitionPenalty, sampleFrom, samplingProcessors, topK, topP } from '../../src/serve/logits.js';
import { loadAnyTokenizer } from '../../src/tokenizers/load-any.js';
import { assertClose } from '../core/harness.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixtures = `${root}test/fixtures/eval`;

/** The fixture model (2 layers, BPE-512, trained on Shakespeare) and four prompts of 3 to 40 tokens from real text. */
function realModelAndPrompts(): { model: GPT; prompts: number[][] } {
  const model = loadGPT(`${fixtures}/model`);
  const tok = loadAnyTokenizer(`${fixtures}/tokenizer-bpe512.json`);
  const text = readFileSync(`${root}../shared/data/tinyshakespeare/input.txt`, 'utf8').slice(0, 4000);
  const ids = tok.encode(text);
  const prompts = [[...ids.slice(0, 3)], [...ids.slice(100, 140)], [...ids.slice(300, 317)], [...ids.slice(500, 509)]];
  return { model, prompts };
}

/** log p(token) of each generated token from one forward pass over prompt + generation. */
function fullPassLogprobs(model: GPT, prompt: number[], gen: number[]): number[] {
  const seq = [...prompt, ...gen];
  return lm.tidy(() => lm.noGrad(() => {
    const logits = model.eval().forward(lm.tensor(seq.slice(0, -1), [1, seq.length - 1], 'int32')).logits.toTypedArray() as Float32Array;
    const V = model.config.vocab_size;
    return gen.map((t, i) => logSoftmaxAt(logits.subarray((prompt.length - 1 + i) * V, (prompt.length + i) * V), t));
  }));
}

for (const position of ['learned', 'rope'] as const) {
  test(`KV-cache logits equal full-context logits, single and ragged batch (${position} positions)`, () => {
    const model = new GPT({ vocab_size: 13, block_size: 12, n_layer: 2, n_head: 2, n_embd: 8, position, bias: position === 'learned' }).eval();
    const seq = [3, 1, 4, 1, 5, 9, 2, 6];
    const full = (t: number): number[] => lm.tidy(() => lm.noGrad(() => {
      const l = model.forward(lm.tensor(seq.slice(0, t), [1, t], 'int32')).logits;
      return lm.slice(l, 1, t - 1, t).toArray();
    }));
    const cache = model.newCache(1);
    lm.tidy(() => {
      let cached = model.forwardCached(lm.tensor(seq.slice(0, 3), [1, 3], 'int32'), cache).toArray();
      for (let t = 3; t <= seq.length; t++) {
        assertClose(cached, full(t), 1e-4, 1e-5, `position ${t}`);
        if (t < seq.length) cached = model.forwardCached(lm.tensor([seq[t]!], [1, 1], 'int32'), cache).toArray();
      }
    });
    cache.dispose();
    // Three rows at different lengths (2, 5, 3 tokens of seq) fed as one padded (3, 5) pass, then one token each.
    const lens = [2, 5, 3];
    const batch = model.newCache(3);
    lm.tidy(() => {
      const idx = lens.flatMap((n) => [...seq.slice(0, n), ...new Array<number>(5 - n).fill(0)]);
      const first = model.forward(lm.tensor(idx, [3, 5], 'int32'), undefined, { cache: batch, counts: lens, last: 1 }).logits.toArray();
      lens.forEach((n, b) => assertClose(first.slice(b * 13, (b + 1) * 13), full(n), 1e-4, 1e-5, `row ${b} prefill`));
      assert.deepEqual(batch.lengths, lens);
      const next = model.forward(lm.tensor(lens.map((n) => seq[n]!), [3, 1], 'int32'), undefined, { cache: batch, last: 1 }).logits.toArray();
      lens.forEach((n, b) => assertClose(next.slice(b * 13, (b + 1) * 13), full(n + 1), 1e-4, 1e-5, `row ${b} step`));
    });
    batch.dispose();
    model.dispose();
  });
}

test('4 prompts of different lengths generate together exactly what each generates alone; logprobs equal a full pass', () => {
  const { model, prompts } = realModelAndPrompts();
  for (const greedy of [true, false]) {
    const options = { maxNewTokens: 24, greedy, processors: greedy ? [] : samplingProcessors({ temperature: 0.9, topK: 50 }), seed: 7 };
    const together = generate(model, prompts, options);
    prompts.forEach((p, b) => {
      // Row b of a batch draws from Rng(seed + b): alone, it is row 0 of a batch seeded seed + b.
      const [alone] = generate(model, [p], { ...options, seed: 7 + b });
      assert.deepEqual(together[b]!.tokens, alone!.tokens, `${greedy ? 'greedy' : 'sampled'} row ${b}`);
      assert.equal(together[b]!.tokens.length, 24);
      assertClose(together[b]!.logprobs, alone!.logprobs, 1e-4, 1e-5, `row ${b} logprobs batched vs alone`);
      assertClose(together[b]!.logprobs, fullPassLogprobs(model, p, together[b]!.tokens), 1e-4, 1e-5, `row ${b} logprobs vs a full forward pass`);
    });
  }
  model.dispose();
});

test('rows that outgrow block_size slide their context, in a batch as alone; onFull stop ends them', () => {
  const model = new GPT({ vocab_size: 17, block_size: 8, n_layer: 1, n_head: 2, n_embd: 8 });
  const prompts = [[1, 2], [3, 4, 5, 6, 7], [9]];
  const opts = { maxNewTokens: 20, greedy: false, processors: samplingProcessors({ temperature: 1 }), seed: 3 };
  const together = generate(model, prompts, opts);
  prompts.forEach((p, b) => assert.deepEqual(together[b]!.tokens, generate(model, [p], { ...opts, seed: 3 + b })[0]!.tokens, `row ${b}`));
  assert.deepEqual(generate(model, prompts, opts).map((g) => g.tokens), together.map((g) => g.tokens), 'deterministic per seed');
  const stopped = generate(model, prompts, { ...opts, onFull: 'stop' });
  stopped.forEach((g, b) => {
    assert.equal(g.finishReason, 'context');
    // The pass that fills the 8-token context still predicts one token after it.
    assert.equal(prompts[b]!.length + g.tokens.length, 9);
  });
  model.dispose();
});

test('stop tokens and stop strings end a row; the others go on', () => {
  const model = new GPT({ vocab_size: 17, block_size: 32, n_layer: 1, n_head: 2, n_embd: 8 });
  const free = generate(model, [[1], [2]], { maxNewTokens: 12, greedy: true });
  const stopTok = free[0]!.tokens[3]!;
  const first = free[0]!.tokens.indexOf(stopTok);
  const r = generate(model, [[1], [2]], { maxNewTokens: 12, greedy: true, stopTokens: [stopTok] });
  assert.deepEqual(r[0]!.tokens, free[0]!.tokens.slice(0, first + 1));
  assert.equal(r[0]!.finishReason, 'stop');
  const decode = (ids: readonly number[]): string => ids.map((i) => String.fromCharCode(97 + i)).join('');
  const s = generate(model, [[1]], { maxNewTokens: 12, greedy: true, stopStrings: { strings: [decode(free[0]!.tokens.slice(2, 4))], decode } });
  assert.equal(s[0]!.finishReason, 'stop');
  assert.ok(decode(s[0]!.tokens).includes(decode(free[0]!.tokens.slice(2, 4))));
  assert.ok(s[0]!.tokens.length <= 4);
  model.dispose();
});

test('logits processors: top-k and top-p restrict the candidates, the repetition penalty lowers seen tokens', () => {
  const rng = new lm.Rng(3);
  const row = { tokens: [], promptLength: 0 };
  for (let i = 0; i < 200; i++) {
    const a = Float32Array.from([0, 5, 4, 1, 3]);
    topK(2)(a, row);
    assert.ok([1, 2].includes(sampleFrom(a, rng)));
    const b = Float32Array.from([0, 5, 4, 1, 3]);
    topP(0.5)(b, row);
    assert.equal(sampleFrom(b, rng), 1);
  }
  const c = Float32Array.from([2, -2, 1]);
  repetitionPenalty(2)(c, { tokens: [0, 1], promptLength: 2 });
  assert.deepEqual([...c], [1, -4, 1]);
});
