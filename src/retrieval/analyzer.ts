// The BM25 analyzer: text → index terms. NFKC, lowercase, tokens are maximal runs of Unicode letters, marks and
// digits (so "U.S." → "u", "s" and "state-of-the-art" → four tokens, as Lucene's StandardTokenizer does for most
// text), an optional English stopword list and an optional Porter stemmer. Not a subword tokenizer: the dense
// encoder uses the project's tokenizers (src/tokenizers) instead.
//
// Defaults follow Pyserini's English analyzer (Lucene's 33 stopwords + Porter): on XQuAD stemming lets "founded"
// match "founding" and "players" match "player", which SQuAD-style questions paraphrase that way all the time.
// The settings are stored in the index manifest, so queries are always analyzed as the documents were.
import { porterStem } from './porter.js';

export interface AnalyzerOptions {
  /** Drop Lucene's English stopwords ("the", "of", …). */
  stopwords: boolean;
  /** Porter-stem each token (after the stopword test). */
  stem: boolean;
}

export const DEFAULT_ANALYZER: AnalyzerOptions = { stopwords: true, stem: true };

/** Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (the 33 words Pyserini uses). */
export const ENGLISH_STOPWORDS: ReadonlySet<string> = new Set([
  'a', 'an', 'and', 'are', 'as', 'at', 'be', 'but', 'by', 'for', 'if', 'in', 'into', 'is', 'it', 'no', 'not', 'of',
  'on', 'or', 'such', 'that', 'the', 'their', 'then', 'there', 'these', 'they', 'this', 'to', 'was', 'will', 'with',
]);

const TOKEN = /[\p{L}\p{M}\p{N}]+/gu;

/** Terms longer than this (UTF-16 units) are cut: a 10 kB "word" (base64, a minified blob) is not a useful term. */
export const MAX_TERM_LENGTH = 64;

export class Analyzer {
  readonly options: AnalyzerOptions;
  // Stemming the same word again is the common case (Zipf); a bounded cache keeps analysis near regex speed.
  private readonly cache = new Map<string, string>();

  constructor(options: AnalyzerOptions = DEFAULT_ANALYZER) {
    this.options = { ...options };
  }

  /** The index terms of `text`, in order, with repeats. */
  analyze(text: string): string[] {
    const out: string[] = [];
    const norm = text.normalize('NFKC').toLowerCase();
    for (const m of norm.matchAll(TOKEN)) {
      let w = m[0];
      if (w.length > MAX_TERM_LENGTH) w = w.slice(0, MAX_TERM_LENGTH);
      if (this.options.stopwords && ENGLISH_STOPWORDS.has(w)) continue;
      out.push(this.options.stem ? this.stem(w) : w);
    }
    return out;
  }

  private stem(w: string): string {
    let s = this.cache.get(w);
    if (s === undefined) {
      s = porterStem(w);
      if (this.cache.size > 200_000) this.cache.clear();
      this.cache.set(w, s);
    }
    return s;
  }
}
