// `lmforge serve` as a user runs it: a child process on an ephemeral port, a streaming request in flight when
// SIGTERM arrives (it finishes, then the process closes and exits 0); one-line refusals of bad runs and flags; and
// `lmforge arena battle` / `ratings` driven through a pipe.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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

test('arena battle reads votes from a pipe and appends them; arena ratings prints the table', () => {
  const a = makeRun();
  const b = join(a, '..', 'other');
  cpSync(a, b, { recursive: true });
  const prompts = join(a, '..', 'prompts.txt');
  const votes = join(a, '..', 'votes.jsonl');
  writeFileSync(prompts, 'ROMEO:\nJULIET:\\nO Romeo\n');
  const r = spawnSync(process.execPath, [MAIN, 'arena', 'battle', '--a', a, '--b', b, '--prompts', prompts, '--votes', votes, '--max-tokens', '8'], { input: 'maybe\n1\nt\n', encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /please answer 1, 2, t, s or q/);
  const lines = readFileSync(votes, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { a: string; b: string; winner: string; prompt: string });
  assert.equal(lines.length, 2);
  assert.deepEqual([lines[0]!.a, lines[0]!.b], ['run', 'other']);
  assert.ok(['a', 'b'].includes(lines[0]!.winner));
  assert.equal(lines[1]!.winner, 'tie');
  assert.equal(lines[1]!.prompt, 'JULIET:\nO Romeo');
  const t = lmforge('arena', 'ratings', '--votes', votes, '--rounds', '50');
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /\| 1 \| (run|other) \|/);
  refused(lmforge('arena', 'ratings', '--votes', join(a, 'none.jsonl')), /no such votes file/);
});
