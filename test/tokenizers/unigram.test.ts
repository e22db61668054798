// Unigram LM tokenizer: Viterbi against brute force, sampling distribution, byte fallback, NFKC, and the trainer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { seededRandom } from '../../src/tokenizers/bpe.js';
import { normalizeText } from '../../src/tokenizers/normalize.js';
import { UnigramTokenizer, byteToken } from '../../src/tokenizers/unigram.js';
import type { UnigramPiece } from '../../src/tokenizers/unigram.js';
import { countUnigramWords, trainUnigram } from '../../src/tokenizers/unigram-trainer.js';
import { haveData, shakespearePath } from './fixtures.js';

const skip = haveData ? false : 'shared data not found (set LMFORGE_DATA)';

function small(): UnigramTokenizer {
  const pieces: UnigramPiece[] = [{ piece: '<unk>', score: 0 }];
  for (let b = 0; b < 256; b++) pieces.push({ piece: byteToken(b), score: 0 });
  const words: Array<[string, number]> = [['▁', -3], ['a', -2], ['b', -2.5], ['ab', -3], ['▁a', -2.2], ['▁ab', -4.5], ['ba', -3.1], ['aba', -4], ['c', -5]];
  for (const [piece, score] of words) pieces.push({ piece, score });
  return new UnigramTokenizer({ pieces, unkId: 0, byteFallback: true });
}

/** All segmentations of s into pieces of the tokenizer, with their log-probabilities. */
function segmentations(tok: UnigramTokenizer, s: string): Array<{ ids: number[]; logp: number }> {
  const byPiece = new Map(tok.pieces.map((p, i) => [p.piece, i]));
  const out: Array<{ ids: number[]; logp: number }> = [];
  const rec = (at: number, ids: number[], logp: number): void => {
    if (at === s.length) out.push({ ids: [...ids], logp });
    for (let end = at + 1; end <= s.length; end++) {
      const id = byPiece.get(s.slice(at, end));
      if (id !== undefined && id > 256) rec(end, [...ids, id], logp + (tok.pieces[id] as UnigramPiece).score);
    }
  };
  rec(0, [], 0);
  return out;
}

test('Viterbi finds the most likely segmentation (brute force check)', () => {
  const tok = small();
  for (const text of ['ab', 'abab', 'aba ba', 'bab abba', 'cab ababab', 'a b c']) {
    let expected: number[] = [];
    for (const word of tok.normalize(text).split(/(?=▁)/u)) {
      const all = segmentations(tok, word).sort((x, y) => y.logp - x.logp);
      expected = expected.concat((all[0] as { ids: number[] }).ids);
    }
    assert.deepEqual(tok.encode(text), expected, text);
    assert.equal(tok.decode(tok.encode(text)), text);
  }
});

test('sampling draws segmentations with probability ∝ P(seg)^alpha and always decodes to the text', () => {
  const tok = small();
  const word = '▁ababa';
  const all = segmentations(tok, word);
  const alpha = 0.5;
  const z = all.reduce((a, s) => a + Math.exp(alpha * s.logp), 0);
  const counts = new Map<string, number>();
  const random = seededRandom(11);
  const draws = 20000;
  for (let i = 0; i < draws; i++) {
    const ids = tok.encode('ababa', { sample: { alpha, random } });
    assert.equal(tok.decode(ids), 'ababa');
    counts.set(ids.join(','), (counts.get(ids.join(',')) ?? 0) + 1);
  }
  for (const s of all) {
    const p = Math.exp(alpha * s.logp) / z;
    const observed = (counts.get(s.ids.join(',')) ?? 0) / draws;
    assert.ok(Math.abs(observed - p) < 4 * Math.sqrt((p * (1 - p)) / draws) + 1e-3, `segmentation ${s.ids}: expected ${p}, observed ${observed}`);
  }
});

test('byte fallback encodes unknown characters as UTF-8 bytes and decodes them back', () => {
  const tok = small();
  const ids = tok.encode('ab 😀 é');
  assert.ok(ids.includes(1 + 0xf0));
  assert.equal(tok.decode(ids), 'ab 😀 é');
  const noFallback = new UnigramTokenizer({ pieces: tok.pieces.filter((_, i) => i === 0 || i > 256), unkId: 0, byteFallback: false });
  assert.ok(noFallback.encode('a😀').includes(0));
});

test('normalisation: NFKC, collapsed whitespace, ▁ with a dummy prefix', () => {
  assert.equal(normalizeText('  ﬁne\t\tday  ①\n'), '▁fine▁day▁1');
  assert.equal(normalizeText('a  b', { removeExtraWhitespaces: false, addDummyPrefix: false }), 'a▁▁b');
  assert.equal(normalizeText(''), '');
});

test('trainer: exact vocabulary size, reasonable compression, lossless on normalised held-out text', { skip }, () => {
  const text = readFileSync(shakespearePath, 'utf8');
  const counts = new Map<string, number>();
  countUnigramWords(text.slice(0, 300_000), counts);
  const tok = trainUnigram(counts, { vocabSize: 1500, specialTokens: ['<s>', '</s>'] });
  assert.equal(tok.vocabSize, 1500);
  assert.equal(tok.specialTokens.get('</s>'), 2);
  const held = text.slice(1_000_000, 1_030_000);
  let tokens = 0;
  for (const line of held.split('\n')) {
    const ids = tok.encode(line);
    tokens += ids.length;
    assert.equal(tok.decode(ids), line.replace(/\s+/g, ' ').trim());
  }
  const perByte = tokens / Buffer.byteLength(held);
  assert.ok(perByte < 0.5 && perByte > 0.15, `tokens per byte ${perByte}`);
  assert.equal(tok.decode(tok.encode('Zürich 東京 🎉')), 'Zürich 東京 🎉'); // unseen characters via byte fallback
  assert.throws(() => trainUnigram(counts, { vocabSize: 100 }), /vocabSize must be an integer > 257/);
});

test('unigram encoding never throws on random text and decodes to its normalised form', () => {
  const tok = small();
  const rnd = seededRandom(9);
  for (let trial = 0; trial < 300; trial++) {
    let s = '';
    const n = Math.floor(rnd() * 30);
    for (let i = 0; i < n; i++) s += rnd() < 0.5 ? 'ab '[Math.floor(rnd() * 3)] : String.fromCharCode(Math.floor(rnd() * 0x10000));
    const ids = tok.encode(s);
    const expected = normalizeText(s).replaceAll('▁', ' ').slice(1);
    assert.equal(tok.decode(ids), expected);
    assert.equal(tok.decode(tok.encode(s, { sample: { alpha: 0.3, random: rnd } })), expected);
  }
});

test('special tokens in text: plain text by default, their ids when allowed', () => {
  const base = small();
  const pieces = [...base.pieces, { piece: '<sep>', score: 0 }];
  const tok = new UnigramTokenizer({ pieces, unkId: 0, byteFallback: true, specialTokens: new Map([['<sep>', pieces.length - 1]]) });
  const sep = pieces.length - 1;
  assert.ok(!tok.encode('ab<sep>ba').includes(sep));
  const ids = tok.encode('ab<sep>ba', { allowSpecial: true });
  assert.deepEqual(ids, [...tok.encode('ab'), sep, ...tok.encode('ba')]);
});
