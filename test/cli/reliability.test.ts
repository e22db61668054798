// End-to-end refusals through the real CLI: each class of bad flag, output path, input bytes or tokenizer file ends
// in exit 1 with one clean `error:` line naming what was wrong — never a stack trace, a hang or a half-written file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
export const SHARED = fileURLToPath(new URL('../../../../shared/data/', import.meta.url));

export function lmforge(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 1 and one `error:` line (commander's usage hint at its end) that matches `pattern`. */
export function refused(r: { code: number | null; stderr: string }, pattern: RegExp, what: string): void {
  assert.equal(r.code, 1, `${what}: exit code (stderr: ${r.stderr})`);
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, `${what}: no stack trace`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  const errors = lines.filter((l) => l.startsWith('error:'));
  assert.equal(errors.length, 1, `${what}: one error line, got ${JSON.stringify(r.stderr)}`);
  assert.equal(lines.filter((l) => !l.startsWith('warning') && !l.startsWith('prepare:')).length, 1, `${what}: nothing but that line, got ${JSON.stringify(r.stderr)}`);
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
    refused(lmforge('tokenizer', 'train', '--type', 'bpe', '--vocab-size', '300', '--input', input, '--out', input), /in\.txt: this output would overwrite the input/, 'tokenizer train --out = --input');
    const shard = join(dir, 'train.bin');
    writeFileSync(shard, 'text that happens to be named train.bin\n');
    refused(lmforge('prepare', '--input', shard, '--out', dir), /train\.bin: this output would overwrite the input/, 'prepare over its input');
    assert.equal(readFileSync(input, 'utf8'), 'hello world\n', 'the input is intact');
    rmSync(shard);
    assert.deepEqual(readdirSync(dir).sort(), ['afile', 'in.txt']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--tokenizer takes every format lmforge reads, recognised by content; anything else lists the formats', async () => {
  const { tinyFiles } = await import('../tokenizers/tiny-files.js');
  const f = tinyFiles();
  const dir = mkdtempSync(join(tmpdir(), 'lmf-tokfmt-'));
  try {
    const gpt2 = join(dir, 'gpt2');
    const hfDir = join(dir, 'hfdir');
    for (const d of [gpt2, hfDir, join(dir, 'empty')]) mkdirSync(d);
    writeFileSync(join(gpt2, 'vocab.json'), f.gpt2Encoder);
    writeFileSync(join(gpt2, 'merges.txt'), f.gpt2Merges);
    writeFileSync(join(hfDir, 'tokenizer.json'), f.hf);
    const files: Record<string, string> = { 'tok.lmf': f.lmforge, 'tokenizer.json': f.hf, 'x-gpt2.tiktoken': f.tiktoken, 'ranks-gpt2.txt': f.tiktoken, 'npm.json': f.npmJson };
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
    const want = lmforge('tokenizer', 'encode', '--tokenizer', join(dir, 'tok.lmf'), 'the theme');
    assert.equal(want.code, 0, want.stderr);
    for (const t of [...Object.keys(files).map((n) => join(dir, n)), gpt2, hfDir]) {
      const r = lmforge('tokenizer', 'encode', '--tokenizer', t, 'the theme');
      assert.equal(r.code, 0, `${t}: ${r.stderr}`);
      assert.equal(r.stdout, want.stdout, t);
    }
    writeFileSync(join(dir, 'notes.txt'), 'just some text\n');
    refused(lmforge('tokenizer', 'encode', '--tokenizer', join(dir, 'notes.txt'), 'x'), /notes\.txt: not a tokenizer file .*expected an lmforge tokenizer file, a Hugging Face tokenizer\.json, a tiktoken rank file/, 'text file');
    writeFileSync(join(dir, 'bin.tok'), Buffer.from([0x7b, 0xff, 0xfe]));
    refused(lmforge('tokenize', '--tokenizer', join(dir, 'bin.tok'), '--input', join(dir, 'notes.txt'), '--out', join(dir, 'o')), /bin\.tok: not a tokenizer file: invalid UTF-8 at byte offset 1/, 'binary');
    refused(lmforge('tokenizer', 'decode', '--tokenizer', join(dir, 'empty'), '1'), /this directory holds no tokenizer; expected/, 'empty dir');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('invalid UTF-8: every text-reading command names the file and byte offset; replace and skip on request', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-utf8-'));
  try {
    const bad = join(dir, 'bad.txt');
    writeFileSync(bad, Buffer.concat([Buffer.from('hello w'), Buffer.from([0xc3, 0x28]), Buffer.from('rld\nline two\nlast \xff line\nend\n', 'latin1')]));
    const where = /bad\.txt: invalid UTF-8 at byte offset 7; .*--invalid-utf8=replace/;
    const tok = join(SHARED, 'gpt2-tokenizer');
    refused(lmforge('prepare', '--input', bad, '--out', join(dir, 'p')), where, 'prepare');
    refused(lmforge('tokenize', '--tokenizer', tok, '--input', bad, '--out', join(dir, 't')), where, 'tokenize');
    assert.deepEqual(readdirSync(join(dir, 't')), [], 'tokenize left no half-written shard');
    refused(lmforge('tokenizer', 'encode', '--tokenizer', tok, '--input', bad), where, 'tokenizer encode');
    refused(lmforge('tokenizer', 'train', '--type', 'bpe', '--vocab-size', '300', '--input', bad, '--out', join(dir, 'tok.json')), where, 'tokenizer train');
    const skip = lmforge('prepare', '--input', bad, '--out', join(dir, 'p'), '--invalid-utf8=skip');
    assert.equal(skip.code, 0, skip.stderr);
    assert.match(skip.stderr, /skipped 2 line\(s\) with invalid UTF-8 \(first at byte offset 7\)/);
    const replace = lmforge('tokenizer', 'encode', '--tokenizer', tok, '--input', bad, '--invalid-utf8', 'replace', '--pieces');
    assert.equal(replace.code, 0, replace.stderr);
    assert.match(replace.stdout, /"\uFFFD"/);

    const jsonl = join(dir, 'docs.jsonl');
    writeFileSync(jsonl, Buffer.concat([Buffer.from('{"text":"fine"}\n{"text":"bro'), Buffer.from([0xff]), Buffer.from('ken"}\n')]));
    const cfg = join(dir, 'c.yaml');
    writeFileSync(cfg, `output: out\non_bad_record: fail\nsources:\n  - {name: d, paths: [docs.jsonl]}\nclean: false\npii: false\nfilters: {language: false, gopher_repetition: false, gopher_quality: false, c4: false, fineweb: false}\ndedup: false\n`);
    refused(lmforge('curate', '-c', cfg), /docs\.jsonl:2: invalid UTF-8 at byte offset 28$/, 'curate on_bad_record: fail');
    writeFileSync(cfg, readFileSync(cfg, 'utf8').replace('on_bad_record: fail', 'on_bad_record: fail\ninvalid_utf8: replace'));
    const ok = lmforge('curate', '-c', cfg);
    assert.equal(ok.code, 0, ok.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
