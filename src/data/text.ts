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

/**
 * Hashes of every word n-gram, built from the (n-1)-gram hashes in one pass per n: two 32-bit lanes folded into a
 * 52-bit number, so sets and maps key on numbers instead of joined strings (collisions ~ W^2 / 2^52).
 */
export class NgramHasher {
  private readonly a: Uint32Array;
  private readonly b: Uint32Array;
  private readonly wa: Uint32Array;
  private readonly wb: Uint32Array;
  readonly lengths: Uint32Array;
  private n = 0;

  constructor(readonly words: string[]) {
    const W = words.length;
    this.wa = new Uint32Array(W);
    this.wb = new Uint32Array(W);
    this.lengths = new Uint32Array(W);
    const ids = new Map<string, number>();
    for (let i = 0; i < W; i++) {
      const w = words[i]!;
      let id = ids.get(w);
      if (id === undefined) {
        id = ids.size + 1;
        ids.set(w, id);
      }
      this.wa[i] = Math.imul(id, 0x9e3779b1) >>> 0;
      this.wb[i] = Math.imul(id ^ 0x5bd1e995, 0x85ebca77) >>> 0;
      this.lengths[i] = w.length;
    }
    this.a = new Uint32Array(W);
    this.b = new Uint32Array(W);
  }

  /** Advances to n-grams of the next length; `key(i)` is then the hash of words[i .. i+n). */
  grow(): number {
    const W = this.words.length;
    const n = ++this.n;
    for (let i = 0; i + n <= W; i++) {
      this.a[i] = (Math.imul(this.a[i]! ^ this.wa[i + n - 1]!, 0x01000193) + 0x7f4a7c15) >>> 0;
      this.b[i] = (Math.imul(this.b[i]! ^ this.wb[i + n - 1]!, 0xc2b2ae35) + 0x165667b1) >>> 0;
    }
    return n;
  }

  key(i: number): number {
    return (this.a[i]! & 0x1fffff) * 4294967296 + this.b[i]!;
  }

  chars(i: number, n: number): number {
    let c = 0;
    for (let j = i; j < i + n; j++) c += this.lengths[j]!;
    return c;
  }
}

/**
 * A reusable open-addressing counter keyed by the 52-bit n-gram hashes (cheaper than Map<number> on non-small
 * integers, and reset in O(capacity) without reallocating). `add` returns the key's count after adding.
 */
class KeyCounter {
  private keys = new Float64Array(1024);
  private counts = new Uint32Array(1024);
  private mask = 1023;
  private size = 0;

  reset(expected: number): void {
    let cap = 1024;
    while (cap < 2 * expected) cap *= 2;
    if (cap !== this.keys.length) {
      this.keys = new Float64Array(cap);
      this.counts = new Uint32Array(cap);
      this.mask = cap - 1;
    } else {
      this.counts.fill(0);
    }
    this.size = 0;
  }

  add(key: number): number {
    const lo = key >>> 0;
    for (let i = Math.imul(lo, 0x9e3779b1) >>> 0 & this.mask; ; i = (i + 1) & this.mask) {
      const c = this.counts[i]!;
      if (c === 0) {
        this.keys[i] = key;
        this.counts[i] = 1;
        this.size++;
        return 1;
      }
      if (this.keys[i] === key) return (this.counts[i] = c + 1);
    }
  }
}

const counter = new KeyCounter();

/** Characters (of words) in the most frequent n-gram times its count (Gopher "top n-gram"); h must be at length n. */
export function topNgramChars(h: NgramHasher, n: number): number {
  const W = h.words.length;
  if (W < n) return 0;
  counter.reset(W);
  let best = 0;
  let bestAt = 0;
  for (let i = 0; i + n <= W; i++) {
    const c = counter.add(h.key(i));
    if (c > best) {
      best = c;
      bestAt = i;
    }
  }
  return best <= 1 ? 0 : h.chars(bestAt, n) * best;
}

/**
 * Characters (of words) covered by duplicated n-grams, counting each repeated occurrence once and never overlapping
 * (datatrove's find_all_duplicate: on a repeat, skip past the n-gram); h must be at length n.
 */
export function duplicatedNgramChars(h: NgramHasher, n: number): number {
  const W = h.words.length;
  counter.reset(W);
  let chars = 0;
  let i = 0;
  while (i + n <= W) {
    // A repeat is counted but not added again; the count only tells seen (> 1) from new.
    if (counter.add(h.key(i)) > 1) {
      chars += h.chars(i, n);
      i += n;
    } else {
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
