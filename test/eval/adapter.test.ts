// The GPT adapter: prefix reuse gives the same scores as encoding each choice whole (also when left truncation
// starts choices at different tokens), scores equal a direct log-softmax of the full forward pass, rolling windows
// cover every token once, and greedy generation stops at stop strings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { GPTAdapter, logprobAt, rollingWindows } from '../../src/eval/gpt-adapter.js';
import { encodePair, type TextTokenizer } from '../../src/eval/model.js';
import { GPT } from '../../src/models/gpt.js';

loadNativeBackend();
lm.setThreads(1);

/** Bytes 0..255 as tokens (every string encodes), 256 = end of text. */
const byteTok: TextTokenizer = {
  encode: (t) => [...Buffer.from(t, 'utf8')],
  decode: (ids) => Buffer.from(ids.filter((i) => i < 256)).toString('utf8'),
  prefixToken: 256,
};

function tinyModel(block = 24): GPT {
  return new GPT({ vocab_size: 257, block_size: block, n_layer: 2, n_head: 2, n_embd: 16 }, 7).eval();
}

/** Σ log p(continuation) from one full forward pass over (ctx + cont)[-(L+1):][:-1]: the definition. */
function direct(model: GPT, ctx: number[], cont: number[]): number {
  const L = model.config.block_size;
  const full = [...ctx, ...cont];
  const input = full.slice(-(L + 1)).slice(0, -1);
  return lm.tidy(() => {
    const logits = lm.noGrad(() => model.forward(lm.tensor(input, [1, input.length], 'int32')).logits);
    const V = model.config.vocab_size;
    const flat = logits.toTypedArray();
    let sum = 0;
    cont.forEach((tok, k) => {
      const pos = input.length - cont.length + k;
      sum += logprobAt(flat.slice(pos * V, (pos + 1) * V), tok).logprob;
    });
    return sum;
  });
}

test('encodePair moves trailing spaces of the context to the continuation', () => {
  const p = encodePair(byteTok, 'Answer: ', 'B');
  assert.deepEqual(p.context, [...Buffer.from('Answer:')]);
  assert.deepEqual(p.continuation, [...Buffer.from(' B')]);
});

test('prefix reuse equals whole-sequence scoring and the direct definition, with and without truncation', () => {
  const model = tinyModel(24);
  const requests = [
    // Short: no truncation; choices of different lengths.
    ...['cat', 'a dog', 'elephants!'].map((c) => ({ context: 'The pet is a', continuation: ` ${c}` })),
    // Long: truncated from the left, each choice starting at a different token.
    ...['x', 'yy yy', 'a much longer ending'].map((c) => ({ context: 'Once upon a time there was a long story that goes on', continuation: ` ${c}` })),
    // Empty context: the end-of-text token conditions the sentence.
    { context: '', continuation: 'Hello there.' },
  ];
  const reuse = new GPTAdapter(model, byteTok, { prefixReuse: true }).loglikelihood(requests);
  const whole = new GPTAdapter(model, byteTok, { prefixReuse: false }).loglikelihood(requests);
  requests.forEach((r, i) => {
    const pair = r.context === '' ? { context: [256], continuation: byteTok.encode(r.continuation) } : encodePair(byteTok, r.context, r.continuation);
    const want = direct(model, pair.context, pair.continuation);
    assert.ok(Math.abs(reuse[i]!.logprob - want) < 1e-3, `request ${i}: reuse ${reuse[i]!.logprob} vs ${want}`);
    assert.ok(Math.abs(whole[i]!.logprob - want) < 1e-3, `request ${i}: whole ${whole[i]!.logprob} vs ${want}`);
    assert.equal(reuse[i]!.tokens, pair.continuation.length);
    assert.equal(reuse[i]!.isGreedy, whole[i]!.isGreedy);
  });
  model.dispose();
});

test('rolling windows predict every token exactly once with at most block_size inputs', () => {
  const tokens = Array.from({ length: 23 }, (_, i) => i + 1);
  const windows = rollingWindows(tokens, 0, 8);
  assert.deepEqual(windows.flatMap((w) => w.predict), tokens);
  for (const w of windows) {
    assert.ok(w.input.length <= 8);
    assert.equal(w.input.length >= w.predict.length, true);
  }
  assert.deepEqual(windows[0]!.input, [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(windows[2]!, { input: [15, 16, 17, 18, 19, 20, 21, 22], predict: [17, 18, 19, 20, 21, 22, 23] });
});

test('loglikelihoodRolling equals the sum of per-token scores; short texts match one forward pass', () => {
  const model = tinyModel(16);
  const adapter = new GPTAdapter(model, byteTok);
  const short = 'To be, or not';
  const [r] = adapter.loglikelihoodRolling([short]);
  assert.ok(Math.abs(r!.logprob - direct(model, [256], byteTok.encode(short))) < 1e-3);
  assert.equal(r!.tokens, short.length);
  const long = 'To be, or not to be, that is the question: whether tis nobler in the mind to suffer';
  const [l] = adapter.loglikelihoodRolling([long]);
  const toks = byteTok.encode(long);
  let want = 0;
  for (const w of rollingWindows(toks, 256, 16)) want += direct(model, w.input.slice(0, w.input.length - w.predict.length + 1), w.predict);
  assert.ok(Math.abs(l!.logprob - want) < 1e-3, `${l!.logprob} vs ${want}`);
  model.dispose();
});

test('generateUntil is greedy through the cache and cuts at the first stop string', () => {
  const model = tinyModel(32);
  const adapter = new GPTAdapter(model, byteTok);
  const [free] = adapter.generateUntil([{ context: 'Q: hi\nA:', stop: [], maxTokens: 6 }]);
  // Greedy by definition: each byte is the argmax of a full forward pass over what came before.
  let ctx = byteTok.encode('Q: hi\nA:');
  const greedy: number[] = [];
  for (let i = 0; i < 6; i++) {
    const next = lm.tidy(() => {
      const logits = lm.noGrad(() => model.forward(lm.tensor(ctx, [1, ctx.length], 'int32')).logits);
      const row = lm.slice(logits, 1, ctx.length - 1, ctx.length).toArray();
      return row.indexOf(Math.max(...row));
    });
    if (next === 256) break;
    greedy.push(next);
    ctx = [...ctx, next];
  }
  assert.equal(free, byteTok.decode(greedy));
  if (free!.length > 1) {
    const stop = free![1]!;
    const [cut] = adapter.generateUntil([{ context: 'Q: hi\nA:', stop: [stop], maxTokens: 6 }]);
    assert.equal(cut, free!.slice(0, free!.indexOf(stop)));
  }
  model.dispose();
});

test('loglikelihoodShared equals loglikelihood on continuations sharing prefixes (and those needing truncation)', () => {
  const model = tinyModel(64);
  const adapter = new GPTAdapter(model, byteTok);
  const context = 'Bob met Ann.\nQ: who?\nA:';
  // Word spans and their prefixes in scrambled order, a repeat, and one too long for the block (falls back).
  const continuations = [' met Ann\n', ' Bob\n', ' Bob met Ann\n', ' Ann\n', ' Bob met\n', ' met\n', ' Bob\n', ' x'.repeat(25)];
  const shared = adapter.loglikelihoodShared(context, continuations);
  const plain = adapter.loglikelihood(continuations.map((continuation) => ({ context, continuation })));
  shared.forEach((r, i) => {
    assert.ok(Math.abs(r.logprob - plain[i]!.logprob) < 1e-4, `${JSON.stringify(continuations[i])}: ${r.logprob} vs ${plain[i]!.logprob}`);
    assert.equal(r.tokens, plain[i]!.tokens);
  });
});
