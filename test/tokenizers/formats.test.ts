// Tokenizer files: lmforge's own format round trip, vocabulary listing, Hugging Face tokenizer.json export loaded
// by @huggingface/tokenizers (same ids as ours) and import back, and refusal of malformed files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { countPreTokens, trainBpe } from '../../src/tokenizers/bpe-trainer.js';
import { parseTokenizer, serializeTokenizer, vocabListing } from '../../src/tokenizers/format.js';
import { exportHfTokenizer, parseHfTokenizer } from '../../src/tokenizers/hf.js';
import { loadGpt2Files, loadTiktokenNpmJson } from '../../src/tokenizers/loaders.js';
import type { Tokenizer } from '../../src/tokenizers/tokenizer.js';
import { UnigramTokenizer } from '../../src/tokenizers/unigram.js';
import { countUnigramWords, trainUnigram } from '../../src/tokenizers/unigram-trainer.js';
import { HARD_CASES, gpt2Dir, haveData, shakespearePath, tiktokenEncoders, tiktokenEncoding } from './fixtures.js';

const skip = haveData ? false : 'shared data not found (set LMFORGE_DATA)';

let cached: Array<[string, Tokenizer]> | undefined;
function tokenizers(): Array<[string, Tokenizer]> {
  if (cached) return cached;
  const text = readFileSync(shakespearePath, 'utf8').slice(0, 400_000);
  const bpeCounts = new Map<string, number>();
  countPreTokens(text, bpeCounts);
  const uniCounts = new Map<string, number>();
  countUnigramWords(text, uniCounts);
  cached = [
    ['GPT-2 files', loadGpt2Files(join(gpt2Dir, 'encoder.json'), join(gpt2Dir, 'vocab.bpe'))],
    ['trained BPE', trainBpe(bpeCounts, { vocabSize: 1200, specialTokens: ['<|endoftext|>'] })],
    ['trained unigram', trainUnigram(uniCounts, { vocabSize: 1200, specialTokens: ['<s>', '</s>'] })],
  ];
  return cached;
}

function samples(): string[] {
  const text = readFileSync(shakespearePath, 'utf8');
  const out: string[] = [];
  for (let i = 500_000; i < 560_000; i += 600) out.push(text.slice(i, i + 400));
  // Hard cases the unigram export must also agree on (HF's NFKC and whitespace rules are ours).
  return out.concat(HARD_CASES.filter((s) => !s.includes('\ud800') && !s.includes('\udc00') && !s.includes('<|')));
}

test('lmforge format: save/load round trip gives identical ids; listing has one line per token', { skip }, () => {
  for (const [name, tok] of tokenizers()) {
    const back = parseTokenizer(serializeTokenizer(tok), name);
    assert.equal(back.vocabSize, tok.vocabSize);
    for (const s of samples()) assert.deepEqual(back.encode(s), tok.encode(s), `${name}: ${JSON.stringify(s.slice(0, 30))}`);
    const listing = vocabListing(tok).trimEnd().split('\n');
    assert.equal(listing.length, tok.vocabSize, name);
  }
  assert.match(vocabListing((tokenizers()[0] as [string, Tokenizer])[1]).split('\n')[262] as string, /^262\t" the"\t4 bytes$/);
});

/**
 * @huggingface/tokenizers (tokenizers.js 0.2) ignores `byte_fallback` in Unigram models (the Rust library honours it)
 * and fuses adjacent unknowns: where we emit byte pieces for uncovered characters, it emits one <unk> per run.
 */
function asTokenizersJs(tok: Tokenizer, ids: number[]): number[] {
  if (!(tok instanceof UnigramTokenizer) || !tok.byteFallback) return ids;
  const out: number[] = [];
  for (const id of ids) {
    const isByte = /^<0x[0-9A-F]{2}>$/.test(tok.pieces[id]?.piece ?? '');
    if (!isByte) out.push(id);
    else if (out[out.length - 1] !== tok.unkId) out.push(tok.unkId);
  }
  return out;
}

test('Hugging Face export: @huggingface/tokenizers gives the same ids as lmforge, and import gives them back', { skip }, () => {
  for (const [name, tok] of tokenizers()) {
    const json = exportHfTokenizer(tok);
    const hf = new HfTokenizer(json, {});
    const back = parseHfTokenizer(JSON.stringify(json), name);
    for (const s of samples()) {
      const ours = tok.encode(s);
      assert.deepEqual(hf.encode(s, { add_special_tokens: false }).ids, asTokenizersJs(tok, ours), `${name} via @huggingface/tokenizers: ${JSON.stringify(s.slice(0, 40))}`);
      assert.deepEqual(back.encode(s), ours, `${name} re-imported: ${JSON.stringify(s.slice(0, 40))}`);
    }
  }
});

test('cl100k_base exported to tokenizer.json encodes the same in @huggingface/tokenizers', { skip }, () => {
  const tok = loadTiktokenNpmJson(join(tiktokenEncoders, 'cl100k_base.json'));
  const hf = new HfTokenizer(exportHfTokenizer(tok), {});
  for (const s of samples()) assert.deepEqual(hf.encode(s, { add_special_tokens: false }).ids, tok.encode(s), JSON.stringify(s.slice(0, 40)));
});

test('malformed files are refused with the file and field named', () => {
  assert.throws(() => parseTokenizer('{"magic":"x"}', 't.json'), /t\.json: field "magic": expected "lmforge-tokenizer", found "x"/);
  assert.throws(() => parseTokenizer('{"magic":"lmforge-tokenizer","version":9}', 't.json'), /t\.json: field "version": this lmforge reads version 1, found 9/);
  assert.throws(() => parseTokenizer('nope', 't.json'), /t\.json: not an lmforge tokenizer file/);
  const bad = { magic: 'lmforge-tokenizer', version: 1, type: 'bpe', pattern: 'gpt2', ignoreMerges: false, specialTokens: {}, tokens: ['YQ==', 'Yg=='], merges: [0, 1, 7, 0] };
  assert.throws(() => parseTokenizer(JSON.stringify(bad), 't.json'), /t\.json: field "merges\[0\]"/);
  assert.throws(() => parseTokenizer(JSON.stringify({ ...bad, tokens: ['!!'] }), 't.json'), /t\.json: field "tokens\[0\]": expected base64/);
  assert.throws(() => parseHfTokenizer('{"model": {"type": "WordPiece"}}', 'tok.json'), /tok\.json: field "model\.type": expected "BPE" or "Unigram", found "WordPiece"/);
  const hfBpe = { pre_tokenizer: { type: 'ByteLevel' }, model: { type: 'BPE', vocab: { a: 0, b: 1 }, merges: ['a b'] } };
  assert.throws(() => parseHfTokenizer(JSON.stringify(hfBpe), 'tok.json'), /tok\.json: field "model\.merges\[0\]": token "ab" is not in model\.vocab/);
  assert.throws(() => parseHfTokenizer(JSON.stringify({ ...hfBpe, model: { ...hfBpe.model, merges: [3] } }), 'tok.json'), /field "model\.merges\[0\]": expected "left right"/);
  assert.throws(() => parseHfTokenizer(JSON.stringify({ ...hfBpe, model: { ...hfBpe.model, vocab: { 'a b': 0 } } }), 'tok.json'), /field "model\.vocab\["a b"\]": not a byte-level token/);
  assert.throws(() => parseHfTokenizer(JSON.stringify({ model: { type: 'Unigram', vocab: [['a', 'x']] } }), 'tok.json'), /field "model\.vocab\[0\]": expected \[piece, score\]/);
  assert.throws(() => parseHfTokenizer(JSON.stringify(hfBpe).replace('"merges":["a b"]', '"merges":[]'), 'tok.json'), /tok\.json: no token for byte 0x00/);
  const uni = { pre_tokenizer: { type: 'Metaspace' }, model: { type: 'Unigram', unk_id: 5, vocab: [['a', -1]], byte_fallback: false } };
  assert.throws(() => parseHfTokenizer(JSON.stringify(uni), 'tok.json'), /tok\.json: unk id 5 is not a piece id/);
});

test('a GPT-2 tokenizer.json in the Hugging Face hub layout (ByteLevel regex, "a b" merges) imports to tiktoken ids', { skip }, () => {
  const vocab = JSON.parse(readFileSync(join(gpt2Dir, 'encoder.json'), 'utf8')) as Record<string, number>;
  const merges = readFileSync(join(gpt2Dir, 'vocab.bpe'), 'utf8').split('\n').slice(1).filter((l) => l !== '');
  const hub = {
    version: '1.0',
    added_tokens: [{ id: 50256, content: '<|endoftext|>', special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    decoder: { type: 'ByteLevel' },
    model: { type: 'BPE', dropout: null, unk_token: null, vocab, merges },
  };
  const tok = parseHfTokenizer(JSON.stringify(hub), 'gpt2/tokenizer.json');
  assert.equal(tok.vocabSize, 50257);
  const ref = tiktokenEncoding('gpt2');
  const text = readFileSync(shakespearePath, 'utf8').slice(0, 200_000);
  for (const s of [...HARD_CASES, text]) assert.deepEqual(tok.encode(s), Array.from(ref.encode_ordinary(s)), JSON.stringify(s.slice(0, 30)));
});
