// SentencePiece-style text normalisation for the unigram tokenizer: NFKC, whitespace cleanup, `▁` for spaces and a
// dummy prefix; plus the word split that unigram pieces never cross. Not used by byte-level BPE (which is lossless).

export const SPACE_MARK = '\u2581'; // ▁

export interface NormalizerOptions {
  /** Unicode NFKC (default true). */
  nfkc?: boolean;
  /** Trim and collapse runs of whitespace to one space (default true, as sentencepiece). */
  removeExtraWhitespaces?: boolean;
  /** Prepend `▁` so the first word looks like every other (default true). */
  addDummyPrefix?: boolean;
}

const WHITESPACE_RUN = /[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/gu;
const ONE_WHITESPACE = /[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/gu;

export function normalizeText(text: string, options: NormalizerOptions = {}): string {
  let s = text.toWellFormed();
  if (options.nfkc ?? true) s = s.normalize('NFKC');
  if (options.removeExtraWhitespaces ?? true) s = s.replace(WHITESPACE_RUN, ' ').trim();
  else s = s.replace(ONE_WHITESPACE, ' ');
  if (s.length === 0) return '';
  if (options.addDummyPrefix ?? true) s = ' ' + s;
  return s.replaceAll(' ', SPACE_MARK);
}

/** Splits normalised text before every `▁`: the units that unigram pieces never cross. */
export function splitWords(normalized: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 1; i < normalized.length; i++) {
    if (normalized.charCodeAt(i) === 0x2581) {
      out.push(normalized.slice(start, i));
      start = i;
    }
  }
  if (normalized.length > start) out.push(normalized.slice(start));
  return out;
}

/** Inverse of the `▁` mapping; drops the dummy prefix's leading space. */
export function denormalizeText(text: string, addDummyPrefix = true): string {
  const s = text.replaceAll(SPACE_MARK, ' ');
  return addDummyPrefix && s.startsWith(' ') ? s.slice(1) : s;
}
