// Text ↔ ids for a data or run directory, from the `tokenizer` field of its meta.json: a char vocabulary
// (`lmforge prepare`) or a tokenizer file beside meta.json (`lmforge tokenize`).
import { join } from 'node:path';
import { CharTokenizer } from './char.js';
import { loadTokenizer } from './format.js';
import { encodeText } from './tokenizer.js';

export interface TextCodec {
  encode(text: string): number[];
  decode(ids: ArrayLike<number>): string;
}

export function codecFromMeta(tokenizer: unknown, dir: string, source: string): TextCodec {
  const t = tokenizer as { type?: unknown; file?: unknown } | null;
  if (t?.type === 'char') return CharTokenizer.fromJSON(t, source);
  if (t?.type === 'file' && typeof t.file === 'string') {
    const tok = loadTokenizer(join(dir, t.file));
    return { encode: (text) => encodeText(tok, text), decode: (ids) => tok.decode(ids) };
  }
  throw new Error(`${source}: field tokenizer: expected {"type": "char", "chars": [...]} or {"type": "file", "file": "..."}`);
}
