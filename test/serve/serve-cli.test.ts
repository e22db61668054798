// `lmforge serve` as a user runs it: a child process on an ephemeral port, a streaming request in flight when
// SIGTERM arrives (it finishes, then the process closes and exits 0); and one-line refusals of bad runs and flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { lmforge, refused } from '../cli/run-cli.js';
import { makeRun } from './run-fixture.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('serve: SIGTERM lets the in-flight stream finish, then closes and exits 0', async () => {
  const run = makeRun();
  const child = spawn(process.execPath, [MAIN, 'serve', '--run', run, '--port', '0', '--state-dir', run, '--no-registry', '--grace-ms', '20000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /at (http:\/\/[^\s/]+)\/v1/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const res = await fetch(`${url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'ROMEO:', max_tokens: 300, stream: true }) });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  let body = new TextDecoder().decode((await reader.read()).value);
  child.kill('SIGTERM');
  for (let r = await reader.read(); !r.done; r = await reader.read()) body += new TextDecoder().decode(r.value);
  assert.match(body, /"finish_reason":"length"/);
  assert.ok(body.endsWith('data: [DONE]\n\n'));
  assert.equal(await exited, 0);
  assert.match(stderr, /SIGTERM: finishing in-flight requests/);
  assert.match(stderr, /closed\n$/);
});

test('serve refuses a missing run and bad flags in one line', () => {
  refused(lmforge('serve', '--run', '/nonexistent/run'), /\/nonexistent\/run: no such run directory/);
  refused(lmforge('serve', '--run', '/tmp', '--max-concurrency', '0'), /--max-concurrency: expected an integer from 1 to 256/);
});
