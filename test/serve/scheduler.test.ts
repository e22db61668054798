// Continuous batching: sequences that join a running batch at different steps, wait for a slot, slide at
// block_size or get cancelled generate what each generates alone through generate.ts (greedy and sampled, same
// tokens, log-probabilities equal to float rounding); the KV cache's row view and row copy keep the rows' contents.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import { GPT } from '../../src/models/gpt.js';
import { loadGPT } from '../../src/models/gpt-io.js';
import { generate } from '../../src/serve/generate.js';
import { samplingProcessors } from '../../src/serve/logits.js';
import { ContinuousBatcher, type SequenceRequest, type TokenEvent } from '../../src/serve/scheduler.js';
import { loadAnyTokenizer } from '../../src/tokenizers/load-any.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixtures = `${root}test/fixtures/eval`;

function realModelAndPrompts(): { model: GPT; prompts: number[][] } {
  const model = loadGPT(`${fixtures}/model`);
  const tok = loadAnyTokenizer(`${fixtures}/tokenizer-bpe512.json`);
  const ids = tok.encode(readFileSync(`${root}../shared/data/tinyshakespeare/input.txt`, 'utf8').slice(0, 4000));
  return { model, prompts: [[...ids.slice(0, 3)], [...ids.slice(100, 140)], [...ids.slice(300, 317)], [...ids.slice(500, 509)]] };
}

/** Runs the batcher, adding request i before step joinAt[i]; returns each id's tokens, logprobs and finish. */
function runBatcher(b: ContinuousBatcher, reqs: SequenceRequest[], joinAt: number[]): Map<string, { tokens: number[]; logprobs: number[]; finish?: string }> {
  const out = new Map(reqs.map((r) => [r.id, { tokens: [] as number[], logprobs: [] as number[], finish: undefined as string | undefined }]));
  let step = 0;
  const events: TokenEvent[] = [];
  while (step === 0 || b.busy || reqs.some((_, i) => joinAt[i]! >= step)) {
    reqs.forEach((r, i) => { if (joinAt[i] === step) b.add(r); });
    events.push(...b.step());
    step++;
    assert.ok(step < 2000, 'the batcher did not finish');
  }
  for (const e of events) {
    const o = out.get(e.id)!;
    assert.equal(o.finish, undefined, `${e.id}: event after its finish`);
    if (e.token !== undefined) { o.tokens.push(e.token); o.logprobs.push(e.logprob!); }
    o.finish = e.finish;
  }
  return out;
}

for (const greedy of [true, false]) {
  test(`sequences joining a running batch generate what each generates alone (${greedy ? 'greedy' : 'sampled'}, slide at block_size)`, () => {
    const { model, prompts } = realModelAndPrompts();
    const news = [30, 110, 12, 25]; // prompt 1: 40 + 110 > 128 slides
    const processors = greedy ? [] : samplingProcessors({ temperature: 0.9, topK: 40 });
    const reqs = prompts.map((p, i): SequenceRequest => ({ id: `r${i}`, prompt: p, maxNewTokens: news[i]!, greedy, processors, seed: 7 + i }));
    const b = new ContinuousBatcher(model, { slots: 3 });
    const got = runBatcher(b, reqs, [0, 0, 4, 9]);
    b.dispose();
    prompts.forEach((p, i) => {
      const [alone] = generate(model, [p], { maxNewTokens: news[i]!, greedy, processors, seed: 7 + i });
      const g = got.get(`r${i}`)!;
      assert.deepEqual(g.tokens, alone!.tokens, `row ${i} tokens`);
      assert.equal(g.finish, 'length');
      g.logprobs.forEach((lp, t) => assert.ok(Math.abs(lp - alone!.logprobs[t]!) < 1e-4, `row ${i} logprob ${t}: ${lp} vs ${alone!.logprobs[t]}`));
    });
    model.dispose();
  });
}

test('stop tokens, stop strings, cancel and context-full stop end their rows; the others continue unchanged', () => {
  const { model, prompts } = realModelAndPrompts();
  const [ref] = generate(model, [prompts[0]!], { maxNewTokens: 20, greedy: true });
  const stopAt = ref!.tokens[5]!;
  const tok = loadAnyTokenizer(`${fixtures}/tokenizer-bpe512.json`);
  const b = new ContinuousBatcher(model, { slots: 4, decode: (ids) => tok.decode(ids) });
  const reqs: SequenceRequest[] = [
    { id: 'stoptok', prompt: prompts[0]!, maxNewTokens: 20, greedy: true, seed: 0, stopTokens: [stopAt] },
    { id: 'stopstr', prompt: prompts[0]!, maxNewTokens: 20, greedy: true, seed: 0, stopStrings: [tok.decode(ref!.tokens.slice(3, 5))] },
    { id: 'full', prompt: prompts[1]!, maxNewTokens: 200, greedy: true, seed: 0, onFull: 'stop' },
    { id: 'plain', prompt: prompts[2]!, maxNewTokens: 15, greedy: true, seed: 0 },
    { id: 'cancelled', prompt: prompts[3]!, maxNewTokens: 50, greedy: true, seed: 0 },
  ];
  reqs.forEach((r) => b.add(r));
  const got = new Map<string, { tokens: number[]; finish?: string }>(reqs.map((r) => [r.id, { tokens: [] }]));
  for (let s = 0; b.busy; s++) {
    if (s === 3) assert.equal(b.cancel('cancelled'), true);
    for (const e of b.step()) {
      const o = got.get(e.id)!;
      if (e.token !== undefined) o.tokens.push(e.token);
      if (e.finish) o.finish = e.finish;
    }
  }
  b.dispose();
  assert.deepEqual(got.get('stoptok'), { tokens: ref!.tokens.slice(0, ref!.tokens.indexOf(stopAt) + 1), finish: 'stop' });
  assert.equal(got.get('stopstr')!.finish, 'stop');
  assert.ok(got.get('stopstr')!.tokens.length <= 5);
  assert.equal(got.get('full')!.finish, 'context');
  assert.equal(prompts[1]!.length + got.get('full')!.tokens.length, model.config.block_size + 1); // the last token is chosen, never fed
  assert.deepEqual(got.get('plain')!.tokens, generate(model, [prompts[2]!], { maxNewTokens: 15, greedy: true })[0]!.tokens);
  assert.equal(got.get('cancelled')!.finish, 'cancelled');
  model.dispose();
});

test('KVCache row view writes into its rows; copyRow moves a row with its length', () => {
  const model = new GPT({ vocab_size: 11, block_size: 8, n_layer: 1, n_head: 2, n_embd: 8 }).eval();
  const cache = model.newCache(3);
  const view = cache.rows(2);
  lm.tidy(() => model.forward(lm.tensor([1, 2, 3, 4, 5, 6], [2, 3], 'int32'), undefined, { cache: view, last: 1 }));
  assert.deepEqual(view.lengths, [3, 3]);
  const row = (c: typeof cache, b: number): number[] => lm.slice(lm.slice(c.k[0]!, 0, b, b + 1), 2, 0, 3).toArray();
  assert.notDeepEqual(row(cache, 1), new Array(2 * 3 * 4).fill(0));
  cache.lengths[1] = 3;
  cache.copyRow(cache, 1, 2);
  assert.equal(cache.lengths[2], 3);
  assert.deepEqual(row(cache, 2), row(cache, 1));
  view.dispose();
  assert.throws(() => cache.rows(4), /expected 1\.\.3/);
  cache.dispose();
  model.dispose();
});
