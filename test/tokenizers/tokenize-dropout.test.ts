// BPE-dropout training shards (`lmforge tokenize --dropout p --dropout-copies k`): p = 0 writes exactly today's shards,
// p > 0 writes k sampled segmentations of every train chunk (each decoding to the text, reproducible from the seed,
// different between copies), val.bin stays deterministic; a trained BPE (src/tokenizers) and the GPT-2 BPE both work;
// unigram tokenizers and inconsistent flags are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { countPreTokens, trainBpe } from '../../src/tokenizers/bpe-trainer.js';
import { countUnigramWords, trainUnigram } from '../../src/tokenizers/unigram-trainer.js';
import { saveTokenizer } from '../../src/tokenizers/format.js';
import { readTokenFile } from '../../src/tokenizers/token-file.js';
import { tokenizeFiles } from '../../src/tokenizers/tokenize-files.js';
import { BpeTokenizer } from '../../src/tokenizers/tokenizer.js';
import { seededRandom } from '../../src/tokenizers/bpe.js';
import { loadAnyTokenizer } from '../../src/tokenizers/load-any.js';
import { gpt2Dir, haveData, shakespearePath } from './fixtures.js';

const skip = !haveData && 'needs ../shared/data (Tiny Shakespeare, GPT-2 tokenizer)';

function setup(): { dir: string; input: string; text: string; bpe: string; bpeTok: BpeTokenizer } {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-bpe-dropout-'));
  const text = readFileSync(shakespearePath, 'utf8').slice(0, 60_000);
  const input = join(dir, 'in.txt');
  writeFileSync(input, text);
  const counts = new Map<string, number>();
  countPreTokens(text, counts);
  const bpeTok = trainBpe(counts, { vocabSize: 400 });
  const bpe = join(dir, 'bpe.json');
  saveTokenizer(bpeTok, bpe);
  return { dir, input, text, bpe, bpeTok };
}

test('tokenize --dropout 0 is bit-identical to plain tokenizing (trained BPE and GPT-2)', { skip }, async () => {
  const { dir, input, bpe } = setup();
  try {
    for (const tokenizerPath of [bpe, gpt2Dir]) {
      const plain = await tokenizeFiles({ tokenizerPath, inputs: [input], outDir: join(dir, 'plain'), valFraction: 0.1, workers: 0 });
      const zero = await tokenizeFiles({ tokenizerPath, inputs: [input], outDir: join(dir, 'zero'), valFraction: 0.1, workers: 0, dropout: 0 });
      for (const split of ['train', 'val'] as const) assert.ok(readFileSync(plain[split].path).equals(readFileSync(zero[split].path)), `${tokenizerPath} ${split}.bin`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the dropout merge loop with (almost) no dropout reproduces the deterministic encoder (trained BPE and GPT-2)', { skip }, () => {
  const { dir, text, bpeTok } = setup();
  try {
    // p = 1e-12 takes the dropout path (mergeDropout) but never drops a merge: its ids must equal plain BPE's.
    for (const tok of [bpeTok, loadAnyTokenizer(gpt2Dir) as BpeTokenizer]) {
      assert.deepEqual(tok.encode(text, { dropout: 1e-12, random: seededRandom(1) }), tok.encode(text));
      const sampled = tok.encode(text, { dropout: 0.1, random: seededRandom(1) });
      assert.notDeepEqual(sampled, tok.encode(text));
      assert.equal(tok.decode(sampled), text);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tokenize --dropout 0.1 --dropout-copies 3: three sampled segmentations of the train text, val deterministic, reproducible', { skip }, async () => {
  const { dir, input, text, bpe, bpeTok } = setup();
  try {
    const plain = await tokenizeFiles({ tokenizerPath: bpe, inputs: [input], outDir: join(dir, 'plain'), valFraction: 0.1, separator: '' });
    const opts = { tokenizerPath: bpe, inputs: [input], valFraction: 0.1, separator: '', dropout: 0.1, dropoutCopies: 3, dropoutSeed: 7, chunkChars: 100_000 };
    const a = await tokenizeFiles({ ...opts, outDir: join(dir, 'a') });
    const b = await tokenizeFiles({ ...opts, outDir: join(dir, 'b') });
    const c = await tokenizeFiles({ ...opts, outDir: join(dir, 'c'), dropoutSeed: 8 });
    assert.ok(readFileSync(a.train.path).equals(readFileSync(b.train.path)), 'same seed, same shards');
    assert.ok(!readFileSync(a.train.path).equals(readFileSync(c.train.path)), 'another seed, other segmentations');
    assert.ok(readFileSync(a.val.path).equals(readFileSync(plain.val.path)), 'val.bin is the deterministic encoding');
    const ids = readTokenFile(a.train.path);
    const trainText = bpeTok.decode(readTokenFile(plain.train.path));
    assert.equal(bpeTok.decode(ids), trainText.repeat(3), 'one chunk here: the three copies decode to the train text each');
    // Dropout lengthens segmentations by a few to tens of percent at p = 0.1.
    const ratio = ids.length / (3 * plain.train.tokens);
    assert.ok(ratio > 1.02 && ratio < 1.6, `tokens per copy / plain: ${ratio}`);
    // With a separator token (GPT-2's <|endoftext|>), it marks where each copy restarts the text.
    const g = await tokenizeFiles({ tokenizerPath: gpt2Dir, inputs: [input], outDir: join(dir, 'g'), valFraction: 0, dropout: 0.1, dropoutCopies: 2, chunkChars: 100_000 });
    const gIds = readTokenFile(g.train.path);
    assert.equal(Array.from(gIds).filter((t) => t === 50256).length, 2);
    assert.equal(gIds[gIds.length - 1], 50256);
    const gpt2 = loadAnyTokenizer(gpt2Dir);
    assert.equal(gpt2.decode(gIds), `${text}<|endoftext|>${text}<|endoftext|>`);
    const meta = JSON.parse(readFileSync(join(dir, 'a', 'meta.json'), 'utf8')) as { bpe_dropout?: unknown };
    assert.deepEqual(meta.bpe_dropout, { p: 0.1, copies: 3, seed: 7 });
    assert.ok(text.length > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tokenize --dropout: unigram tokenizers and copies without dropout are refused', { skip }, async () => {
  const { dir, input, text, bpe } = setup();
  try {
    const counts = new Map<string, number>();
    countUnigramWords(text, counts);
    const uni = join(dir, 'uni.json');
    saveTokenizer(trainUnigram(counts, { vocabSize: 400 }), uni);
    await assert.rejects(tokenizeFiles({ tokenizerPath: uni, inputs: [input], outDir: join(dir, 'u'), dropout: 0.1 }), /unigram tokenizer; BPE-dropout needs a byte-level BPE/);
    await assert.rejects(tokenizeFiles({ tokenizerPath: bpe, inputs: [input], outDir: join(dir, 'k'), dropoutCopies: 2 }), /--dropout-copies needs --dropout > 0/);
    await assert.rejects(tokenizeFiles({ tokenizerPath: bpe, inputs: [input], outDir: join(dir, 'p'), dropout: 1 }), /expected a probability in \[0, 1\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
