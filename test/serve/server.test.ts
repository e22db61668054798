// `lmforge serve` against the real `openai` npm client on an ephemeral loopback port, over the trained fixture
// model in a run directory built here: list and retrieve models, complete and chat (plain and streamed, the
// streamed text equal to the whole answer and to generate.ts's greedy tokens), n and seeds, stop strings, usage,
// feedback; and the errors a client meets: 401, 400 naming the field, 404 model, max_tokens over the limit,
// 413 body, invalid JSON, CORS preflight.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { startServer } from '../../src/cli/serve.js';
import { loadGPT } from '../../src/models/gpt-io.js';
import { generate } from '../../src/serve/generate.js';
import { PLAIN_CHAT_TEMPLATE, renderChat } from '../../src/serve/chat-template.js';
import type { OpenAIServer } from '../../src/serve/server.js';
import { loadAnyTokenizer } from '../../src/tokenizers/load-any.js';
import { fixtures, makeRun, TOKENIZER } from './run-fixture.js';

loadNativeBackend();
const KEY = 'sk-test-123';
let server: OpenAIServer;
let url: string;
let client: OpenAI;
let run: string;
let stateDir: string;
const tok = loadAnyTokenizer(join(fixtures, TOKENIZER));

/** Greedy continuation of text by the fixture model in this process (what the server must answer). */
function greedy(text: string, n: number): string {
  const model = loadGPT(join(fixtures, 'model'));
  const [g] = generate(model, [tok.encode(text)], { maxNewTokens: n, greedy: true });
  model.dispose();
  return tok.decode(g!.tokens);
}

before(async () => {
  run = makeRun();
  stateDir = join(run, '..', 'state');
  ({ server, url } = await startServer({
    run, port: 0, host: '127.0.0.1', apiKey: KEY, modelName: 'shakespeare-bpe', maxConcurrency: 4, maxQueue: 4, maxTokens: 64,
    maxBodyBytes: 4096, timeoutMs: 30_000, graceMs: 1000, stateDir, corsOrigin: '*',
  }));
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY, maxRetries: 0 });
});

after(async () => {
  await server.close(1000);
});

test('the openai client lists and retrieves the model', async () => {
  const list = await client.models.list();
  assert.deepEqual(list.data.map((m) => m.id), ['shakespeare-bpe']);
  assert.equal(list.data[0]!.object, 'model');
  const m = await client.models.retrieve('shakespeare-bpe');
  assert.equal(m.id, 'shakespeare-bpe');
  await assert.rejects(client.models.retrieve('gpt-4'), (e: unknown) => e instanceof OpenAI.NotFoundError);
});

test('completions: greedy text equals generate.ts, usage counts, finish_reason length; streamed text is the same', async () => {
  const prompt = 'ROMEO:\nWhat';
  const r = await client.completions.create({ model: 'shakespeare-bpe', prompt, max_tokens: 20, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.match(r.id, /^cmpl-/);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0]!.text, greedy(prompt, 20));
  assert.equal(r.choices[0]!.finish_reason, 'length');
  assert.deepEqual(r.usage, { prompt_tokens: tok.encode(prompt).length, completion_tokens: 20, total_tokens: tok.encode(prompt).length + 20 });
  const stream = await client.completions.create({ model: 'shakespeare-bpe', prompt, max_tokens: 20, temperature: 0, stream: true });
  let text = '';
  let finish: string | null = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'text_completion');
    text += chunk.choices[0]?.text ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, r.choices[0]!.text);
  assert.equal(finish, 'length');
  const echo = await client.completions.create({ model: 'shakespeare-bpe', prompt, max_tokens: 5, temperature: 0, echo: true });
  assert.ok(echo.choices[0]!.text.startsWith(prompt));
});

test('chat: the plain template, a whole answer, and a stream of deltas (role first, finish, usage) with the same text', async () => {
  const messages = [{ role: 'system' as const, content: 'You are a player.' }, { role: 'user' as const, content: 'Speak, Romeo.' }];
  const r = await client.chat.completions.create({ model: 'shakespeare-bpe', messages, max_tokens: 24, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0]!.message.role, 'assistant');
  const prompt = renderChat(PLAIN_CHAT_TEMPLATE, [{ role: 'system', content: 'You are a player.' }, { role: 'user', content: 'Speak, Romeo.' }]);
  assert.equal(prompt, 'System: You are a player.\n\nUser: Speak, Romeo.\nAssistant:');
  const expected = greedy(prompt, 24);
  const cut = Math.min(...PLAIN_CHAT_TEMPLATE.stop.map((s) => expected.indexOf(s)).filter((k) => k >= 0), expected.length);
  assert.equal(r.choices[0]!.message.content, expected.slice(0, cut));
  assert.equal(r.usage!.prompt_tokens, tok.encode(prompt).length);
  const stream = await client.chat.completions.create({ model: 'shakespeare-bpe', messages, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true } });
  let text = '';
  const roles: string[] = [];
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | null | undefined = null;
  let chunks = 0;
  const ids = new Set<string>();
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    ids.add(chunk.id);
    const c = chunk.choices[0];
    if (c?.delta.role) roles.push(c.delta.role);
    text += c?.delta.content ?? '';
    finish = c?.finish_reason ?? finish;
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(chunks >= 3);
  assert.equal(ids.size, 1);
  assert.match([...ids][0]!, /^chatcmpl-/);
  assert.deepEqual(roles, ['assistant']);
  assert.equal(text, r.choices[0]!.message.content);
  assert.equal(finish, r.choices[0]!.finish_reason);
  assert.deepEqual(usage, r.usage);
});

test('n choices, seeds reproduce, temperature/top_p sample, stop strings cut the text', async () => {
  const a = await client.completions.create({ model: 'shakespeare-bpe', prompt: 'KING:', max_tokens: 16, temperature: 1, top_p: 0.9, n: 3, seed: 42 });
  const b = await client.completions.create({ model: 'shakespeare-bpe', prompt: 'KING:', max_tokens: 16, temperature: 1, top_p: 0.9, n: 3, seed: 42 });
  assert.equal(a.choices.length, 3);
  assert.deepEqual(a.choices.map((c) => c.index), [0, 1, 2]);
  assert.deepEqual(a.choices.map((c) => c.text), b.choices.map((c) => c.text));
  assert.equal(new Set(a.choices.map((c) => c.text)).size > 1, true, 'choices draw with different seeds');
  assert.equal(a.usage!.completion_tokens, 48);
  const full = greedy('ROMEO:', 30);
  const stop = full.slice(8, 11);
  const s = await client.completions.create({ model: 'shakespeare-bpe', prompt: 'ROMEO:', max_tokens: 30, temperature: 0, stop: [stop] });
  assert.equal(s.choices[0]!.finish_reason, 'stop');
  assert.equal(s.choices[0]!.text, full.slice(0, full.indexOf(stop)));
  const penalized = await client.completions.create({ model: 'shakespeare-bpe', prompt: 'ROMEO:', max_tokens: 30, temperature: 0, frequency_penalty: 2 });
  assert.notEqual(penalized.choices[0]!.text, full, 'the penalty changes a repetitive greedy answer');
});

test('errors: 401 without the key, 400 naming the field, 404 model, max_tokens over the limit', async () => {
  const bad = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  await assert.rejects(client.completions.create({ model: 'shakespeare-bpe', prompt: 'x', temperature: 5 }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'temperature' && /temperature/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: 'shakespeare-bpe', messages: [] }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'messages');
  await assert.rejects(client.completions.create({ model: 'other', prompt: 'x' }), (e: unknown) => e instanceof OpenAI.NotFoundError && (e.code === 'model_not_found'));
  await assert.rejects(client.completions.create({ model: 'shakespeare-bpe', prompt: 'x', frequency_penalty: 3 }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'frequency_penalty');
  await assert.rejects(client.completions.create({ model: 'shakespeare-bpe', prompt: 'x', max_tokens: 65 }), (e: unknown) => e instanceof OpenAI.BadRequestError && /limit of 64/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: 'shakespeare-bpe', messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { name: 'f' } }] }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'tools');
});

test('raw HTTP: 413 past the body limit, 400 on invalid JSON with OpenAI\'s error body, CORS preflight', async () => {
  const post = (body: string): Promise<Response> => fetch(`${url}/v1/completions`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' }, body });
  const big = await post(JSON.stringify({ prompt: 'x'.repeat(5000) }));
  assert.equal(big.status, 413);
  const e1 = (await big.json()) as { error: { message: string; type: string; code: string } };
  assert.equal(e1.error.code, 'request_too_large');
  const bad = await post('{"prompt": ');
  assert.equal(bad.status, 400);
  const e2 = (await bad.json()) as { error: { message: string; type: string; param: null; code: string } };
  assert.deepEqual(Object.keys(e2.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(e2.error.type, 'invalid_request_error');
  const pre = await fetch(`${url}/v1/chat/completions`, { method: 'OPTIONS', headers: { Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'POST' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), '*');
  assert.match(pre.headers.get('access-control-allow-headers') ?? '', /Authorization/);
  const health = await fetch(`${url}/health`);
  assert.deepEqual(await health.json(), { status: 'ok' });
});

test('feedback: thumbs up/down with a comment on a response id lands in <state-dir>/feedback.jsonl with the exchange', async () => {
  const r = await client.chat.completions.create({ model: 'shakespeare-bpe', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8, temperature: 0 });
  const res = await fetch(`${url}/v1/feedback`, {
    method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ response_id: r.id, rating: 'down', comment: 'not Shakespearean enough' }),
  });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { known_response: boolean; rating: string };
  assert.equal(body.known_response, true);
  const lines = readFileSync(join(stateDir, 'feedback.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const rec = lines.find((l) => l.response_id === r.id)!;
  assert.equal(rec.rating, 'down');
  assert.equal(rec.comment, 'not Shakespearean enough');
  assert.equal(rec.completion, r.choices[0]!.message.content);
  assert.match(rec.prompt as string, /User: Hello/);
  const bad = await fetch(`${url}/v1/feedback`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}` }, body: JSON.stringify({ response_id: r.id, rating: 'meh' }) });
  assert.equal(bad.status, 400);
});
