// `lmforge prepare`: one text file → train.bin / val.bin token files and meta.json, nanoGPT's prepare.py for
// shakespeare_char (first (1 − val_fraction) of the characters for training, the rest for validation).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CharTokenizer } from '../tokenizers/char.js';
import { dtypeForVocab, writeTokenFile } from '../tokenizers/token-file.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { checkOutputsAreNotInputs, ensureDir, inputFileSize } from '../util/fs.js';
import { decodeUtf8 } from '../util/utf8.js';
import type { InvalidUtf8Policy } from '../util/utf8.js';

export interface PrepareOptions {
  input: string;
  outDir: string;
  /** Fraction of the text (by characters) held out for validation. */
  valFraction: number;
  /** Invalid UTF-8 in the input: an error naming the byte offset (default), U+FFFD, or drop the line. */
  invalidUtf8?: InvalidUtf8Policy;
  /** Hears what replace/skip did (one line), if anything. */
  onNotice?: (line: string) => void;
}

export interface PrepareResult {
  vocabSize: number;
  trainTokens: number;
  valTokens: number;
}

export function prepareCharData(o: PrepareOptions): PrepareResult {
  inputFileSize(o.input); // a missing file or a directory: one line naming it
  if (!(o.valFraction > 0 && o.valFraction < 1)) throw new UserError(`--val-fraction: expected a number in (0, 1), got ${o.valFraction}`);
  ensureDir(o.outDir); // before reading: a bad --out fails at once, not after the work
  checkOutputsAreNotInputs(['train.bin', 'val.bin', 'meta.json'].map((f) => join(o.outDir, f)), [o.input]);
  const decoded = decodeUtf8(readFileSync(o.input), o.input, o.invalidUtf8 ?? 'error');
  if (decoded.notice !== '') o.onNotice?.(decoded.notice);
  const text = decoded.text;
  const chars = Array.from(text);
  if (chars.length < 2) throw new UserError(`${o.input}: needs at least 2 characters, has ${chars.length}`);
  const tok = CharTokenizer.fromText(text);
  const ids = tok.encode(text);
  const n = Math.floor(ids.length * (1 - o.valFraction));
  writeTokenFile(join(o.outDir, 'train.bin'), ids.slice(0, n), dtypeForVocab(tok.vocabSize));
  writeTokenFile(join(o.outDir, 'val.bin'), ids.slice(n), dtypeForVocab(tok.vocabSize));
  const meta = { vocab_size: tok.vocabSize, tokenizer: tok.toJSON(), source: o.input, val_fraction: o.valFraction };
  writeFileAtomic(join(o.outDir, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
  return { vocabSize: tok.vocabSize, trainTokens: n, valTokens: ids.length - n };
}
