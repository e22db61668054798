// C4 rules (Raffel et al. 2020, as in datatrove's C4QualityFilter): a line-level pass that drops lines without
// terminal punctuation, with too few words, with over-long words, mentioning javascript or site policies, and
// removes citation marks; then document-level drops (lorem ipsum, curly brackets, too few sentences).
import { KEEP, drop } from '../document.js';
import type { Document, DocumentFilter, FilterResult } from '../document.js';

export interface C4Config {
  removeCitations: boolean;
  filterNoTerminalPunct: boolean;
  minWordsPerLine: number | null;
  maxWordLength: number | null;
  filterJavascript: boolean;
  filterPolicy: boolean;
  filterLoremIpsum: boolean;
  filterCurlyBracket: boolean;
  minNumSentences: number | null;
}

export const DEFAULT_C4: C4Config = {
  removeCitations: true,
  filterNoTerminalPunct: true,
  minWordsPerLine: 3,
  maxWordLength: 1000,
  filterJavascript: true,
  filterPolicy: true,
  filterLoremIpsum: true,
  filterCurlyBracket: true,
  minNumSentences: 5,
};

const END_PUNCT = ['.', '?', '!', '"', "'", '”', '’'];
const ELLIPSIS = ['...', '…'];
const POLICY = ['terms of use', 'privacy policy', 'cookie policy', 'uses cookies', 'use of cookies', 'use cookies'];
const CITATION_RE = /\[\d*\]|\[edit\]|\[citation needed\]/gi;
// Sentence ends: terminal punctuation followed by space or end (a simple stand-in for a sentence tokenizer).
const SENTENCE_END_RE = /[.!?]+["'”’)]*(?=\s|$)/g;

/** Applies the C4 line rules, then the document rules; kept documents have their text rewritten in place. */
export class C4Filter implements DocumentFilter {
  readonly name = 'c4';
  constructor(private readonly c: C4Config = DEFAULT_C4) {}

  apply(doc: Document): FilterResult {
    const c = this.c;
    const lower = doc.text.toLowerCase();
    if (c.filterLoremIpsum && lower.includes('lorem ipsum')) return drop('c4_lorem_ipsum');
    if (c.filterCurlyBracket && doc.text.includes('{')) return drop('c4_curly_bracket');
    const kept: string[] = [];
    for (const raw of doc.text.split('\n')) {
      let line = raw.trim();
      if (line === '') continue;
      if (c.removeCitations) line = line.replace(CITATION_RE, '');
      const words = line.split(/\s+/);
      if (c.maxWordLength !== null && words.some((w) => w.length > c.maxWordLength!)) continue;
      if (c.filterNoTerminalPunct && (!END_PUNCT.some((p) => line.endsWith(p)) || ELLIPSIS.some((e) => line.endsWith(e)))) {
        continue;
      }
      if (c.minWordsPerLine !== null && words.length < c.minWordsPerLine) continue;
      const l = line.toLowerCase();
      if (c.filterJavascript && l.includes('javascript')) continue;
      if (c.filterPolicy && POLICY.some((p) => l.includes(p))) continue;
      kept.push(line);
    }
    const text = kept.join('\n');
    if (c.minNumSentences !== null) {
      const sentences = (text.match(SENTENCE_END_RE) ?? []).length;
      if (sentences < c.minNumSentences) return drop('c4_too_few_sentences', sentences);
    }
    if (text === '') return drop('c4_empty_after_line_filter');
    doc.text = text;
    return KEEP;
  }
}
