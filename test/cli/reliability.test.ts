// End-to-end refusals through the real CLI: each class of bad flag, output path, input bytes or tokenizer file ends
// in exit 1 with one clean `error:` line naming what was wrong — never a stack trace, a hang or a half-written file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
export const SHARED = fileURLToPath(new URL('../../../../shared/data/', import.meta.url));

export function lmforge(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 1 and one `error:` line (commander may add its "(run with --help …)" hint) that matches `pattern`. */
export function refused(r: { code: number | null; stderr: string }, pattern: RegExp, what: string): void {
  assert.equal(r.code, 1, `${what}: exit code (stderr: ${r.stderr})`);
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, `${what}: no stack trace`);
  const lines = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('(run with --help'));
  const errors = lines.filter((l) => l.startsWith('error:'));
  assert.equal(errors.length, 1, `${what}: one error line, got ${JSON.stringify(r.stderr)}`);
  assert.match(errors[0]!, pattern, what);
}

test('numeric flags: garbage, negatives, zero and absurd sizes are refused with the flag and the range', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-flags-'));
  try {
    const input = join(dir, 'in.txt');
    writeFileSync(input, 'hello world\n');
    const tok = join(SHARED, 'gpt2-tokenizer');
    for (const w of ['abc', '-1', '0', '500', '2.5', '']) {
      refused(lmforge('tokenize', '--tokenizer', tok, '--input', input, '--out', join(dir, 'o'), `--workers=${w}`), /--workers: expected an integer from 1 to \d+ \(.*\), got/, `--workers ${w}`);
    }
    refused(lmforge('tokenize', '--tokenizer', tok, '--input', input, '--out', join(dir, 'o'), '--val-fraction', '0.1x'), /--val-fraction: expected a number in \[0, 1\)/, 'tokenize --val-fraction');
    refused(lmforge('prepare', '--input', input, '--out', join(dir, 'p'), '--val-fraction', '1'), /--val-fraction: expected a number in \(0, 1\)/, 'prepare --val-fraction');
    refused(lmforge('tokenizer', 'train', '--type', 'bpe', '--vocab-size', '1e400', '--input', input, '--out', join(dir, 't.json')), /--vocab-size: expected a positive integer/, '--vocab-size');
    refused(lmforge('tokenizer', 'encode', '--tokenizer', tok, '--alpha', 'NaN', 'x'), /--alpha: expected a number > 0/, '--alpha');
    refused(lmforge('tokenizer', 'encode', '--tokenizer', tok, '--dropout', '', 'x'), /--dropout: expected a number in \[0, 1\]/, '--dropout');
    assert.ok(!existsSync(join(dir, 'o')) && !existsSync(join(dir, 'p')), 'nothing created');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('output paths that are files, under files or on pseudo file systems fail at once, before any work', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-out-'));
  try {
    const input = join(dir, 'in.txt');
    writeFileSync(input, 'hello world\n');
    const file = join(dir, 'afile');
    writeFileSync(file, 'x');
    refused(lmforge('prepare', '--input', input, '--out', file), /afile: cannot use as the output directory: it is a file/, 'prepare --out file');
    refused(lmforge('prepare', '--input', input, '--out', join(file, 'sub')), /not a directory/, 'prepare --out under a file');
    refused(lmforge('tokenize', '--tokenizer', join(SHARED, 'gpt2-tokenizer'), '--input', input, '--out', file), /afile: cannot use as the output directory/, 'tokenize --out file');
    refused(lmforge('tokenizer', 'train', '--type', 'bpe', '--vocab-size', '300', '--input', input, '--out', dir), /cannot write the output file: it is a directory/, 'tokenizer train --out dir');
    if (existsSync('/proc/self')) {
      refused(lmforge('prepare', '--input', input, '--out', '/proc/lmforge-xx'), /^error: \/proc\/lmforge-xx: cannot create the output directory/, 'prepare --out /proc/xx');
    }
    assert.deepEqual(readdirSync(dir).sort(), ['afile', 'in.txt']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
