// Exact-id parity of lmforge's byte-level BPE with the tiktoken npm package (GPT-2 files, gpt2, cl100k_base,
// o200k_base) on Tiny Shakespeare, MMLU text fields, a sample of the Python standard library and the hard cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BpeTokenizer } from '../../src/tokenizers/bpe.js';
import { loadGpt2Files, loadTiktokenFile, loadTiktokenNpmJson, parseTiktokenNpmJson } from '../../src/tokenizers/loaders.js';
import { HARD_CASES, gpt2Dir, haveData, listFiles, mmluTexts, pythonStdlib, shakespearePath, tiktokenEncoders, tiktokenEncoding } from './fixtures.js';
import type { ReferenceEncoding } from './fixtures.js';

const skip = haveData ? false : 'shared data not found (set LMFORGE_DATA)';

function assertSameIds(ours: ArrayLike<number>, ref: Uint32Array, what: string): void {
  if (ours.length === ref.length) {
    let i = 0;
    while (i < ref.length && ours[i] === ref[i]) i++;
    if (i === ref.length) return;
  }
  let i = 0;
  while (i < Math.min(ours.length, ref.length) && ours[i] === ref[i]) i++;
  assert.fail(`${what}: ids differ at position ${i} (ours ${JSON.stringify(Array.from(ours).slice(i, i + 8))}, tiktoken ${JSON.stringify(Array.from(ref.slice(i, i + 8)))})`);
}

interface Pair {
  name: string;
  ours: BpeTokenizer;
  ref: ReferenceEncoding;
}

let pairs: Pair[] | undefined;
function allPairs(): Pair[] {
  pairs ??= [
    { name: 'GPT-2 files', ours: loadGpt2Files(join(gpt2Dir, 'encoder.json'), join(gpt2Dir, 'vocab.bpe')), ref: tiktokenEncoding('gpt2') },
    { name: 'cl100k_base', ours: loadTiktokenNpmJson(join(tiktokenEncoders, 'cl100k_base.json')), ref: tiktokenEncoding('cl100k_base') },
  ];
  return pairs;
}

test('hard cases: identical ids for GPT-2, cl100k_base and o200k_base, and lossless decode', { skip }, () => {
  const o200k = { name: 'o200k_base', ours: loadTiktokenNpmJson(join(tiktokenEncoders, 'o200k_base.json')), ref: tiktokenEncoding('o200k_base') };
  for (const { name, ours, ref } of [...allPairs(), o200k]) {
    for (const text of HARD_CASES) {
      const ids = ours.encode(text);
      assertSameIds(ids, ref.encode_ordinary(text), `${name} on ${JSON.stringify(text.slice(0, 40))}`);
      assert.equal(ours.decode(ids), text.toWellFormed());
      assertSameIds(ours.encode(text, { allowedSpecial: 'all' }), ref.encode(text, 'all'), `${name} (specials allowed) on ${JSON.stringify(text.slice(0, 40))}`);
    }
  }
});

test('Tiny Shakespeare: identical ids', { skip }, () => {
  const text = readFileSync(shakespearePath, 'utf8');
  for (const { name, ours, ref } of allPairs()) assertSameIds(ours.encode(text), ref.encode_ordinary(text), `${name} on Tiny Shakespeare`);
});

test('MMLU text fields: identical ids', { skip }, () => {
  const texts = mmluTexts();
  assert.ok(texts.length > 10_000, `expected the MMLU csv files, found ${texts.length} fields`);
  for (const { name, ours, ref } of allPairs()) {
    for (const text of texts) assertSameIds(ours.encode(text), ref.encode_ordinary(text), `${name} on MMLU ${JSON.stringify(text.slice(0, 40))}`);
  }
});

test('Python standard library (every 4th .py file; `npm run bench -- tokenizers` checks all of them): identical ids', { skip: skip || (existsSync(pythonStdlib) ? false : `${pythonStdlib} not found`) }, () => {
  const files = listFiles(pythonStdlib, '.py').filter((_, i) => i % 4 === 0);
  assert.ok(files.length > 100, `expected the Python ${pythonStdlib} sources, found ${files.length}`);
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const { name, ours, ref } of allPairs()) assertSameIds(ours.encode(text), ref.encode_ordinary(text), `${name} on ${file}`);
  }
});

test('tiktoken rank file (`<base64> <rank>` lines) loads to the same ids as tiktoken', { skip }, () => {
  const spec = parseTiktokenNpmJson(readFileSync(join(tiktokenEncoders, 'cl100k_base.json'), 'utf8'));
  const lines = spec.tokens.map((b, rank) => (b ? `${Buffer.from(b).toString('base64')} ${rank}` : '')).filter((l) => l !== '');
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-tiktoken-'));
  const path = join(dir, 'cl100k_base.tiktoken');
  writeFileSync(path, lines.join('\n') + '\n');
  const tok = loadTiktokenFile(path, { pattern: 'cl100k', specialTokens: spec.specialTokens ?? new Map() });
  const ref = tiktokenEncoding('cl100k_base');
  const text = readFileSync(shakespearePath, 'utf8').slice(0, 100_000);
  for (const s of [...HARD_CASES, text]) assertSameIds(tok.encode(s, { allowedSpecial: 'all' }), ref.encode(s, 'all'), `rank file on ${JSON.stringify(s.slice(0, 30))}`);
});
