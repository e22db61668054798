// A tokenizer file that gives a merge, a rank, a token id, a token's bytes or a special id twice is refused in every
// format with a UserError naming the file and the entry (a silent "last one wins" would change ids).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTokenizer } from '../../src/tokenizers/format.js';
import { parseHfTokenizer } from '../../src/tokenizers/hf.js';
import { parseGpt2Files, parseTiktokenNpmJson, parseTiktokenRanks } from '../../src/tokenizers/loaders.js';
import { UserError } from '../../src/util/errors.js';
import { tinyFiles } from './tiny-files.js';

const refuses = (fn: () => unknown, pattern: RegExp, what: string): void => {
  assert.throws(fn, (e: Error) => e instanceof UserError && pattern.test(e.message), what);
};

test('the tiny seed files load in every format', () => {
  const f = tinyFiles();
  assert.equal(parseTokenizer(f.lmforge, 'a.json').vocabSize, 260);
  assert.equal(parseTokenizer(f.unigram, 'u.json').vocabSize, 5);
  assert.equal(parseHfTokenizer(f.hf, 'tokenizer.json').vocabSize, 260);
  assert.equal(parseTiktokenRanks(f.tiktoken, 'r.tiktoken').length, 259);
  assert.equal(parseTiktokenNpmJson(f.npmJson, 'n.json').tokens.length, 259);
  assert.equal(parseGpt2Files(f.gpt2Encoder, f.gpt2Merges).merges.length, 3);
});

test('duplicated merges, ranks, ids, token bytes and special ids are refused naming the file and entry', () => {
  const f = tinyFiles();
  const lmf = JSON.parse(f.lmforge) as { tokens: (string | null)[]; merges: number[]; specialTokens: Record<string, number> };
  refuses(() => parseTokenizer(JSON.stringify({ ...lmf, merges: [...lmf.merges, ...lmf.merges.slice(0, 4)] }), 'a.json'), /^a\.json: field "merges\[3\]": the pair \(116, 104\) is merged twice/, 'lmforge merge');
  refuses(() => parseTokenizer(JSON.stringify({ ...lmf, tokens: [...lmf.tokens, lmf.tokens[65]] }), 'a.json'), /^a\.json: field "tokens\[259\]": token id 259 repeats the bytes of token id 65/, 'lmforge token');
  refuses(() => parseTokenizer(JSON.stringify({ ...lmf, specialTokens: { x: 259, y: 259 } }), 'a.json'), /^a\.json: field "specialTokens": id 259 is given to both "x" and "y"/, 'lmforge special');
  const uni = JSON.parse(f.unigram) as { pieces: unknown[] };
  refuses(() => parseTokenizer(JSON.stringify({ ...uni, pieces: [...uni.pieces, uni.pieces[1]] }), 'u.json'), /^u\.json: field "pieces\[5\]": piece "▁a" repeats piece 1/, 'unigram piece');

  const hf = JSON.parse(f.hf) as { model: { merges: unknown[]; vocab: Record<string, number> }; added_tokens: unknown[] };
  refuses(() => parseHfTokenizer(JSON.stringify({ ...hf, model: { ...hf.model, merges: [...hf.model.merges, hf.model.merges[0]] } }), 't.json'), /^t\.json: field "model\.merges\[3\]": .* merged twice/, 'hf merge');
  refuses(() => parseHfTokenizer(JSON.stringify({ ...hf, model: { ...hf.model, vocab: { ...hf.model.vocab, zz: 65 } } }), 't.json'), /^t\.json: field "model\.vocab\["zz"\]": id 65 is used twice/, 'hf id');
  refuses(() => parseHfTokenizer(JSON.stringify({ ...hf, added_tokens: [...hf.added_tokens, hf.added_tokens[0]] }), 't.json'), /^t\.json: field "added_tokens\[1\]": token "<\|endoftext\|>" is added twice/, 'hf added');

  const lines = f.tiktoken.trim().split('\n');
  refuses(() => parseTiktokenRanks([...lines, lines[3]].join('\n'), 'r.tiktoken'), /^r\.tiktoken:260: rank 3 appears twice \(first on line 4\)/, 'tiktoken rank');
  refuses(() => parseTiktokenRanks([...lines, `${lines[3]!.split(' ')[0]} 300`].join('\n'), 'r.tiktoken'), /^r\.tiktoken: line 260: token id 300 repeats the bytes of token id 3/, 'tiktoken bytes');
  const npm = JSON.parse(f.npmJson) as { bpe_ranks: string };
  refuses(() => parseTiktokenNpmJson(JSON.stringify({ ...npm, bpe_ranks: `${npm.bpe_ranks}\n! 5 QQ==` }), 'n.json'), /^n\.json: field "bpe_ranks" line 3: rank 5 is given twice/, 'npm rank');
  refuses(() => parseTiktokenNpmJson(JSON.stringify({ ...npm, bpe_ranks: `${npm.bpe_ranks}\n! 300 QQ==` }), 'n.json'), /^n\.json: field "bpe_ranks" rank 300: token id 300 repeats the bytes of token id 65/, 'npm bytes');

  const merges = f.gpt2Merges.trim().split('\n');
  refuses(() => parseGpt2Files(f.gpt2Encoder, [...merges, merges[1]].join('\n'), { encoder: 'encoder.json', merges: 'vocab.bpe' }), /^vocab\.bpe: line 5: the pair .* is merged twice/, 'gpt2 merge');
  const enc = JSON.parse(f.gpt2Encoder) as Record<string, number>;
  refuses(() => parseGpt2Files(JSON.stringify({ ...enc, zz: 65 }), f.gpt2Merges, { encoder: 'encoder.json', merges: 'vocab.bpe' }), /^encoder\.json: field "zz": id 65 is used twice/, 'gpt2 id');
});
