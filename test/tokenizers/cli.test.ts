// The tokenizer CLI modules, registered on a fresh commander program: train, encode, decode, export, and tokenize
// (token shards identical to encoding the whole text, in-process and on worker threads).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { register as registerTokenize } from '../../src/cli/tokenize.js';
import { register as registerTokenizer } from '../../src/cli/tokenizer.js';
import { loadAnyTokenizer } from '../../src/tokenizers/load-any.js';
import { readTokenFile, TokenFileReader } from '../../src/tokenizers/token-file.js';
import { encodeText } from '../../src/tokenizers/tokenizer.js';
import { tokenizeFiles } from '../../src/tokenizers/tokenize-files.js';
import { UserError } from '../../src/util/errors.js';
import { gpt2Dir, haveData, shakespearePath } from './fixtures.js';

const skip = haveData ? false : 'shared data not found (set LMFORGE_DATA)';
const dir = mkdtempSync(join(tmpdir(), 'lmforge-cli-'));

async function run(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerTokenizer(program);
  registerTokenize(program);
  const chunks: string[] = [];
  const original = process.stdout.write.bind(process.stdout);
  const originalErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((c: string | Uint8Array): boolean => {
    chunks.push(typeof c === 'string' ? c : Buffer.from(c).toString('utf8'));
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    await program.parseAsync(['node', 'lmforge', ...args]);
  } finally {
    process.stdout.write = original;
    process.stderr.write = originalErr;
  }
  return chunks.join('');
}

test('every command has --help text', async () => {
  const program = new Command();
  registerTokenizer(program);
  registerTokenize(program);
  const names = program.commands.flatMap((c) => [c.name(), ...c.commands.map((s) => `${c.name()} ${s.name()}`)]);
  assert.deepEqual(names.sort(), ['tokenize', 'tokenizer', 'tokenizer decode', 'tokenizer encode', 'tokenizer export', 'tokenizer train']);
  for (const c of program.commands) for (const s of [c, ...c.commands]) assert.ok(s.description().length > 10 && s.helpInformation().includes('Options:'));
});

test('tokenizer train / encode / decode / export (bpe and unigram)', { skip }, async () => {
  const corpus = join(dir, 'corpus.txt');
  writeFileSync(corpus, readFileSync(shakespearePath, 'utf8').slice(0, 200_000));
  for (const type of ['bpe', 'unigram']) {
    const out = join(dir, `${type}.json`);
    await run(['tokenizer', 'train', '--type', type, '--vocab-size', '800', '--input', corpus, '--out', out, '--special', '<|endoftext|>', '--hf-out', join(dir, `${type}.hf.json`), '--vocab-out', join(dir, `${type}.vocab.txt`)]);
    const tok = loadAnyTokenizer(out);
    assert.equal(tok.vocabSize, 800);
    const text = 'Now is the winter of our discontent';
    const ids = (await run(['tokenizer', 'encode', '--tokenizer', out, text])).trim();
    assert.equal(ids, tok.encode(text).join(' '));
    assert.equal(await run(['tokenizer', 'decode', '--tokenizer', out, ...ids.split(' ')]), text);
    assert.equal(loadAnyTokenizer(join(dir, `${type}.hf.json`)).encode(text).join(' '), ids);
    assert.equal(readFileSync(join(dir, `${type}.vocab.txt`), 'utf8').trimEnd().split('\n').length, 800);
  }
  await assert.rejects(run(['tokenizer', 'train', '--type', 'wordpiece', '--vocab-size', '800', '--input', corpus, '--out', join(dir, 'x.json')]), (e: unknown) => e instanceof UserError && /--type: expected "bpe" or "unigram"/.test(e.message));
  await assert.rejects(run(['tokenizer', 'encode', '--tokenizer', join(dir, 'missing.json'), 'x']), (e: unknown) => e instanceof UserError && /missing\.json: no such tokenizer file or directory/.test(e.message));
  await assert.rejects(run(['tokenizer', 'decode', '--tokenizer', join(dir, 'bpe.json'), '1', 'x']), /ids: item 2: expected a token id, found "x"/);
});

test('tokenizer encode with a GPT-2 directory, specials and dropout', { skip }, async () => {
  assert.equal((await run(['tokenizer', 'encode', '--tokenizer', gpt2Dir, '--allow-special', 'Hello<|endoftext|>'])).trim(), '15496 50256');
  const sampled = (await run(['tokenizer', 'encode', '--tokenizer', gpt2Dir, '--dropout', '0.5', '--seed', '3', 'unbelievable understanding'])).trim().split(' ').map(Number);
  assert.ok(sampled.length > 3);
  assert.equal(await run(['tokenizer', 'decode', '--tokenizer', gpt2Dir, ...sampled.map(String)]), 'unbelievable understanding');
});

test('tokenize: shards equal encoding the whole text, with workers and in-process; val split; uint16 for GPT-2', { skip }, async () => {
  const text = readFileSync(shakespearePath, 'utf8');
  const a = join(dir, 'a.txt');
  const b = join(dir, 'b.txt');
  writeFileSync(a, text.slice(0, 300_000));
  writeFileSync(b, text.slice(300_000, 400_000));
  const tok = loadAnyTokenizer(gpt2Dir);
  const expected = [...encodeText(tok, text.slice(0, 300_000)), 50256, ...encodeText(tok, text.slice(300_000, 400_000)), 50256];
  for (const workers of [0, 2]) {
    const out = join(dir, `shards-${workers}`);
    const r = await tokenizeFiles({ tokenizerPath: gpt2Dir, inputs: [a, b], outDir: out, valFraction: 0.1, workers, chunkChars: 20_000 });
    assert.equal(r.dtype, 'uint16');
    const all = [...readTokenFile(r.train.path), ...readTokenFile(r.val.path)];
    assert.deepEqual(all, expected, `workers=${workers}`);
    assert.ok(r.val.tokens > 0.02 * all.length && r.val.tokens < 0.15 * all.length, `val tokens ${r.val.tokens}`);
  }
  const out = join(dir, 'cli-shards');
  await run(['tokenize', '--tokenizer', gpt2Dir, '--input', a, '--out', out, '--val-fraction', '0', '--separator', '']);
  const reader = new TokenFileReader(join(out, 'train.bin'));
  assert.equal(reader.count, encodeText(tok, text.slice(0, 300_000)).length);
  reader.close();
});
