// Two runs behind one server: /v1/models lists both, `model` picks one, and the arena routes work end to end —
// a battle answers one prompt with both models in a hidden order, a vote reveals them and lands in
// <state-dir>/arena.jsonl, ratings come back with intervals; a battle takes one vote.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startServer } from '../../src/cli/serve.js';
import { makeRun } from './run-fixture.js';

test('two models, a battle, a vote and the ratings over HTTP', async () => {
  const v1 = makeRun();
  const v2 = join(v1, '..', 'v2');
  cpSync(v1, v2, { recursive: true });
  const stateDir = join(v1, '..', 'state');
  const { server, url } = await startServer({
    run: [v1, v2], modelName: ['v1', 'v2'], port: 0, host: '127.0.0.1', maxConcurrency: 2, maxQueue: 2, maxTokens: 32,
    maxBodyBytes: 1 << 16, timeoutMs: 30_000, graceMs: 500, stateDir, corsOrigin: '*',
  });
  try {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
    assert.deepEqual((await client.models.list()).data.map((m) => m.id), ['v1', 'v2']);
    const r = await client.completions.create({ model: 'v2', prompt: 'ROMEO:', max_tokens: 5, temperature: 0 });
    assert.equal(r.model, 'v2');
    const post = async (path: string, body: object): Promise<{ status: number; json: Record<string, unknown> }> => {
      const res = await fetch(`${url}/v1/arena/${path}`, { method: 'POST', body: JSON.stringify(body) });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    };
    const battle = await post('battles', { messages: [{ role: 'user', content: 'Speak.' }], max_tokens: 12, temperature: 0.8, seed: 3 });
    assert.equal(battle.status, 200);
    assert.equal(battle.json.object, 'arena.battle');
    const responses = battle.json.responses as { index: number; text: string }[];
    assert.deepEqual(responses.map((x) => x.index), [0, 1]);
    assert.ok(!JSON.stringify(battle.json).includes('"v1"'), 'the battle does not name the models');
    const vote = await post('votes', { battle_id: battle.json.id, winner: 2 });
    assert.equal(vote.status, 200);
    assert.deepEqual([...(vote.json.models as string[])].sort(), ['v1', 'v2']);
    assert.equal((await post('votes', { battle_id: battle.json.id, winner: 1 })).status, 404);
    assert.equal((await post('votes', { battle_id: 'nope', winner: 1 })).status, 404);
    const b2 = await post('battles', { prompt: 'KING:', max_tokens: 8, models: ['v1', 'v2'] });
    assert.equal((await post('votes', { battle_id: b2.json.id, winner: 'left' })).status, 400);
    assert.equal((await post('votes', { battle_id: b2.json.id, winner: 'tie' })).status, 200);
    const stored = readFileSync(join(stateDir, 'arena.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { winner: string; response_b: string });
    assert.equal(stored.length, 2);
    assert.equal(stored[0]!.winner, 'b');
    assert.equal(stored[0]!.response_b, responses[1]!.text);
    const ratings = (await (await fetch(`${url}/v1/arena/ratings`)).json()) as { votes: number; data: { model: string; bt: number; btLow: number; btHigh: number }[]; table: string };
    assert.equal(ratings.votes, 2);
    assert.deepEqual(ratings.data.map((x) => x.model).sort(), ['v1', 'v2']);
    for (const row of ratings.data) assert.ok(row.btLow <= row.bt && row.bt <= row.btHigh);
    assert.match(ratings.table, /Bradley–Terry/);
  } finally {
    await server.close(500);
  }
});
