// The dashboard in a real headless browser (Debian's chromium driven by playwright-core): a short training run
// starts from a finished one (init_from, a registered version), and the test opens the live pages — the runs list,
// the training run whose loss chart must gain points while it trains, the evaluation table across runs, the
// comparison of the two runs, an ablation table, the lineage graph with the init_from edge, and the chat page
// streaming from `lmforge serve` on the finished run (or, in a build without it, a minimal stand-in with CORS) —
// asserting each renders with no console errors, and saves a screenshot of each to the test output folder
// (LMFORGE_TEST_OUTPUT, default test-output/). Skipped, with the reason printed, only where chromium is absent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { prepareCharData } from '../../src/data/prepare.js';
import { Dashboard } from '../../src/web/server.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const shakespeare = join(root, '../shared/data/tinyshakespeare/input.txt');
const CHROMIUM = process.env.LMFORGE_CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p)) ?? null;
const outDir = join(process.env.LMFORGE_TEST_OUTPUT ?? join(root, 'test-output'), 'dashboard');

const tiny = ['--eval_iters=2', '--checkpoint_interval=0', '--threads=1', '--model.n_layer=1', '--model.n_embd=16', '--model.n_head=2', '--model.block_size=32', '--data.batch_size=4', '--peak_flops=0'];

/** A stand-in for `lmforge serve`'s OpenAI surface: /v1/models and a streamed /v1/chat/completions, with CORS. */
function fakeOpenAI(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const cors = { 'access-control-allow-origin': '*', 'access-control-allow-headers': 'content-type, authorization', 'access-control-allow-methods': 'GET, POST, OPTIONS' };
    if (req.method === 'OPTIONS') return void res.writeHead(204, cors).end();
    if (req.url === '/v1/models') return void res.writeHead(200, { ...cors, 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: [{ id: 'tiny@v1', object: 'model' }] }));
    if (req.url === '/v1/chat/completions' && req.method === 'POST') {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const { messages, stream } = JSON.parse(body) as { messages: { content: string }[]; stream: boolean };
        assert.equal(stream, true);
        res.writeHead(200, { ...cors, 'content-type': 'text/event-stream' });
        for (const piece of ['You said: ', messages.at(-1)!.content, '.']) res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: piece } }] })}\n\n`);
        res.end('data: [DONE]\n\n');
      });
      return;
    }
    res.writeHead(404, cors).end();
  });
  return new Promise((done) => server.listen(0, '127.0.0.1', () => done({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1` })));
}

/**
 * The chat page's server: the real `lmforge serve` on the finished run when this build has it (its base URL read
 * from the line it prints), else the stand-in above.
 */
async function chatServer(run: string): Promise<{ url: string; real: boolean; close: () => Promise<void> }> {
  if (existsSync(join(root, 'dist/src/cli/serve.js'))) {
    const child = spawn(process.execPath, [cli, 'serve', '--run', run, '--port', '0', '--host', '127.0.0.1'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const url = await new Promise<string>((done, failed) => {
      const timer = setTimeout(() => failed(new Error(`lmforge serve did not start within 30 s: ${err}`)), 30_000);
      child.stderr!.on('data', (c: Buffer) => {
        err += c.toString();
        const m = /at (http:\/\/\S+\/v1)/.exec(err);
        if (m) {
          clearTimeout(timer);
          done(m[1]!);
        }
      });
      child.on('exit', (code) => failed(new Error(`lmforge serve exited (${code}): ${err}`)));
    });
    return { url, real: true, close: async () => void child.kill('SIGKILL') };
  }
  const fake = await fakeOpenAI();
  return {
    url: fake.url, real: false,
    close: async () => {
      fake.server.closeAllConnections();
      fake.server.close();
    },
  };
}

async function chartPoints(page: Page): Promise<number> {
  return page.evaluate(() => {
    const g = globalThis as unknown as { Chart: { getChart(id: string): { data: { datasets: { data: unknown[] }[] } } | undefined } };
    return g.Chart.getChart('loss-chart')?.data.datasets[0]?.data.length ?? 0;
  });
}

test('dashboard: live pages of a training run in headless Chromium', { timeout: 120_000 }, async (t) => {
  if (!CHROMIUM) {
    console.log('# dashboard browser test skipped: chromium not found at /usr/bin/chromium (apt-get install chromium, or set LMFORGE_CHROMIUM)');
    t.skip('chromium is not installed');
    return;
  }
  mkdirSync(outDir, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-dashboard-'));
  writeFileSync(join(dir, 'input.txt'), readFileSync(shakespeare, 'utf8').slice(0, 40000));
  prepareCharData({ input: join(dir, 'input.txt'), outDir: join(dir, 'data'), valFraction: 0.1 });
  const runs = join(dir, 'runs');
  const v1 = join(runs, 'v1');
  const v2 = join(runs, 'v2');
  const r1 = spawnSync(process.execPath, [cli, 'train', ...tiny, `--data.dir=${join(dir, 'data')}`, `--out_dir=${v1}`, '--max_iters=10', '--eval_interval=5', '--log_interval=2'], { encoding: 'utf8' });
  assert.equal(r1.status, 0, r1.stderr);
  // v1 becomes model version tiny@v1 through the registry (its version.json is what the dashboard reads).
  const reg = spawnSync(process.execPath, [cli, 'registry', '--registry', join(dir, 'registry.sqlite'), 'register', v1, '--name', 'tiny'], { encoding: 'utf8' });
  assert.equal(reg.status, 0, reg.stderr);
  mkdirSync(join(v1, 'eval'));
  writeFileSync(join(v1, 'eval', 'hellaswag.json'), JSON.stringify({ lmforge_eval: 1, created: '2026-01-01T00:00:00Z', model: {}, config: {}, results: [{ task: 'hellaswag', version: 1, nShot: 0, n: 40, metrics: { acc: { value: 0.275, stderr: 0.0715 } }, seconds: 1 }] }));
  // An ablation's results.json as `lmforge study`/`ablate` write it (two variants, two seeds).
  const study = join(runs, 'studies', 'grid');
  mkdirSync(study, { recursive: true });
  const row = (variant: string, losses: number[], vs: object | null): object => ({ variant, budget: null, steps: 300, val_loss: { n: 2, mean: (losses[0]! + losses[1]!) / 2, std: Math.abs(losses[0]! - losses[1]!) / Math.SQRT2 }, seeds_losses: losses, vs_baseline: vs });
  writeFileSync(join(study, 'results.json'), JSON.stringify({ study: 'grid', file: 'configs/studies/ablation-2x2.yaml', cpu: 'test', seeds: [1, 2], baseline: 'mlp-gelu', changes: { 'mlp-gelu': { 'model.mlp': 'gelu' }, 'mlp-swiglu': { 'model.mlp': 'swiglu' } }, rows: [row('mlp-gelu', [2.40, 2.41], null), row('mlp-swiglu', [2.30, 2.32], { diff: -0.095, low: -0.16, high: -0.03, df: 1.6, p: 0.02 })] }));
  writeFileSync(join(study, 'table.md'), '| variant |\n');

  // The live run: starts from v1 and trains until killed, logging every 5 steps.
  const trainer: ChildProcess = spawn(process.execPath, [cli, 'train', ...tiny, `--data.dir=${join(dir, 'data')}`, `--out_dir=${v2}`, `--init_from=${v1}`, '--max_iters=1000000', '--eval_interval=1000000', '--log_interval=5'], { stdio: 'ignore' });
  const openai = await chatServer(v1);
  const dash = new Dashboard({ runsDir: runs, chatBaseUrl: openai.url });
  const base = await dash.listen();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  const errors: string[] = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`${page.url()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
    // Wait until the run has logged a few lines, so the pages have something to show.
    const deadline = Date.now() + 30_000;
    while (!(existsSync(join(v2, 'metrics.jsonl')) && readFileSync(join(v2, 'metrics.jsonl'), 'utf8').split('\n').length > 3)) {
      assert.ok(Date.now() < deadline, 'the training run logged nothing within 30 s');
      await new Promise((r) => setTimeout(r, 200));
    }

    await page.goto(`${base}/#/runs`);
    await page.waitForSelector('#runs-table table');
    assert.equal(await page.locator('#runs-table tbody tr').count(), 2);
    assert.equal(await page.locator('.status-training').count(), 1, 'v2 shows as training');
    assert.match(await page.locator('#runs-table').innerText(), /v1\s+tiny@v1/);
    await page.screenshot({ path: join(outDir, 'runs.png') });

    await page.goto(`${base}/#/run/v2`);
    await page.waitForFunction("document.querySelector('#run-status')?.textContent === 'training'");
    // The status comes with the page; the chart fills on the first metrics poll, which may land a moment later.
    await page.waitForFunction(() => {
      const g = globalThis as unknown as { Chart: { getChart(id: string): { data: { datasets: { data: unknown[] }[] } } | undefined } };
      return (g.Chart.getChart('loss-chart')?.data.datasets[0]?.data.length ?? 0) >= 1;
    }, undefined, { timeout: 20_000 }).catch(() => undefined);
    const first = await chartPoints(page);
    assert.ok(first >= 1, `the loss chart starts with the logged points (${first})`);
    // The chart must gain points while the run trains (polled every second).
    await page.waitForFunction((n) => {
      const g = globalThis as unknown as { Chart: { getChart(id: string): { data: { datasets: { data: unknown[] }[] } } | undefined } };
      return (g.Chart.getChart('loss-chart')?.data.datasets[0]?.data.length ?? 0) > n + 1;
    }, first, { timeout: 20_000 });
    const later = await chartPoints(page);
    assert.ok(later > first, `live curve: ${first} → ${later} points`);
    await page.screenshot({ path: join(outDir, 'run-live.png') });

    await page.goto(`${base}/#/run/v1`);
    await page.waitForSelector('#evals table');
    assert.match(await page.locator('#evals').innerText(), /hellaswag[\s\S]*acc[\s\S]*0\.2750/);
    await page.screenshot({ path: join(outDir, 'run-evals.png') });

    await page.goto(`${base}/#/evals`);
    await page.waitForSelector('#evals-table table');
    assert.match(await page.locator('#evals-table').innerText(), /tiny@v1[\s\S]*0\.2750/);
    await page.screenshot({ path: join(outDir, 'evals.png') });

    await page.goto(`${base}/#/compare/v1..v2`);
    await page.waitForSelector('#cmp-chart');
    await page.waitForFunction("(Chart.getChart('cmp-chart')?.data.datasets[1].data.length ?? 0) > 0");
    assert.match(await page.locator('#cmp-out').innerText(), /init_from[\s\S]*max_iters[\s\S]*10\s+1000000/);
    await page.screenshot({ path: join(outDir, 'compare.png') });

    await page.goto(`${base}/#/studies`);
    await page.click('text=grid');
    await page.waitForSelector('#delta-chart');
    assert.match(await page.locator('main').innerText(), /mlp-swiglu[\s\S]*-0\.0950[\s\S]*0\.020 \*/);
    await page.screenshot({ path: join(outDir, 'ablation.png') });

    await page.goto(`${base}/#/lineage`);
    await page.waitForSelector('svg#lineage');
    assert.equal(await page.locator('svg#lineage g.node').count(), 2, 'the runs v1 and v2 (the study folder is not a run)');
    assert.equal(await page.locator('svg#lineage line').count(), 1, 'one init_from edge v1 → v2');
    assert.match(await page.locator('svg#lineage').textContent() ?? '', /tiny@v1/);
    await page.screenshot({ path: join(outDir, 'lineage.png') });

    await page.goto(`${base}/#/chat`);
    await page.waitForFunction("document.querySelector('#chat-model')?.options.length === 1");
    await page.fill('#chat-input', 'hello there');
    await page.click('#chat-send');
    if (openai.real) {
      // The real server's tiny model answers something: the reply streams in and the page marks it done.
      await page.waitForFunction("document.querySelector('#chat-state')?.textContent === 'done'", undefined, { timeout: 30_000 });
      assert.ok(((await page.locator('.msg-assistant').textContent()) ?? '').length > 0, 'a streamed reply');
    } else {
      await page.waitForFunction("document.querySelector('.msg-assistant')?.textContent === 'You said: hello there.'");
    }
    await page.screenshot({ path: join(outDir, 'chat.png') });
    assert.deepEqual(errors, [], 'no console errors');
  } finally {
    trainer.kill('SIGKILL');
    await browser.close();
    await dash.close();
    await openai.close();
  }
});
