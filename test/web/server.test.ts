// The dashboard's JSON API without a browser: metric lines read incrementally by byte offset (a torn last line
// waits for its newline, a rewritten file starts over), ids outside the runs folder refused, the API read-only.
// The pages themselves: dashboard.test.ts (headless Chromium).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dashboard, readMetricsFrom } from '../../src/web/server.js';

test('dashboard API: incremental metrics, torn lines, rewrites', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-dash-api-'));
  const f = join(dir, 'metrics.jsonl');
  writeFileSync(f, '{"step":0,"loss":4}\n{"step":10,"lo');
  const first = readMetricsFrom(f, 0);
  assert.deepEqual(first.records, [{ step: 0, loss: 4 }]);
  assert.equal(first.offset, '{"step":0,"loss":4}\n'.length, 'the torn line is not consumed');
  appendFileSync(f, 'ss":3.5}\n{"step":20,"loss":3}\n');
  const second = readMetricsFrom(f, first.offset);
  assert.deepEqual(second.records.map((r) => r.step), [10, 20]);
  assert.equal(readMetricsFrom(f, second.offset).records.length, 0);
  writeFileSync(f, '{"step":0,"loss":9}\n'); // a replaced run: shorter than the offset
  const again = readMetricsFrom(f, second.offset);
  assert.equal(again.reset, true);
  assert.deepEqual(again.records, [{ step: 0, loss: 9 }]);
});

test('dashboard API: runs, refusals and errors as JSON', async () => {
  const root = mkdtempSync(join(tmpdir(), 'lmforge-dash-api-'));
  mkdirSync(join(root, 'r1'));
  writeFileSync(join(root, 'r1', 'train-config.json'), JSON.stringify({ max_iters: 100, model: { n_layer: 2, n_embd: 32 } }));
  writeFileSync(join(root, 'r1', 'metrics.jsonl'), '{"step":0,"max_steps":100,"loss":4.1}\n');
  const d = new Dashboard({ runsDir: root });
  const base = await d.listen();
  try {
    const runs = (await (await fetch(`${base}/api/runs`)).json()) as { runs: { id: string; status: string; shape: string; loss: number }[] };
    assert.deepEqual(runs.runs.map((r) => [r.id, r.status, r.shape, r.loss]), [['r1', 'training', '2×32', 4.1]]);
    const outside = await fetch(`${base}/api/metrics?id=${encodeURIComponent('../..')}&offset=0`);
    assert.equal(outside.status, 404);
    assert.match(((await outside.json()) as { error: string }).error, /outside the runs folder/);
    assert.equal((await fetch(`${base}/api/runs`, { method: 'POST' })).status, 405);
    assert.equal((await fetch(`${base}/api/nope`)).status, 404);
    assert.equal((await fetch(`${base}/../../etc/passwd`)).status, 404);
    const page = await fetch(`${base}/`);
    assert.match(await page.text(), /<script src="\/app\.js">/);
    const chart = await fetch(`${base}/vendor/chart.umd.min.js`);
    assert.match(await chart.text(), /Chart\.js v4/);
  } finally {
    await d.close();
  }
});
