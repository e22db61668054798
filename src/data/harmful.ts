// Harmful-content filter: counts matches of a configurable word/phrase list (whole words, case-insensitive,
// phrases as word sequences) and drops a document when the count or the matches-per-word ratio passes a threshold.
import { readFileSync } from 'node:fs';
import { KEEP, drop } from './document.js';
import type { Document, DocumentFilter, FilterResult } from './document.js';

export interface HarmfulConfig {
  /** Words or phrases, matched as whole lower-cased word sequences. */
  terms: string[];
  /** Optional file with one term per line ('#' starts a comment), added to `terms`. */
  termsFile?: string;
  /** Drop when at least this many matches occur (null: no count rule). */
  minMatches: number | null;
  /** Drop when matches / words is above this (null: no ratio rule). */
  maxMatchRatio: number | null;
}

export const DEFAULT_HARMFUL: HarmfulConfig = { terms: [], minMatches: 1, maxMatchRatio: null };

const WORD_RE = /[\p{L}\p{N}]+(?:['’][\p{L}]+)?/gu;

export function loadTerms(c: HarmfulConfig): string[] {
  const terms = [...c.terms];
  if (c.termsFile !== undefined) {
    const lines = readFileSync(c.termsFile, 'utf8').split('\n');
    for (const l of lines) {
      const t = l.replace(/#.*/, '').trim();
      if (t !== '') terms.push(t);
    }
  }
  return terms;
}

export class HarmfulContentFilter implements DocumentFilter {
  readonly name = 'harmful';
  private readonly phrases = new Set<string>();
  private readonly maxLen: number;

  constructor(private readonly c: HarmfulConfig) {
    let maxLen = 1;
    for (const t of loadTerms(c)) {
      const words = t.toLowerCase().match(WORD_RE) ?? [];
      if (words.length === 0) continue;
      this.phrases.add(words.join(' '));
      maxLen = Math.max(maxLen, words.length);
    }
    this.maxLen = maxLen;
  }

  /** Number of (possibly overlapping) term matches and the number of words. */
  count(text: string): { matches: number; words: number } {
    const words = text.toLowerCase().match(WORD_RE) ?? [];
    let matches = 0;
    if (this.phrases.size === 0) return { matches, words: words.length };
    for (let i = 0; i < words.length; i++) {
      let key = '';
      for (let n = 1; n <= this.maxLen && i + n <= words.length; n++) {
        key = n === 1 ? words[i]! : `${key} ${words[i + n - 1]!}`;
        if (this.phrases.has(key)) matches++;
      }
    }
    return { matches, words: words.length };
  }

  apply(doc: Document): FilterResult {
    const { matches, words } = this.count(doc.text);
    if (this.c.minMatches !== null && matches >= this.c.minMatches) return drop('harmful_term_count', matches);
    const ratio = matches / Math.max(words, 1);
    if (this.c.maxMatchRatio !== null && ratio > this.c.maxMatchRatio) return drop('harmful_term_ratio', ratio);
    return KEEP;
  }
}
