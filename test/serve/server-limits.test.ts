// The server's limits and lifecycle, over a generator the test drives (no model: each sequence emits a token only
// when told, so the timing is the test's): 429 only beyond max-concurrency + max-queue, a timeout gives 504 (or an
// error event on a stream), a client that goes away cancels its sequences, and a graceful close lets in-flight
// requests finish within the grace period, cancels the rest (503) and refuses new connections. Then, with the real
// worker over a wider model: /v1/models answers within milliseconds while a long prefill runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer } from '../../src/cli/serve.js';
import { PLAIN_CHAT_TEMPLATE, textChatFormat } from '../../src/serve/chat-template.js';
import type { DeltaHandler, Generator } from '../../src/serve/engine.js';
import type { SamplingParams } from '../../src/serve/protocol.js';
import { OpenAIServer, type ServedModel, type ServerOptions } from '../../src/serve/server.js';
import { makeRun } from './run-fixture.js';

/** A generator whose sequences emit 'x' per tick() and finish after their max_tokens (or when cancelled). */
class ManualGenerator implements Generator {
  readonly info = { model: 'manual', blockSize: 64, vocabSize: 256, parameters: 0, slots: 2 };
  readonly live = new Map<string, { left: number; emit: DeltaHandler }>();
  cancelled = 0;
  private next = 0;

  start(_prompt: number[], params: SamplingParams, onDelta: DeltaHandler): { id: string; cancel(): void } {
    const id = `m${this.next++}`;
    this.live.set(id, { left: params.maxTokens, emit: onDelta });
    return {
      id, cancel: () => {
        const s = this.live.get(id);
        if (!s) return;
        this.live.delete(id);
        this.cancelled++;
        setImmediate(() => s.emit({ id, text: '', tokens: 0, finish: 'cancelled' }));
      },
    };
  }

  tick(): void {
    for (const [id, s] of this.live) {
      s.left--;
      if (s.left <= 0) this.live.delete(id);
      s.emit({ id, text: 'x', tokens: 1, ...(s.left <= 0 ? { finish: 'length' as const } : {}) });
    }
  }

  async close(): Promise<void> {}
}

function options(o: Partial<ServerOptions> = {}): ServerOptions {
  return { maxConcurrency: 2, maxQueue: 1, maxTokens: 100, maxBodyBytes: 10_000, timeoutMs: 60_000, ...o };
}

/** The manual generator as the server's one model (bytes as tokens). */
function served(gen: ManualGenerator): ServedModel[] {
  const encode = (t: string): number[] => Array.from(Buffer.from(t));
  return [{ name: 'manual', generator: gen, chat: textChatFormat(PLAIN_CHAT_TEMPLATE, 'plain', encode), encode, decode: (ids) => Buffer.from(ids).toString() }];
}

const until = async (cond: () => boolean, what: string): Promise<void> => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), `timed out waiting for ${what}`);
};

test('429 only beyond max-concurrency + max-queue sequences (n counts each choice); capacity returns when they finish', async () => {
  const gen = new ManualGenerator();
  const server = new OpenAIServer(served(gen), options());
  const { url } = await server.listen(0, '127.0.0.1');
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
  const first = client.completions.create({ model: 'manual', prompt: 'a', max_tokens: 3, n: 2 });
  const second = client.completions.create({ model: 'manual', prompt: 'b', max_tokens: 3 });
  await until(() => gen.live.size === 3, 'three sequences');
  await assert.rejects(client.completions.create({ model: 'manual', prompt: 'c', max_tokens: 3 }), (e: unknown) => e instanceof OpenAI.RateLimitError && e.status === 429);
  const raw = await fetch(`${url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'c' }) });
  assert.equal(raw.status, 429);
  assert.equal(raw.headers.get('retry-after'), '1');
  for (let i = 0; i < 3; i++) gen.tick();
  assert.deepEqual((await first).choices.map((c) => c.text), ['xxx', 'xxx']);
  assert.equal((await second).choices[0]!.text, 'xxx');
  const again = client.completions.create({ model: 'manual', prompt: 'c', max_tokens: 1 });
  await until(() => gen.live.size === 1, 'the retried sequence');
  gen.tick();
  assert.equal((await again).choices[0]!.text, 'x');
  assert.equal((server.stats() as { rejected_429: number }).rejected_429, 2);
  await server.close(100);
});

test('a timeout cancels the sequence: 504 for a whole answer, an error event on a stream; a client that leaves cancels its sequence', async () => {
  const gen = new ManualGenerator();
  const server = new OpenAIServer(served(gen), options({ timeoutMs: 150 }));
  const { url } = await server.listen(0, '127.0.0.1');
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
  await assert.rejects(client.completions.create({ model: 'manual', prompt: 'a', max_tokens: 5 }), (e: unknown) => e instanceof OpenAI.APIError && e.status === 504 && /timeout of 150 ms/.test(e.message));
  const stream = await client.chat.completions.create({ model: 'manual', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, stream: true });
  await assert.rejects(async () => { for await (const _ of stream) { /* no tokens come: the timer fires */ } }, /timeout/);
  assert.equal(gen.cancelled, 2);
  const abort = new AbortController();
  const res = await fetch(`${url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'a', max_tokens: 50, stream: true }), signal: abort.signal });
  assert.equal(res.status, 200);
  await until(() => gen.live.size === 1, 'the streamed sequence');
  abort.abort();
  await until(() => gen.cancelled === 3, 'the cancel after the client left');
  await server.close(100);
});

test('graceful close: in-flight requests finish within the grace period, later ones are cancelled (503), new connections are refused', async () => {
  const gen = new ManualGenerator();
  const server = new OpenAIServer(served(gen), options());
  const { url } = await server.listen(0, '127.0.0.1');
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
  const finishing = client.completions.create({ model: 'manual', prompt: 'a', max_tokens: 2 });
  const stuck = client.completions.create({ model: 'manual', prompt: 'b', max_tokens: 90 });
  await until(() => gen.live.size === 2, 'two sequences');
  const closed = server.close(300);
  gen.tick();
  gen.tick();
  assert.equal((await finishing).choices[0]!.text, 'xx');
  await assert.rejects(stuck, (e: unknown) => e instanceof OpenAI.APIError && e.status === 503);
  await closed;
  await assert.rejects(fetch(`${url}/health`));
});

test('/v1/models answers within milliseconds while the worker runs a long prefill (generation is off the event loop)', async () => {
  const run = makeRun({ n_layer: 4, n_embd: 192, n_head: 4, block_size: 128 });
  const { server, url } = await startServer({
    run, port: 0, host: '127.0.0.1', modelName: 'wide', maxConcurrency: 16, maxQueue: 0, maxTokens: 8, maxBodyBytes: 1 << 20,
    timeoutMs: 60_000, graceMs: 1000, stateDir: run, corsOrigin: '*',
  });
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
  await client.completions.create({ model: 'wide', prompt: 'warm up', max_tokens: 1 }); // loads the kernels' threads
  // 16 choices of a 120-token prompt: one prefill pass over 1,920 tokens, then 4 decode steps.
  const prompt = 'The quick brown fox jumps over the lazy dog, '.repeat(20);
  const t0 = performance.now();
  let first = 0;
  const gen = client.completions.create({ model: 'wide', prompt, max_tokens: 4, n: 16, temperature: 0, stream: true }).then(async (s) => {
    for await (const _ of s) first ||= performance.now() - t0;
    return performance.now() - t0;
  });
  const latencies: number[] = [];
  let finished = false;
  void gen.then(() => (finished = true));
  while (!finished && first === 0) {
    const a = performance.now();
    const list = await client.models.list();
    assert.equal(list.data[0]!.id, 'wide');
    latencies.push(performance.now() - a);
    await new Promise((r) => setTimeout(r, 10));
  }
  const total = await gen;
  await server.close(1000);
  const worst = Math.max(...latencies);
  console.log(`first token after ${first.toFixed(0)} ms (one prefill pass), /v1/models answered ${latencies.length}× meanwhile, worst ${worst.toFixed(1)} ms; all 16×4 tokens in ${total.toFixed(0)} ms`);
  assert.ok(latencies.length >= 3, `expected /v1/models to answer several times during the ${first.toFixed(0)} ms prefill, got ${latencies.length}`);
  assert.ok(worst < first / 3, `the worst /v1/models latency ${worst.toFixed(1)} ms must be well under the prefill's ${first.toFixed(0)} ms`);
});
