// Fuzzes every tokenizer file parser (lmforge BPE and unigram, tokenizer.json, tiktoken rank file and npm JSON,
// GPT-2 encoder.json + vocab.bpe, and content detection in loadAnyTokenizer): mutated seeds must load or be
// refused with a UserError, and a tokenizer that loads must encode and decode without a crash.
import { test } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseTokenizer } from '../../src/tokenizers/format.js';
import { parseHfTokenizer } from '../../src/tokenizers/hf.js';
import { loadAnyTokenizer } from '../../src/tokenizers/load-any.js';
import { parseGpt2Files, parseTiktokenNpmJson, parseTiktokenRanks } from '../../src/tokenizers/loaders.js';
import { BpeTokenizer } from '../../src/tokenizers/bpe.js';
import type { Tokenizer } from '../../src/tokenizers/tokenizer.js';
import { tinyFiles } from '../tokenizers/tiny-files.js';
import { fuzz, mutatedBytes, mutatedJsonText, report } from './harness.js';

const f = tinyFiles();

/** A loaded tokenizer must also work: encode a sample and decode it back without throwing anything but UserError. */
function exercise(tok: Tokenizer): void {
  const ids = tok.encode('the theme, 42 times\n');
  if (tok instanceof BpeTokenizer) tok.decodeBytes(ids);
  else tok.decode(ids);
}

test('fuzz: lmforge tokenizer files (BPE and unigram)', () => {
  report('lmforge tokenizer', fuzz(mutatedJsonText([f.lmforge, f.unigram]), 5000, (text) => exercise(parseTokenizer(text, 'fuzz.json'))));
});

test('fuzz: Hugging Face tokenizer.json', () => {
  report('tokenizer.json', fuzz(mutatedJsonText([f.hf]), 3000, (text) => exercise(parseHfTokenizer(text, 'tokenizer.json'))));
});

test('fuzz: tiktoken rank files and npm JSON', () => {
  const ranks = fuzz(mutatedJsonText([f.tiktoken]), 2000, (text) => {
    const tokens = parseTiktokenRanks(text, 'r.tiktoken');
    exercise(new BpeTokenizer({ pattern: 'gpt2', tokens, merges: [], ignoreMerges: true }));
  });
  report('tiktoken ranks', ranks);
  report('tiktoken npm JSON', fuzz(mutatedJsonText([f.npmJson]), 3000, (text) => exercise(new BpeTokenizer(parseTiktokenNpmJson(text, 'n.json')))));
});

test('fuzz: GPT-2 encoder.json + vocab.bpe', () => {
  const arb = fc.oneof(
    fc.tuple(mutatedJsonText([f.gpt2Encoder]), fc.constant(f.gpt2Merges)),
    fc.tuple(fc.constant(f.gpt2Encoder), mutatedBytes([Uint8Array.from(Buffer.from(f.gpt2Merges))]).map((b) => Buffer.from(b).toString('utf8'))),
  );
  report('GPT-2 files', fuzz(arb, 3000, ([enc, merges]) => exercise(new BpeTokenizer(parseGpt2Files(enc, merges)))));
});

test('fuzz: loadAnyTokenizer recognises content or lists the formats', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-fuzz-tok-'));
  try {
    const seeds = [f.lmforge, f.hf, f.tiktoken, f.npmJson, f.gpt2Encoder, f.unigram].map((s) => Uint8Array.from(Buffer.from(s)));
    let n = 0;
    report('loadAnyTokenizer', fuzz(mutatedBytes(seeds), 600, (b) => {
      const p = join(dir, `t${n++}-gpt2.tiktoken`);
      writeFileSync(p, b);
      exercise(loadAnyTokenizer(p));
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
