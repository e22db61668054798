// The code-aware pre-tokenisation pattern (`pattern: code`, issue 14): split rules for source code, so BPE merges
// never straddle the boundaries that carry meaning in code. Not a tokenizer; patterns.ts names it beside GPT-2's.
//
// Pieces, first rule first at each position:
// 1. indentation: the run of spaces and tabs that opens a line holding code, kept whole (`(?<=^|\n)`), so "    "
//    and "        " become tokens of their own instead of GPT-2's "   " + " return";
// 2. identifiers: a letter or "_" then letters, digits and "_" (snake_case names stay one piece), with one
//    optional leading space;
// 3. numbers: at most three digits per piece, as cl100k, with one optional leading space (" 0", " 255");
// 4. operators and punctuation: a run of characters that are neither space, letter, digit nor "_", with one
//    optional leading space (" ==", "):", '"""', "**=");
// 5. newlines, with any spaces before them (trailing whitespace), then the remaining whitespace as GPT-2 splits it.
// A chunk cut (parallel.ts safeCut) falls after a lone newline before a non-space character, so rule 1 sees the
// same context whether the text is encoded whole or in chunks.

/** Unicode White_Space, spelled out (JavaScript's `\s` adds U+FEFF and lacks U+0085); the same class as patterns.ts. */
const WS = '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/** The pattern in JavaScript syntax (compiled with the `u` flag). */
export const CODE_PATTERN_SOURCE = [
  `(?<=^|\\n)[ \\t]+(?=[^${WS}])`,
  ' ?[\\p{L}_][\\p{L}\\p{N}_]*',
  ' ?\\p{N}{1,3}',
  ` ?[^${WS}\\p{L}\\p{N}_]+`,
  `[${WS}]*[\\r\\n]+`,
  `[${WS}]+(?![^${WS}])`,
  `[${WS}]+`,
].join('|');

/** The same pattern in Oniguruma / Rust syntax, as a Hugging Face tokenizer.json spells a Split regex. */
export const CODE_PATTERN_ORIGINAL =
  '(?<=^|\\n)[ \\t]+(?=\\S)| ?[\\p{L}_][\\p{L}\\p{N}_]*| ?\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}_]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+';
