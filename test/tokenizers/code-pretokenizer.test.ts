// The code-aware pre-tokenisation pattern (`pattern: code`): its pieces on Python source, lossless splitting, chunk
// invariance at the cut points the encoders use, and a BPE trained with it that round-trips through both file formats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePattern, splitText } from '../../src/tokenizers/patterns.js';
import { countPreTokens, trainBpe } from '../../src/tokenizers/bpe-trainer.js';
import { BpeTokenizer } from '../../src/tokenizers/bpe.js';
import { parseTokenizer, serializeTokenizer } from '../../src/tokenizers/format.js';
import { exportHfTokenizer, parseHfTokenizer } from '../../src/tokenizers/hf.js';
import { safeCut } from '../../src/tokenizers/parallel.js';

const SRC = [
  'class Foo(Base):',
  '    def bar_baz(self, x=10):',
  '        if x >= 0x1F:  ',
  '',
  '            return self._cache[x] ** 2',
  '\treturn """doc"""',
  'π_value = 3.14159',
  '',
].join('\n');

test('code pattern: newline + indentation runs, whole identifiers, operators, numbers with their space', () => {
  const pieces = splitText(SRC, compilePattern('code'));
  assert.equal(pieces.join(''), SRC);
  assert.deepEqual(pieces.slice(0, 7), ['class', ' Foo', '(', 'Base', '):', '\n    ', 'def']);
  assert.ok(pieces.includes(' bar_baz') && pieces.includes('_cache') && pieces.includes('π_value'), 'identifiers with "_" stay whole');
  assert.ok(pieces.includes('\n        ') && pieces.includes('\n\t') && pieces.includes('return'), 'a newline and the whole indentation run are one piece');
  assert.ok(pieces.includes('  \n\n            '), 'trailing spaces and blank lines join the next line\'s indentation');
  assert.ok(pieces.includes(' >=') && pieces.includes(' **') && pieces.includes(' """'), 'operators keep their leading space');
  assert.ok(pieces.includes(' 2') && pieces.includes(' 3') && pieces.includes('141') && pieces.includes('59'), 'numbers: ≤ 3 digits, leading space');
  // Spaces inside a line are never taken for indentation.
  assert.deepEqual(splitText('a  = 1', compilePattern('code')), ['a', ' ', ' =', ' 1']);
});

test('code pattern: splitting chunks cut at safeCut points equals splitting the whole', () => {
  const re = compilePattern('code');
  const text = SRC.repeat(20);
  const whole = splitText(text, re);
  const parts: string[] = [];
  let rest = text;
  while (rest.length > 400) {
    const cut = safeCut(rest, 400);
    assert.ok(cut > 0);
    parts.push(...splitText(rest.slice(0, cut), re));
    rest = rest.slice(cut);
  }
  parts.push(...splitText(rest, re));
  assert.deepEqual(parts, whole);
});

test('a BPE trained with pattern "code" learns indentation tokens and survives both file formats', () => {
  const counts = new Map<string, number>();
  for (let i = 0; i < 30; i++) countPreTokens(SRC.replace(/Foo/g, `Foo${i}`), counts, 'code');
  const tok = trainBpe(counts, { vocabSize: 300, pattern: 'code', specialTokens: ['<|endoftext|>'] });
  assert.equal(tok.pattern, 'code');
  const eightSpaces = [...Array(tok.vocabSize).keys()].some((id) => Buffer.from(tok.tokenBytes(id)).toString('latin1') === '\n' + ' '.repeat(8));
  assert.ok(eightSpaces, 'a newline + 8-space indentation token was merged');
  const ids = tok.encode(SRC);
  assert.equal(tok.decode(ids), SRC);
  const again = parseTokenizer(serializeTokenizer(tok)) as BpeTokenizer;
  assert.equal(again.pattern, 'code');
  assert.deepEqual(again.encode(SRC), ids);
  const hf = parseHfTokenizer(JSON.stringify(exportHfTokenizer(tok))) as BpeTokenizer;
  assert.equal(hf.pattern, 'code');
  assert.deepEqual(hf.encode(SRC), ids);
});
