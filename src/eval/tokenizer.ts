// The tokenizer the harness hands to model adapters: any lmforge tokenizer (byte-level BPE, unigram, GPT-2's
// files, a Hugging Face tokenizer.json) or a run's character vocabulary, behind the small TextTokenizer surface.
// Not a tokenizer implementation.
import { join } from 'node:path';
import { CharTokenizer } from '../tokenizers/char.js';
import { loadAnyTokenizer } from '../tokenizers/load-any.js';
import { BpeTokenizer, type Tokenizer } from '../tokenizers/tokenizer.js';
import { UserError } from '../util/errors.js';
import type { TextTokenizer } from './model.js';

export function wrapTokenizer(tok: Tokenizer | CharTokenizer): TextTokenizer {
  if (tok instanceof CharTokenizer) {
    return {
      encode: (text) => {
        try {
          return tok.encode(text);
        } catch (e) {
          throw new UserError(`character tokenizer: ${(e as Error).message} (the model's vocabulary cannot encode this task's text; use a byte-level tokenizer)`);
        }
      },
      decode: (ids) => tok.decode(ids),
      prefixToken: undefined,
    };
  }
  const prefix = tok.specialTokens.get('<|endoftext|>') ?? tok.specialTokens.get('</s>') ?? tok.specialTokens.get('<s>');
  return {
    encode: (text) => (tok instanceof BpeTokenizer ? tok.encodeOrdinary(text) : tok.encode(text)),
    decode: (ids) => tok.decode(ids),
    prefixToken: prefix,
  };
}

/** What a run directory's meta.json says of its tokenizer (read by the run directory's owner). */
export interface MetaTokenizer {
  tokenizer: unknown;
  /** The run directory (a tokenizer file named by meta.json sits in it). */
  dir: string;
  /** meta.json's path, for messages. */
  source: string;
}

/** --tokenizer PATH, else the tokenizer named by the run's meta.json (from `lmforge train`). */
export function loadEvalTokenizer(path: string | undefined, meta: MetaTokenizer | null): TextTokenizer {
  if (path !== undefined) {
    try {
      return wrapTokenizer(loadAnyTokenizer(path));
    } catch (e) {
      throw new UserError(`--tokenizer: ${(e as Error).message}`);
    }
  }
  if (!meta) throw new UserError('the model directory has no meta.json with a tokenizer; pass --tokenizer (a tokenizer file or GPT-2\'s directory)');
  try {
    // A run trained on `lmforge tokenize` shards carries its tokenizer file beside meta.json.
    const t = meta.tokenizer as { type?: unknown; file?: unknown } | undefined;
    if (t?.type === 'file' && typeof t.file === 'string') return wrapTokenizer(loadAnyTokenizer(join(meta.dir, t.file)));
    return wrapTokenizer(CharTokenizer.fromJSON(meta.tokenizer, meta.source));
  } catch (e) {
    throw new UserError(`${(e as Error).message}; pass --tokenizer for models trained on other tokenizers`);
  }
}
