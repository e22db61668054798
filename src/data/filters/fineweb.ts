// FineWeb's extra quality rules (Penedo et al. 2024; datatrove FineWebQualityFilter defaults): fraction of lines
// ending in punctuation, fraction of short lines, characters in duplicated lines, and newlines per word.
import { KEEP, drop } from '../document.js';
import type { Document, DocumentFilter, FilterResult } from '../document.js';
import { analyse, findDuplicates } from '../text.js';

export interface FineWebConfig {
  /** Min fraction of lines that end with terminal punctuation. */
  linePunctThreshold: number | null;
  /** Documents whose lines all lack terminal punctuation are dropped even when the ratio is exactly 0. */
  linePunctExcludeZero: boolean;
  /** Max fraction of lines of at most shortLineLength characters. */
  shortLineThreshold: number | null;
  shortLineLength: number;
  /** Max fraction of characters (newlines excluded) in duplicated lines. */
  charDuplicatesRatio: number | null;
  /** Max ratio of newlines to words. */
  newLineRatio: number | null;
}

export const DEFAULT_FINEWEB: FineWebConfig = {
  linePunctThreshold: 0.12,
  linePunctExcludeZero: false,
  shortLineThreshold: 0.67,
  shortLineLength: 30,
  charDuplicatesRatio: 0.01,
  newLineRatio: 0.3,
};

const STOP_CHARS = ['.', '!', '?', '"', "'", '”', '’', ')', ':', ';'];

export class FineWebFilter implements DocumentFilter {
  readonly name = 'fineweb';
  constructor(private readonly c: FineWebConfig = DEFAULT_FINEWEB) {}

  apply(doc: Document): FilterResult {
    const c = this.c;
    const a = analyse(doc.text);
    const lines = a.lines.map((l) => l.trim()).filter((l) => l !== '');
    if (lines.length === 0) return drop('fineweb_empty');
    if (c.linePunctThreshold !== null) {
      const r = lines.filter((l) => STOP_CHARS.some((s) => l.endsWith(s))).length / lines.length;
      if (r < c.linePunctThreshold && !(r === 0 && c.linePunctExcludeZero)) return drop('fineweb_line_punct_ratio', r);
    }
    if (c.shortLineThreshold !== null) {
      const r = lines.filter((l) => l.length <= c.shortLineLength).length / lines.length;
      if (r > c.shortLineThreshold) return drop('fineweb_short_line_ratio', r);
    }
    if (c.charDuplicatesRatio !== null) {
      const chars = Math.max(doc.text.replace(/\n/g, '').length, 1);
      const r = findDuplicates(lines).dupChars / chars;
      if (r > c.charDuplicatesRatio) return drop('fineweb_char_dup_ratio', r);
    }
    if (c.newLineRatio !== null) {
      const newlines = (doc.text.match(/\n/g) ?? []).length;
      const r = newlines / Math.max(a.words.length, 1);
      if (r > c.newLineRatio) return drop('fineweb_newline_ratio', r);
    }
    return KEEP;
  }
}
