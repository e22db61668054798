// Gopher heuristic filters (Rae et al. 2021, "Scaling Language Models", appendix A) with datatrove's defaults:
// the quality rules and the repetition rules. Each threshold can be changed, or set to null to turn the rule off.
import { KEEP, drop } from '../document.js';
import type { Document, DocumentFilter, FilterResult } from '../document.js';
import { NgramHasher, analyse, duplicatedNgramChars, findDuplicates, hasLetter, topNgramChars, totalChars } from '../text.js';

export interface GopherQualityConfig {
  minDocWords: number | null;
  maxDocWords: number | null;
  minAvgWordLength: number | null;
  maxAvgWordLength: number | null;
  /** Max ratio of '#' characters to words, and of ellipses ("..." or "…") to words. */
  maxSymbolWordRatio: number | null;
  /** Max fraction of lines that start with a bullet. */
  maxBulletLinesRatio: number | null;
  /** Max fraction of lines that end with an ellipsis. */
  maxEllipsisLinesRatio: number | null;
  /** Min fraction of words that contain at least one letter. */
  minAlphaWordsRatio: number | null;
  /** Min number of occurrences of the stop words below (Gopher: at least two of the, be, to, of, and, that, have, with). */
  minStopWords: number | null;
  stopWords: string[];
}

export const DEFAULT_GOPHER_QUALITY: GopherQualityConfig = {
  minDocWords: 50,
  maxDocWords: 100_000,
  minAvgWordLength: 3,
  maxAvgWordLength: 10,
  maxSymbolWordRatio: 0.1,
  maxBulletLinesRatio: 0.9,
  maxEllipsisLinesRatio: 0.3,
  minAlphaWordsRatio: 0.8,
  minStopWords: 2,
  stopWords: ['the', 'be', 'to', 'of', 'and', 'that', 'have', 'with'],
};

const BULLET_RE = /^\s*[•●○◦▪▫‣⁃∙\-*–]/u;
const ELLIPSIS_END_RE = /(\.\.\.|…)\s*$/u;

function countOccurrences(text: string, needle: string): number {
  let n = 0;
  for (let i = text.indexOf(needle); i !== -1; i = text.indexOf(needle, i + needle.length)) n++;
  return n;
}

export class GopherQualityFilter implements DocumentFilter {
  readonly name = 'gopher_quality';
  private readonly stopWords: Set<string>;

  constructor(private readonly c: GopherQualityConfig = DEFAULT_GOPHER_QUALITY) {
    this.stopWords = new Set(c.stopWords);
  }

  apply(doc: Document): FilterResult {
    const c = this.c;
    const a = analyse(doc.text);
    const words = a.words;
    const n = words.length;
    if (c.minDocWords !== null && n < c.minDocWords) return drop('gopher_short_doc', n);
    if (c.maxDocWords !== null && n > c.maxDocWords) return drop('gopher_long_doc', n);
    const avg = n === 0 ? 0 : totalChars(words) / n;
    if (c.minAvgWordLength !== null && avg < c.minAvgWordLength) return drop('gopher_below_avg_word_length', avg);
    if (c.maxAvgWordLength !== null && avg > c.maxAvgWordLength) return drop('gopher_above_avg_word_length', avg);
    if (c.maxSymbolWordRatio !== null) {
      const hashes = countOccurrences(a.text, '#') / Math.max(n, 1);
      if (hashes > c.maxSymbolWordRatio) return drop('gopher_too_many_hashes', hashes);
      const ell = (countOccurrences(a.text, '...') + countOccurrences(a.text, '…')) / Math.max(n, 1);
      if (ell > c.maxSymbolWordRatio) return drop('gopher_too_many_ellipsis', ell);
    }
    const lines = a.lines;
    if (c.maxBulletLinesRatio !== null) {
      const r = lines.filter((l) => BULLET_RE.test(l)).length / lines.length;
      if (r > c.maxBulletLinesRatio) return drop('gopher_too_many_bullets', r);
    }
    if (c.maxEllipsisLinesRatio !== null) {
      const r = lines.filter((l) => ELLIPSIS_END_RE.test(l)).length / lines.length;
      if (r > c.maxEllipsisLinesRatio) return drop('gopher_too_many_end_ellipsis', r);
    }
    if (c.minAlphaWordsRatio !== null) {
      let alpha = 0;
      for (const w of words) if (hasLetter(w)) alpha++;
      const r = alpha / Math.max(n, 1);
      if (r < c.minAlphaWordsRatio) return drop('gopher_below_alpha_threshold', r);
    }
    if (c.minStopWords !== null) {
      let stops = 0;
      for (const w of words) if (this.stopWords.has(w.toLowerCase())) stops++;
      if (stops < c.minStopWords) return drop('gopher_enough_stop_words', stops);
    }
    return KEEP;
  }
}

export interface GopherRepetitionConfig {
  dupLineFrac: number | null;
  dupParaFrac: number | null;
  dupLineCharFrac: number | null;
  dupParaCharFrac: number | null;
  /** [n, max fraction of characters in the most frequent n-gram]. */
  topNgrams: [number, number][];
  /** [n, max fraction of characters in duplicated n-grams]. */
  dupNgrams: [number, number][];
}

export const DEFAULT_GOPHER_REPETITION: GopherRepetitionConfig = {
  dupLineFrac: 0.3,
  dupParaFrac: 0.3,
  dupLineCharFrac: 0.2,
  dupParaCharFrac: 0.2,
  topNgrams: [
    [2, 0.2],
    [3, 0.18],
    [4, 0.16],
  ],
  dupNgrams: [
    [5, 0.15],
    [6, 0.14],
    [7, 0.13],
    [8, 0.12],
    [9, 0.11],
    [10, 0.1],
  ],
};

export class GopherRepetitionFilter implements DocumentFilter {
  readonly name = 'gopher_repetition';

  constructor(private readonly c: GopherRepetitionConfig = DEFAULT_GOPHER_REPETITION) {}

  apply(doc: Document): FilterResult {
    const c = this.c;
    const a = analyse(doc.text);
    const textLen = Math.max(a.text.length, 1);
    const paras = a.paragraphs.map((p) => p.trim()).filter((p) => p !== '');
    if (paras.length > 0) {
      const d = findDuplicates(paras);
      if (c.dupParaFrac !== null && d.dupElements / paras.length > c.dupParaFrac) {
        return drop('dup_para_frac', d.dupElements / paras.length);
      }
      if (c.dupParaCharFrac !== null && d.dupChars / textLen > c.dupParaCharFrac) {
        return drop('dup_para_char_frac', d.dupChars / textLen);
      }
    }
    const lines = a.lines.map((l) => l.trim()).filter((l) => l !== '');
    if (lines.length > 0) {
      const d = findDuplicates(lines);
      if (c.dupLineFrac !== null && d.dupElements / lines.length > c.dupLineFrac) {
        return drop('dup_line_frac', d.dupElements / lines.length);
      }
      if (c.dupLineCharFrac !== null && d.dupChars / textLen > c.dupLineCharFrac) {
        return drop('dup_line_char_frac', d.dupChars / textLen);
      }
    }
    const words = a.words;
    const wordChars = Math.max(totalChars(words), 1);
    // Rules checked in order of n, growing one set of rolling n-gram hashes.
    const rules = [
      ...c.topNgrams.map(([n, thr]) => ({ n, thr, top: true })),
      ...c.dupNgrams.map(([n, thr]) => ({ n, thr, top: false })),
    ].sort((x, y) => x.n - y.n || Number(y.top) - Number(x.top));
    const h = new NgramHasher(words);
    let at = 0;
    for (const r of rules) {
      while (at < r.n) at = h.grow();
      const f = (r.top ? topNgramChars(h, r.n) : duplicatedNgramChars(h, r.n)) / wordChars;
      if (f > r.thr) return drop(r.top ? `top_${r.n}_gram` : `duplicated_${r.n}_n_grams`, f);
    }
    return KEEP;
  }
}
