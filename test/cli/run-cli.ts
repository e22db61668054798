// Runs the built CLI in a child process and checks refusals, for the tests of bad input: not a test file itself.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export function lmforge(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 1 and exactly one line on stderr, `error: …` matching re, no stack trace. */
export function refused(r: { code: number | null; stderr: string }, re: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('warning'));
  assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^error: /);
  assert.match(lines[0]!, re);
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
}
