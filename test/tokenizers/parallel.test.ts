// Chunked encoding: cutting text where safeCut says gives exactly the ids of encoding it whole, for the GPT-2,
// cl100k and o200k patterns and for unigram; the worker pool returns the same ids as in-process encoding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAnyTokenizer } from '../../src/tokenizers/load-any.js';
import { loadTiktokenNpmJson } from '../../src/tokenizers/loaders.js';
import { EncoderPool, safeCut } from '../../src/tokenizers/parallel.js';
import type { Tokenizer } from '../../src/tokenizers/tokenizer.js';
import { countUnigramWords, trainUnigram } from '../../src/tokenizers/unigram-trainer.js';
import { HARD_CASES, gpt2Dir, haveData, listFiles, pythonStdlib, shakespearePath, tiktokenEncoders } from './fixtures.js';

const skip = haveData ? false : 'shared data not found (set LMFORGE_DATA)';

function corpus(): string {
  const code = listFiles(pythonStdlib, '.py').slice(0, 40).map((f) => readFileSync(f, 'utf8')).join('\n');
  return [readFileSync(shakespearePath, 'utf8').slice(0, 60_000), code.slice(0, 150_000), ...HARD_CASES, 'a.\n/b\n/c d\n\n x'].join('\n');
}

function chunked(tok: Tokenizer, text: string, limit: number): number[] {
  const out: number[] = [];
  let rest = text;
  while (rest.length > limit) {
    const cut = safeCut(rest, limit) || safeCut(rest, rest.length);
    if (cut === 0) break;
    out.push(...tok.encode(rest.slice(0, cut)));
    rest = rest.slice(cut);
  }
  return out.concat(tok.encode(rest));
}

test('encoding safe chunks equals encoding the whole text (gpt2, cl100k, o200k, unigram)', { skip }, () => {
  const text = corpus();
  const counts = new Map<string, number>();
  countUnigramWords(text, counts);
  const toks: Array<[string, Tokenizer]> = [
    ...(['gpt2', 'cl100k_base', 'o200k_base'] as const).map((n): [string, Tokenizer] => [n, loadTiktokenNpmJson(join(tiktokenEncoders, `${n}.json`))]),
    ['unigram', trainUnigram(counts, { vocabSize: 1000 })],
  ];
  for (const [name, tok] of toks) {
    const whole = tok.encode(text);
    for (const limit of [997, 4096]) assert.deepEqual(chunked(tok, text, limit), whole, `${name}, chunks of ${limit}`);
  }
});

test('EncoderPool (worker threads) gives the in-process ids', { skip }, async () => {
  const tok = loadAnyTokenizer(gpt2Dir);
  const pool = new EncoderPool(gpt2Dir, 2);
  try {
    const texts = [...HARD_CASES, readFileSync(shakespearePath, 'utf8').slice(0, 50_000)];
    const got = await Promise.all(texts.map((t) => pool.encode(t)));
    texts.forEach((t, i) => assert.deepEqual(Array.from(got[i] as Uint32Array), tok.encode(t)));
  } finally {
    await pool.close();
  }
});
