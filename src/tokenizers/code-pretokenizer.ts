// The code-aware pre-tokenisation pattern (`pattern: code`, issue 14): split rules for source code, so BPE merges
// never straddle the boundaries that carry meaning in code. Not a tokenizer; patterns.ts names it beside GPT-2's.
//
// Pieces, first rule first at each position:
// 1. line breaks with their indentation: any whitespace up to the last newline of a run, then the spaces and tabs
//    that indent the next line, as one piece ("\n        ", "  \n\n    "), so the indentation run is never split
//    and no identifier borrows its last space (GPT-2 splits "\n        return" as "\n       " + " return");
// 2. identifiers: a letter or "_" then letters, digits and "_" (snake_case names stay one piece), with one
//    optional leading space;
// 3. numbers: at most three digits per piece, as cl100k, with one optional leading space (" 0", " 255");
// 4. operators and punctuation: a run of characters that are neither space, letter, digit nor "_", with one
//    optional leading space (" ==", "):", '"""', " **=");
// 5. the remaining whitespace (inside a line) as GPT-2 splits it.
// Tried against the alternatives (8192-token BPEs on the curated training files, bytes per token on the held-out
// files less the generated rubi ones): newline and indentation as separate pieces 3.24, GPT-2's pattern 3.44, this
// one 3.50 (with unbounded digit runs 3.51). A chunk cut (parallel.ts safeCut) falls after a lone newline between non-space characters, where rule 1
// yields the same "\n" piece whether the text is encoded whole or in chunks.

/** Unicode White_Space, spelled out (JavaScript's `\s` adds U+FEFF and lacks U+0085); the same class as patterns.ts. */
const WS = '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/** The pattern in JavaScript syntax (compiled with the `u` flag). */
export const CODE_PATTERN_SOURCE = [
  `[${WS}]*[\\r\\n][ \\t]*`,
  ' ?[\\p{L}_][\\p{L}\\p{N}_]*',
  ' ?\\p{N}{1,3}',
  ` ?[^${WS}\\p{L}\\p{N}_]+`,
  `[${WS}]+(?![^${WS}])`,
  `[${WS}]+`,
].join('|');

/** The same pattern in Oniguruma / Rust syntax, as a Hugging Face tokenizer.json spells a Split regex. */
export const CODE_PATTERN_ORIGINAL =
  '\\s*[\\r\\n][ \\t]*| ?[\\p{L}_][\\p{L}\\p{N}_]*| ?\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}_]+|\\s+(?!\\S)|\\s+';
