// The tokenizer union used by formats, CLI and data code: byte-level BPE or unigram LM, with a common surface.
// Not an implementation: see bpe.ts and unigram.ts.
import { BpeTokenizer } from './bpe.js';
import { UnigramTokenizer } from './unigram.js';

export type Tokenizer = BpeTokenizer | UnigramTokenizer;

export function tokenizerKind(tok: Tokenizer): 'bpe' | 'unigram' {
  return tok instanceof BpeTokenizer ? 'bpe' : 'unigram';
}

/** Encodes; with allowSpecial, special tokens written in the text become their ids. */
export function encodeText(tok: Tokenizer, text: string, allowSpecial = false): number[] {
  if (tok instanceof BpeTokenizer) return tok.encode(text, { allowedSpecial: allowSpecial ? 'all' : 'none' });
  return tok.encode(text, { allowSpecial });
}

export { BpeTokenizer, UnigramTokenizer };
