// Every heuristic rule at its published threshold: one document that just passes, one that just fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Document, DocumentFilter } from '../../src/data/document.js';
import { DEFAULT_GOPHER_QUALITY, DEFAULT_GOPHER_REPETITION, GopherQualityFilter, GopherRepetitionFilter } from '../../src/data/filters/gopher.js';
import type { GopherQualityConfig, GopherRepetitionConfig } from '../../src/data/filters/gopher.js';
import { C4Filter, DEFAULT_C4 } from '../../src/data/filters/c4.js';
import { DEFAULT_FINEWEB, FineWebFilter } from '../../src/data/filters/fineweb.js';
import type { FineWebConfig } from '../../src/data/filters/fineweb.js';
import { Cleaner, DEFAULT_CLEAN } from '../../src/data/clean.js';

const doc = (text: string): Document => ({ id: 't', text, metadata: {} });

/** n distinct 4-letter words (letters only, never stop words). */
function uniq(n: number, offset = 0): string[] {
  const out: string[] = [];
  for (let i = offset; i < offset + n; i++) {
    let x = i;
    let w = '';
    for (let k = 0; k < 4; k++) {
      w += String.fromCharCode(97 + (x % 26));
      x = Math.floor(x / 26);
    }
    out.push(w);
  }
  return out;
}

function expect(f: DocumentFilter, passText: string, failText: string, reason: string): void {
  assert.deepEqual(f.apply(doc(passText)), { keep: true }, `${reason}: the passing document was dropped`);
  const r = f.apply(doc(failText));
  assert.equal(r.keep, false, `${reason}: the failing document was kept`);
  if (!r.keep) assert.equal(r.reason, reason);
}

const noQuality: GopherQualityConfig = {
  ...DEFAULT_GOPHER_QUALITY,
  minDocWords: null,
  maxDocWords: null,
  minAvgWordLength: null,
  maxAvgWordLength: null,
  maxSymbolWordRatio: null,
  maxBulletLinesRatio: null,
  maxEllipsisLinesRatio: null,
  minAlphaWordsRatio: null,
  minStopWords: null,
};
const quality = (c: Partial<GopherQualityConfig>): GopherQualityFilter => new GopherQualityFilter({ ...noQuality, ...c });

test('Gopher quality: word count 50..100,000', () => {
  const f = quality({ minDocWords: 50, maxDocWords: 100_000 });
  expect(f, uniq(50).join(' '), uniq(49).join(' '), 'gopher_short_doc');
  expect(f, uniq(100_000).join(' '), uniq(100_001).join(' '), 'gopher_long_doc');
  // Punctuation tokens are not words.
  assert.equal(f.apply(doc(uniq(49).join(' ') + ' , . !')).keep, false);
});

test('Gopher quality: mean word length 3..10', () => {
  const f = quality({ minAvgWordLength: 3, maxAvgWordLength: 10 });
  const cat = Array<string>(50).fill('cat');
  expect(f, cat.join(' '), [...cat.slice(1), 'at'].join(' '), 'gopher_below_avg_word_length');
  const ten = Array<string>(50).fill('abcdefghij');
  expect(f, ten.join(' '), [...ten.slice(1), 'abcdefghijk'].join(' '), 'gopher_above_avg_word_length');
});

test('Gopher quality: hash and ellipsis to word ratios <= 0.1', () => {
  const f = quality({ maxSymbolWordRatio: 0.1 });
  const w = uniq(50).join(' ');
  expect(f, w + ' #'.repeat(5), w + ' #'.repeat(6), 'gopher_too_many_hashes');
  expect(f, w + ' ...'.repeat(4) + ' …', w + ' ...'.repeat(5) + ' …', 'gopher_too_many_ellipsis');
});

test('Gopher quality: bullet lines <= 0.9 and ellipsis-ending lines <= 0.3', () => {
  const f = quality({ maxBulletLinesRatio: 0.9, maxEllipsisLinesRatio: 0.3 });
  const line = (i: number): string => uniq(5, i * 5).join(' ');
  const lines = (make: (i: number) => string): string => Array.from({ length: 10 }, (_, i) => make(i)).join('\n');
  expect(f, lines((i) => (i < 9 ? '• ' : '') + line(i)), lines((i) => '- ' + line(i)), 'gopher_too_many_bullets');
  expect(f, lines((i) => line(i) + (i < 3 ? '...' : '.')), lines((i) => line(i) + (i < 4 ? '…' : '.')), 'gopher_too_many_end_ellipsis');
});

test('Gopher quality: >= 80% of words contain a letter', () => {
  const f = quality({ minAlphaWordsRatio: 0.8 });
  const nums = (k: number): string[] => Array.from({ length: k }, (_, i) => String(100 + i));
  expect(f, [...uniq(40), ...nums(10)].join(' '), [...uniq(39), ...nums(11)].join(' '), 'gopher_below_alpha_threshold');
});

test('Gopher quality: at least 2 stop words', () => {
  const f = quality({ minStopWords: 2 });
  expect(f, [...uniq(20), 'The', 'and'].join(' '), [...uniq(20), 'the'].join(' '), 'gopher_enough_stop_words');
  assert.equal(new GopherQualityFilter().apply(doc('Too short.')).keep, false);
});

const noRep: GopherRepetitionConfig = {
  dupLineFrac: null,
  dupParaFrac: null,
  dupLineCharFrac: null,
  dupParaCharFrac: null,
  topNgrams: [],
  dupNgrams: [],
};
const rep = (c: Partial<GopherRepetitionConfig>): GopherRepetitionFilter => new GopherRepetitionFilter({ ...noRep, ...c });

test('Gopher repetition: duplicate paragraph and line fractions <= 0.3', () => {
  const units = (sep: string, dups: number): string =>
    [...uniq(10 - dups), ...Array<string>(dups).fill('same')].join(sep);
  // 10 elements: 'same' k times gives k-1 duplicates.
  expect(rep({ dupParaFrac: 0.3 }), units('\n\n', 4), units('\n\n', 5), 'dup_para_frac');
  expect(rep({ dupLineFrac: 0.3 }), units('\n', 4), units('\n', 5), 'dup_line_frac');
});

test('Gopher repetition: duplicate paragraph and line character fractions <= 0.2', () => {
  const p = 'x'.repeat(20);
  // Total length 100 with 20 duplicated characters is exactly 0.2; one character less tips it over.
  const make = (sep: string, fill: number): string => [p, p, 'y'.repeat(fill)].join(sep);
  expect(rep({ dupParaCharFrac: 0.2 }), make('\n\n', 56), make('\n\n', 55), 'dup_para_char_frac');
  expect(rep({ dupLineCharFrac: 0.2 }), make('\n', 58), make('\n', 57), 'dup_line_char_frac');
});

test('Gopher repetition: top n-gram character fractions (2: 0.2, 3: 0.18, 4: 0.16)', () => {
  for (const [n, thr] of DEFAULT_GOPHER_REPETITION.topNgrams) {
    // Two occurrences of one n-gram of 4-letter words among W words: fraction 2n/W.
    const build = (W: number): string => {
      const gram = uniq(n, 10_000);
      const rest = uniq(W - 2 * n);
      return [...gram, ...rest.slice(0, 1), ...gram, ...rest.slice(1)].join(' ');
    };
    const W = Math.ceil((2 * n) / thr);
    expect(rep({ topNgrams: [[n, thr]] }), build(W), build(W - 1), `top_${n}_gram`);
  }
});

test('Gopher repetition: duplicated n-gram character fractions (5: 0.15 ... 10: 0.10)', () => {
  for (const [n, thr] of DEFAULT_GOPHER_REPETITION.dupNgrams) {
    // One repeat of an n-word block among W words: n duplicated words of W, fraction n/W.
    const build = (W: number): string => {
      const block = uniq(n, 10_000);
      const rest = uniq(W - 2 * n);
      return [...block, ...rest.slice(0, 1), ...block, ...rest.slice(1)].join(' ');
    };
    const W = Math.ceil(n / thr);
    expect(rep({ dupNgrams: [[n, thr]] }), build(W), build(W - 1), `duplicated_${n}_n_grams`);
  }
});

test('C4: document rules (lorem ipsum, curly bracket, at least 5 sentences)', () => {
  const s = (k: number): string => Array.from({ length: k }, (_, i) => `This is sentence number ${uniq(1, i)[0]}.`).join(' ');
  const f = new C4Filter(DEFAULT_C4);
  expect(f, s(5), s(4), 'c4_too_few_sentences');
  expect(f, s(6), s(6) + ' Lorem ipsum dolor sit amet.', 'c4_lorem_ipsum');
  expect(f, s(6), s(6) + ' A {brace} here.', 'c4_curly_bracket');
});

test('C4: line rules (terminal punctuation, >= 3 words, word length <= 1000, javascript, policy, citations)', () => {
  const f = new C4Filter(DEFAULT_C4);
  const body = Array.from({ length: 5 }, (_, i) => `Good line number ${uniq(1, i)[0]}.`);
  const run = (extra: string): string => {
    const d = doc([...body, extra].join('\n'));
    assert.equal(f.apply(d).keep, true);
    return d.text;
  };
  assert.ok(run('Three words here.').includes('Three words here.'));
  assert.ok(!run('Two words.').includes('Two words.'));
  assert.ok(run('No full stop but ends with quote."').includes('No full stop'));
  assert.ok(!run('This line has no terminal punctuation').includes('no terminal'));
  assert.ok(!run('This line trails off...').includes('trails off'));
  assert.ok(run(`A ${'w'.repeat(1000)} word.`).includes('w'.repeat(1000)));
  assert.ok(!run(`A ${'w'.repeat(1001)} word.`).includes('w'.repeat(1001)));
  assert.ok(!run('Please enable JavaScript to view this.').includes('JavaScript'));
  assert.ok(!run('Read our privacy policy for details.').includes('privacy'));
  assert.ok(run('A claim with a citation[12] in it.').includes('A claim with a citation in it.'));
});

const noFw: FineWebConfig = {
  ...DEFAULT_FINEWEB,
  linePunctThreshold: null,
  shortLineThreshold: null,
  charDuplicatesRatio: null,
  newLineRatio: null,
};
const fw = (c: Partial<FineWebConfig>): FineWebFilter => new FineWebFilter({ ...noFw, ...c });

test('FineWeb: >= 12% of lines end in punctuation', () => {
  const lines = (k: number): string => uniq(100).map((w, i) => `${w} ${w} ${w}${i < k ? '.' : ''}`).join('\n');
  expect(fw({ linePunctThreshold: 0.12 }), lines(12), lines(11), 'fineweb_line_punct_ratio');
});

test('FineWeb: <= 67% of lines of at most 30 characters', () => {
  const short = 'a'.repeat(30);
  const long = 'b'.repeat(31);
  const lines = (k: number): string => Array.from({ length: 100 }, (_, i) => (i < k ? short + i : long + i).slice(0, i < k ? 30 : 40)).join('\n');
  expect(fw({ shortLineThreshold: 0.67 }), lines(67), lines(68), 'fineweb_short_line_ratio');
});

test('FineWeb: <= 1% of characters in duplicated lines', () => {
  const dup = 'z'.repeat(10);
  // Non-newline characters: 10 + 10 + fill; 10 duplicated.
  const make = (fill: number): string => [dup, dup, 'q'.repeat(fill)].join('\n');
  expect(fw({ charDuplicatesRatio: 0.01 }), make(980), make(979), 'fineweb_char_dup_ratio');
});

test('FineWeb: newlines per word <= 0.3', () => {
  const make = (newlines: number): string => {
    const w = uniq(10);
    return w.map((x, i) => x + (i < newlines ? '\n' : ' ')).join('');
  };
  expect(fw({ newLineRatio: 0.3 }), make(3), make(4), 'fineweb_newline_ratio');
});

test('Cleaner: normalisation, control characters, whitespace, boilerplate lines', () => {
  const c = new Cleaner(DEFAULT_CLEAN);
  const input = 'Cafe\u0301\u200b  is\t\topen.\r\n\u0007Line two  \n\n\n\nAccept cookies\nAll rights reserved 2024\n' +
    'This long line mentions cookies but it is real content about baking cookies at home with children today.';
  const out = c.cleanText(input);
  assert.equal(out, 'Café is open.\nLine two\n\nThis long line mentions cookies but it is real content about baking cookies at home with children today.');
  assert.equal(c.removedLines, 2);
  const nfkc = new Cleaner({ ...DEFAULT_CLEAN, normalization: 'NFKC', boilerplatePatterns: [] });
  assert.equal(nfkc.cleanText('ﬁne ①'), 'fine 1');
});
