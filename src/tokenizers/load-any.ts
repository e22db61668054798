// Loads a tokenizer from whatever the user points at: an lmforge tokenizer file, a Hugging Face tokenizer.json,
// or a directory with GPT-2's encoder.json + vocab.bpe. Not a format itself (see format.ts, hf.ts, loaders.ts).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseTokenizer, TOKENIZER_MAGIC } from './format.js';
import { parseHfTokenizer } from './hf.js';
import { loadGpt2Files } from './loaders.js';
import type { Tokenizer } from './tokenizer.js';

export function loadAnyTokenizer(path: string): Tokenizer {
  if (!existsSync(path)) throw new Error(`${path}: no such tokenizer file or directory`);
  if (statSync(path).isDirectory()) {
    const enc = join(path, 'encoder.json');
    const bpe = join(path, 'vocab.bpe');
    if (existsSync(enc) && existsSync(bpe)) return loadGpt2Files(enc, bpe);
    throw new Error(`${path}: a directory must hold GPT-2's encoder.json and vocab.bpe`);
  }
  const content = readFileSync(path, 'utf8');
  if (content.includes(`"magic":"${TOKENIZER_MAGIC}"`) || content.includes(`"magic": "${TOKENIZER_MAGIC}"`)) return parseTokenizer(content, path);
  if (/"model"\s*:/.test(content)) return parseHfTokenizer(content, path);
  return parseTokenizer(content, path); // reports what the file lacks
}
