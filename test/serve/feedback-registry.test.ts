// /v1/feedback into the registry: the record lands in the SQLite database with the served run as its target,
// the exchange (prompt and answer) and the response id, and can be read back through the registry's API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import OpenAI from 'openai';
import { startServer } from '../../src/cli/serve.js';
import { Registry } from '../../src/registry/registry.js';
import { makeRun } from './run-fixture.js';

test('feedback is stored in the registry with the run that answered', async () => {
  const run = makeRun();
  const db = join(run, '..', 'registry.sqlite');
  const { server, url } = await startServer({
    run, modelName: 'v1', port: 0, host: '127.0.0.1', maxConcurrency: 2, maxQueue: 2, maxTokens: 16, maxBodyBytes: 1 << 16,
    timeoutMs: 30_000, graceMs: 500, stateDir: join(run, '..', 'state'), corsOrigin: '*', registry: db,
  });
  assert.equal(server.feedbackLocation, resolve(db));
  try {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
    const r = await client.chat.completions.create({ model: 'v1', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 6, temperature: 0 });
    const res = await fetch(`${url}/v1/feedback`, { method: 'POST', body: JSON.stringify({ response_id: r.id, rating: 'up', comment: 'good' }) });
    assert.equal(res.status, 200);
  } finally {
    await server.close(500);
  }
  const reg = Registry.open(db);
  try {
    const [f] = reg.feedback();
    assert.equal(f!.target, resolve(run));
    assert.equal(f!.rating, 1);
    assert.equal(f!.comment, 'good');
    assert.match(f!.prompt!, /User: Hello/);
    assert.equal((f!.meta as { served_as: string }).served_as, 'v1');
    assert.match((f!.meta as { response_id: string }).response_id, /^chatcmpl-/);
  } finally {
    reg.close();
  }
});
