// `lmforge prepare`: one text file → train.bin / val.bin token files and meta.json, nanoGPT's prepare.py for
// shakespeare_char (first (1 − val_fraction) of the characters for training, the rest for validation).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CharTokenizer } from '../tokenizers/char.js';
import { formatInstruction, readInstructions } from './instructions.js';
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
  /** input is a comma-separated list of instruction files (.json / .jsonl), formatted as Alpaca prompts. */
  instructions?: boolean;
  /**
   * Encode with the char vocabulary of this data or run directory's meta.json (to fine-tune a model trained on it);
   * characters outside it are dropped and counted.
   */
  vocabFrom?: string;
}

export interface PrepareResult {
  vocabSize: number;
  trainTokens: number;
  valTokens: number;
  /** Characters dropped because the vocabFrom vocabulary lacks them. */
  dropped: number;
}

function vocabularyOf(dir: string): CharTokenizer {
  const path = join(dir, 'meta.json');
  if (!existsSync(path)) throw new UserError(`--vocab-from ${dir}: ${path} not found (expected a data or run directory of a char-level model)`);
  let meta: { tokenizer?: unknown };
  try {
    meta = JSON.parse(readFileSync(path, 'utf8')) as { tokenizer?: unknown };
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${(e as Error).message})`);
  }
  try {
    return CharTokenizer.fromJSON(meta.tokenizer, `${path}: field tokenizer`);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
}

export function prepareCharData(o: PrepareOptions): PrepareResult {
  if (!(o.valFraction > 0 && o.valFraction < 1)) throw new UserError(`--val-fraction: expected a number in (0, 1), got ${o.valFraction}`);
  const inputs = o.instructions ? o.input.split(',').map((f) => f.trim()).filter((f) => f !== '') : [o.input];
  for (const f of inputs) inputFileSize(f); // a missing file or a directory: one line naming it
  ensureDir(o.outDir); // before reading: a bad --out fails at once, not after the work
  checkOutputsAreNotInputs(['train.bin', 'val.bin', 'meta.json'].map((f) => join(o.outDir, f)), inputs);
  const fixed = o.vocabFrom ? vocabularyOf(o.vocabFrom) : null;
  let text: string;
  if (o.instructions) {
    // Alpaca's '### ' headers need '#'; a vocabulary without it gets bare "Instruction:" / "Response:" headers.
    const mark = fixed && !fixed.chars.includes('#') ? '' : '### ';
    text = inputs.flatMap((f) => readInstructions(f)).map((e) => formatInstruction(e, mark)).join('');
  } else {
    const decoded = decodeUtf8(readFileSync(o.input), o.input, o.invalidUtf8 ?? 'error');
    if (decoded.notice !== '') o.onNotice?.(decoded.notice);
    text = decoded.text;
  }
  let dropped = 0;
  let tok: CharTokenizer;
  if (fixed) {
    tok = fixed;
    const known = new Set(tok.chars);
    const kept = Array.from(text).filter((ch) => known.has(ch));
    dropped = Array.from(text).length - kept.length;
    text = kept.join('');
  } else {
    tok = CharTokenizer.fromText(text);
  }
  const chars = Array.from(text);
  if (chars.length < 2) throw new UserError(`${o.input}: needs at least 2 characters, has ${chars.length}`);
  const ids = tok.encode(text);
  const n = Math.floor(ids.length * (1 - o.valFraction));
  writeTokenFile(join(o.outDir, 'train.bin'), ids.slice(0, n), dtypeForVocab(tok.vocabSize));
  writeTokenFile(join(o.outDir, 'val.bin'), ids.slice(n), dtypeForVocab(tok.vocabSize));
  const meta = { vocab_size: tok.vocabSize, tokenizer: tok.toJSON(), source: o.input, val_fraction: o.valFraction };
  writeFileAtomic(join(o.outDir, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
  return { vocabSize: tok.vocabSize, trainTokens: n, valTokens: ids.length - n, dropped };
}
