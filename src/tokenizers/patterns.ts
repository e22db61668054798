// Pre-tokenisation split patterns (GPT-2, cl100k_base, o200k_base) translated to JavaScript RegExp syntax, and
// lmforge's own code-aware pattern (code-pretokenizer.ts).
// Not a tokenizer: it only names patterns and splits text into pieces; merging happens in bpe.ts.
//
// Translation notes (so the splits equal tiktoken's Rust regex engine):
// - `\s` in Rust is Unicode White_Space; JavaScript's `\s` differs (it adds U+FEFF, lacks U+0085), so it is
//   spelled out as an explicit class.
// - `(?i:'s|…)` (inline case-insensitive group) is not supported by Node 20; it is expanded into classes,
//   using Unicode simple case folding as Rust does (`s` also matches U+017F LATIN SMALL LETTER LONG S).
// - tiktoken's published patterns use possessive quantifiers (`?+`, `++`) in places; the npm package ships the
//   greedy forms used here. Each possessive quantifier there is followed by a token that cannot match what the
//   quantifier would give back (e.g. `[^\r\n\p{L}\p{N}]?+\p{L}++`), so greedy and possessive split alike.

import { CODE_PATTERN_ORIGINAL, CODE_PATTERN_SOURCE } from './code-pretokenizer.js';

export type PatternName = 'gpt2' | 'cl100k' | 'o200k' | 'code';
const PATTERN_NAMES: readonly PatternName[] = ['gpt2', 'cl100k', 'o200k', 'code'];

const WS = '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const CONTRACTION = "'(?:[sS\\u017f]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])";

/** Source text of each pattern, in JavaScript syntax (to be compiled with the `u` flag). */
export const PATTERN_SOURCES: Readonly<Record<PatternName, string>> = {
  gpt2: [
    "'s|'t|'re|'ve|'m|'ll|'d",
    ' ?\\p{L}+',
    ' ?\\p{N}+',
    ` ?[^${WS}\\p{L}\\p{N}]+`,
    `[${WS}]+(?![^${WS}])`,
    `[${WS}]+`,
  ].join('|'),
  cl100k: [
    CONTRACTION,
    '[^\\r\\n\\p{L}\\p{N}]?\\p{L}+',
    '\\p{N}{1,3}',
    ` ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*`,
    `[${WS}]*[\\r\\n]+`,
    `[${WS}]+(?![^${WS}])`,
    `[${WS}]+`,
  ].join('|'),
  o200k: [
    `[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?:${CONTRACTION})?`,
    `[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?:${CONTRACTION})?`,
    '\\p{N}{1,3}',
    ` ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]*`,
    `[${WS}]*[\\r\\n]+`,
    `[${WS}]+(?![^${WS}])`,
    `[${WS}]+`,
  ].join('|'),
  code: CODE_PATTERN_SOURCE,
};

export function isPatternName(name: string): name is PatternName {
  return (PATTERN_NAMES as readonly string[]).includes(name);
}

/** Compiles a named pattern, or a custom JavaScript regex source, as a global Unicode RegExp. */
export function compilePattern(nameOrSource: string): RegExp {
  const source = isPatternName(nameOrSource) ? PATTERN_SOURCES[nameOrSource] : nameOrSource;
  return new RegExp(source, 'gu');
}

/** Splits text into pre-tokens. Text the pattern does not cover is kept as its own piece so nothing is lost. */
export function splitText(text: string, pattern: RegExp): string[] {
  const out: string[] = [];
  pattern.lastIndex = 0;
  let last = 0;
  for (let m = pattern.exec(text); m !== null; m = pattern.exec(text)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    if (m[0].length === 0) {
      pattern.lastIndex++;
      continue;
    }
    out.push(m[0]);
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

/** The same patterns in their original (Rust / Oniguruma) syntax, as tiktoken and Hugging Face files spell them. */
export const ORIGINAL_PATTERNS: Readonly<Record<PatternName, string>> = {
  gpt2: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  cl100k: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  o200k:
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  code: CODE_PATTERN_ORIGINAL,
};

/** The pattern name whose original source is `source`, if any. */
export function patternNameOf(source: string): PatternName | undefined {
  for (const name of PATTERN_NAMES) if (ORIGINAL_PATTERNS[name] === source || PATTERN_SOURCES[name] === source) return name;
  return undefined;
}
