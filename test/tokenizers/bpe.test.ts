// Unit tests of the byte-level BPE: special-token handling, byte round trips, merge strategies, dropout, loaders' errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BpeTokenizer, seededRandom } from '../../src/tokenizers/bpe.js';
import { BYTE_TO_UNICODE } from '../../src/tokenizers/bytes.js';
import { PairTable, mergeLong, mergeShort } from '../../src/tokenizers/merge.js';
import { loadGpt2Files, parseGpt2Files, parseTiktokenNpmJson, parseTiktokenRanks } from '../../src/tokenizers/loaders.js';
import { gpt2Dir, haveData, shakespearePath } from './fixtures.js';
import { readFileSync } from 'node:fs';

const skip = haveData ? false : 'shared data not found (set LMFORGE_DATA)';
let gpt2: BpeTokenizer | undefined;
const tok = (): BpeTokenizer => (gpt2 ??= loadGpt2Files(join(gpt2Dir, 'encoder.json'), join(gpt2Dir, 'vocab.bpe')));

test('special tokens: plain text by default, ids when allowed, an error when disallowed', { skip }, () => {
  const text = 'a<|endoftext|>b';
  assert.ok(!tok().encode(text).includes(50256));
  assert.deepEqual(tok().encode(text, { allowedSpecial: 'all' }), [64, 50256, 65]);
  assert.deepEqual(tok().encode(text, { allowedSpecial: ['<|endoftext|>'] }), [64, 50256, 65]);
  assert.throws(() => tok().encode(text, { disallowedSpecial: 'all' }), /disallowed special token "<\|endoftext\|>" at index 1/);
  assert.throws(() => tok().encode(text, { allowedSpecial: ['<|nope|>'] }), /not a special token/);
  assert.equal(tok().decode([64, 50256, 65]), text);
});

test('encodeBytes/decodeBytes round-trip arbitrary bytes, invalid UTF-8 included', { skip }, () => {
  const rnd = seededRandom(7);
  for (let trial = 0; trial < 200; trial++) {
    const bytes = new Uint8Array(Math.floor(rnd() * 64));
    for (let i = 0; i < bytes.length; i++) bytes[i] = rnd() < 0.5 ? 0x61 + Math.floor(rnd() * 26) : Math.floor(rnd() * 256);
    assert.deepEqual(tok().decodeBytes(tok().encodeBytes(bytes)), bytes);
  }
  const invalid = Uint8Array.from([0xff, 0xfe, 0x41, 0xc3, 0x28, 0xed, 0xa0, 0x80]);
  assert.deepEqual(tok().decodeBytes(tok().encodeBytes(invalid)), invalid);
  assert.equal(tok().decode(tok().encodeBytes(invalid)).includes('\ufffd'), true);
  assert.throws(() => tok().decode([999_999]), /unknown token id 999999 at position 0/);
});

test('encoding never throws on random text', { skip }, () => {
  const rnd = seededRandom(3);
  for (let trial = 0; trial < 300; trial++) {
    let s = '';
    const n = Math.floor(rnd() * 40);
    for (let i = 0; i < n; i++) s += String.fromCharCode(Math.floor(rnd() * 0x10000));
    const ids = tok().encode(s);
    assert.equal(tok().decode(ids), s.toWellFormed());
  }
});

test('heap merge (long pieces) equals the array-scan merge', { skip }, () => {
  const t = tok();
  const table = new PairTable(t.merges.length);
  for (const m of t.merges) table.add(m.left, m.right, m.rank, m.result);
  const text = readFileSync(shakespearePath, 'utf8').slice(0, 20000);
  for (let start = 0; start < text.length; start += 97) {
    const bytes = new TextEncoder().encode(text.slice(start, start + 1 + (start % 300)));
    const a = Int32Array.from(bytes, (b) => t.encodeBytes(Uint8Array.of(b))[0] as number);
    const b = Int32Array.from(a);
    const na = mergeShort(a, a.length, table, new Int32Array(a.length));
    const nb = mergeLong(b, b.length, table);
    assert.deepEqual(Array.from(b.subarray(0, nb)), Array.from(a.subarray(0, na)));
  }
});

test('BPE-dropout: p=0 is deterministic BPE, p>0 varies with the seed and always decodes to the text', { skip }, () => {
  const text = readFileSync(shakespearePath, 'utf8').slice(0, 3000);
  const plain = tok().encode(text);
  assert.deepEqual(tok().encode(text, { dropout: 0 }), plain);
  const a = tok().encode(text, { dropout: 0.1, random: seededRandom(1) });
  const b = tok().encode(text, { dropout: 0.1, random: seededRandom(1) });
  const c = tok().encode(text, { dropout: 0.1, random: seededRandom(2) });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.ok(a.length > plain.length, 'dropout gives longer segmentations');
  for (const ids of [a, c, tok().encode(text, { dropout: 0.9 })]) assert.equal(tok().decode(ids), text);
  // Dropout 1 skips every merge: one token per byte.
  assert.equal(tok().encode('hello world', { dropout: 1 }).length, 11);
});

test('malformed vocabularies are refused with the file and line or field named', () => {
  const enc = JSON.stringify({ a: 0, b: 1, ab: 2 });
  const bytes = Object.fromEntries(BYTE_TO_UNICODE.map((ch, i) => [ch, i]));
  assert.throws(() => parseGpt2Files('{', ''), /encoder\.json: not valid JSON/);
  assert.throws(() => parseGpt2Files(JSON.stringify({ a: 'x' }), ''), /encoder\.json: field "a": expected an integer id in \[0, 2\^24\)/);
  assert.throws(() => parseGpt2Files(enc, '#version: 0.2\na b\nab c\n'), /vocab\.bpe:3: token "c" is not in encoder\.json/);
  assert.throws(() => parseGpt2Files(enc, '#version: 0.2\na b c\n'), /vocab\.bpe:2: expected "left right"/);
  assert.throws(() => new BpeTokenizer(parseGpt2Files(enc, 'a b\n')), /encoder\.json: no token for byte 0x00/);
  assert.equal(new BpeTokenizer(parseGpt2Files(JSON.stringify(bytes), '')).encode('hi').length, 2);
  assert.throws(() => parseGpt2Files(JSON.stringify({ ...bytes, 'a\u3000': 300 }), ''), /field "a\u3000": contains a character outside GPT-2's byte table/);
  assert.throws(() => parseTiktokenRanks('YQ== 0\nnot base64! 1\n', 'x.tiktoken'), /x\.tiktoken:2: expected "<base64 bytes> <rank>"/);
  assert.throws(() => parseTiktokenRanks('YQ== 0\nYg== 0\n', 'x.tiktoken'), /x\.tiktoken:2: rank 0 appears twice/);
  assert.throws(() => parseTiktokenNpmJson('{"pat_str": 3}', 'e.json'), /e\.json: field "pat_str"/);
  assert.throws(() => parseTiktokenNpmJson('{"pat_str": "x", "bpe_ranks": "", "special_tokens": {}}', 'e.json'), /e\.json: field "pat_str": unknown split pattern/);
});

test('encodeDropout defaults to p = 0.1 and is reproducible from the seed', { skip }, () => {
  const text = 'The quick brown fox jumps over the lazy dog, again and again and again.';
  const a = tok().encodeDropout(text, seededRandom(5));
  assert.deepEqual(tok().encodeDropout(text, seededRandom(5)), a);
  assert.deepEqual(a, tok().encode(text, { dropout: 0.1, random: seededRandom(5) }));
  assert.equal(tok().decode(a), text);
  assert.deepEqual(tok().encodeDropout(text, seededRandom(5), 0), tok().encode(text));
});
