// Shared text analysis for the filters: word tokens, lines, paragraphs, and a normal form for dedup.
// Computed once per text (one-slot memo) because every filter in the chain asks for the same splits.

/** Word tokens: runs of letters/digits (with inner apostrophes or hyphens) or single punctuation/symbol chars. */
const TOKEN_RE = /[\p{L}\p{N}\p{M}_]+(?:['’-][\p{L}\p{N}\p{M}_]+)*|[^\s\p{L}\p{N}\p{M}_]/gu;
const HAS_LETTER_RE = /\p{L}/u;
const HAS_WORDCHAR_RE = /[\p{L}\p{N}]/u;

export interface TextAnalysis {
  text: string;
  /** All tokens, punctuation included (as in datatrove's split_into_words). */
  tokens: string[];
  /** Tokens with at least one letter or digit: the "words" of the Gopher rules. */
  words: string[];
  lines: string[];
  /** Blank-line separated paragraphs (split on \n{2,}). */
  paragraphs: string[];
}

let memoText: string | undefined;
let memo: TextAnalysis | undefined;

export function analyse(text: string): TextAnalysis {
  if (memo !== undefined && memoText === text) return memo;
  const tokens = text.match(TOKEN_RE) ?? [];
  const words = tokens.filter((t) => HAS_WORDCHAR_RE.test(t));
  const a: TextAnalysis = {
    text,
    tokens,
    words,
    lines: text.split(/\n+/),
    paragraphs: text.split(/\n{2,}/),
  };
  memoText = text;
  memo = a;
  return a;
}

export function hasLetter(word: string): boolean {
  return HAS_LETTER_RE.test(word);
}

/** Normal form for exact and near dedup: NFKC, lower case, punctuation and digits stripped, whitespace collapsed. */
export function normaliseForDedup(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\s]+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * Counts duplicated elements the Gopher way: each occurrence after the first is a duplicate.
 * Returns the number of duplicate elements and their total character length.
 */
export function findDuplicates(elements: string[]): { dupElements: number; dupChars: number } {
  const seen = new Set<string>();
  let dupElements = 0;
  let dupChars = 0;
  for (const e of elements) {
    if (seen.has(e)) {
      dupElements++;
      dupChars += e.length;
    } else {
      seen.add(e);
    }
  }
  return { dupElements, dupChars };
}

/** Characters (of words) in the most frequent n-gram times its count (Gopher "top n-gram"). */
export function topNgramChars(words: string[], n: number): number {
  if (words.length < n) return 0;
  const counts = new Map<string, number>();
  let best = 0;
  let bestKey = '';
  for (let i = 0; i + n <= words.length; i++) {
    const key = words.slice(i, i + n).join(' ');
    const c = (counts.get(key) ?? 0) + 1;
    counts.set(key, c);
    if (c > best) {
      best = c;
      bestKey = key;
    }
  }
  if (best <= 1) return 0;
  // Characters of the n-gram's words (spaces excluded) times its count.
  return (bestKey.length - (n - 1)) * best;
}

/**
 * Characters (of words) covered by duplicated n-grams, counting each repeated occurrence once and never overlapping
 * (datatrove's find_all_duplicate: on a repeat, skip past the n-gram).
 */
export function duplicatedNgramChars(words: string[], n: number): number {
  const seen = new Set<string>();
  let chars = 0;
  let i = 0;
  while (i + n <= words.length) {
    const gram = words.slice(i, i + n);
    const key = gram.join(' ');
    if (seen.has(key)) {
      for (const w of gram) chars += w.length;
      i += n;
    } else {
      seen.add(key);
      i++;
    }
  }
  return chars;
}

export function totalChars(words: string[]): number {
  let n = 0;
  for (const w of words) n += w.length;
  return n;
}
