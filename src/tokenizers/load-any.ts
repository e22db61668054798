// Loads a tokenizer from whatever the user points at, recognised by its content (not its name): an lmforge
// tokenizer file, a Hugging Face tokenizer.json, the tiktoken npm package's JSON encoder, a tiktoken rank file
// (`<base64> <rank>` lines), or a directory with GPT-2's files (encoder.json + vocab.bpe, or vocab.json +
// merges.txt) or a tokenizer.json. Anything else is refused with the list of accepted formats. Not a format itself.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { UserError } from '../util/errors.js';
import { fsErrorReason } from '../util/fs.js';
import { invalidUtf8Offset } from '../util/utf8.js';
import { BpeTokenizer } from './bpe.js';
import { parseTokenizer, TOKENIZER_MAGIC } from './format.js';
import { parseHfTokenizer } from './hf.js';
import { loadGpt2Files, mergesFromRanks, parseTiktokenNpmJson, parseTiktokenRanks } from './loaders.js';
import type { Tokenizer } from './tokenizer.js';

export const ACCEPTED_FORMATS =
  'an lmforge tokenizer file, a Hugging Face tokenizer.json, a tiktoken rank file (.tiktoken: "<base64> <rank>" lines), ' +
  "the tiktoken npm package's JSON (pat_str, special_tokens, bpe_ranks), or a directory with GPT-2's encoder.json + vocab.bpe " +
  '(or vocab.json + merges.txt) or a tokenizer.json';

/** tiktoken's published encodings: the split pattern and special tokens a bare rank file does not carry. */
const TIKTOKEN_ENCODINGS: ReadonlyArray<{ names: string[]; ranks: number; pattern: string; specials: Record<string, number> }> = [
  { names: ['o200k'], ranks: 199998, pattern: 'o200k', specials: { '<|endoftext|>': 199999, '<|endofprompt|>': 200018 } },
  {
    names: ['cl100k'],
    ranks: 100256,
    pattern: 'cl100k',
    specials: { '<|endoftext|>': 100257, '<|fim_prefix|>': 100258, '<|fim_middle|>': 100259, '<|fim_suffix|>': 100260, '<|endofprompt|>': 100276 },
  },
  { names: ['p50k'], ranks: 50280, pattern: 'gpt2', specials: { '<|endoftext|>': 50256 } },
  { names: ['r50k', 'gpt2'], ranks: 50256, pattern: 'gpt2', specials: { '<|endoftext|>': 50256 } },
];

/** A tiktoken rank file: the encoding is named by the file name (cl100k_base.tiktoken …) or known by its size. */
function loadTiktokenRanks(content: string, path: string): Tokenizer {
  const tokens = parseTiktokenRanks(content, path);
  const name = basename(path).toLowerCase();
  const enc = TIKTOKEN_ENCODINGS.find((e) => e.names.some((n) => name.includes(n))) ?? TIKTOKEN_ENCODINGS.find((e) => e.ranks === tokens.length);
  if (!enc) {
    throw new UserError(
      `${path}: a tiktoken rank file of ${tokens.length} ranks, which is not one of tiktoken's encodings; a rank file does not carry its split pattern, so name it after its encoding (o200k_base, cl100k_base, p50k_base, r50k_base or gpt2 in the file name)`,
    );
  }
  const specialTokens = new Map(Object.entries(enc.specials).filter(([, id]) => tokens[id] === undefined));
  return new BpeTokenizer({ source: path, pattern: enc.pattern, tokens, merges: mergesFromRanks(tokens), specialTokens, ignoreMerges: true });
}

function loadDirectory(path: string): Tokenizer {
  const has = (f: string): boolean => existsSync(join(path, f));
  if (has('encoder.json') && has('vocab.bpe')) return loadGpt2Files(join(path, 'encoder.json'), join(path, 'vocab.bpe'));
  if (has('vocab.json') && has('merges.txt')) return loadGpt2Files(join(path, 'vocab.json'), join(path, 'merges.txt'));
  if (has('tokenizer.json')) return loadAnyTokenizer(join(path, 'tokenizer.json'));
  throw new UserError(`${path}: this directory holds no tokenizer; expected ${ACCEPTED_FORMATS}`);
}

/** Bytes of a tokenizer file as UTF-8 text; invalid UTF-8 is refused with its byte offset. */
function readText(path: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new UserError(`${path}: cannot read the tokenizer: ${fsErrorReason(e)}`, { cause: e });
  }
  const bad = invalidUtf8Offset(bytes);
  if (bad >= 0) throw new UserError(`${path}: not a tokenizer file: invalid UTF-8 at byte offset ${bad}; expected ${ACCEPTED_FORMATS}`);
  return bytes.toString('utf8');
}

const RANK_LINE = /^[A-Za-z0-9+/=]+ \d+\r?$/;

export function loadAnyTokenizer(path: string): Tokenizer {
  if (!existsSync(path)) throw new UserError(`${path}: no such tokenizer file or directory; expected ${ACCEPTED_FORMATS}`);
  if (statSync(path).isDirectory()) return loadDirectory(path);
  const content = readText(path);
  const head = content.trimStart();
  if (head.startsWith('{')) {
    let data: unknown;
    try {
      data = JSON.parse(content);
    } catch (e) {
      throw new UserError(`${path}: looks like JSON but does not parse (${(e as Error).message}); expected ${ACCEPTED_FORMATS}`, { cause: e });
    }
    const obj = typeof data === 'object' && data !== null && !Array.isArray(data) ? (data as Record<string, unknown>) : {};
    if (obj.magic === TOKENIZER_MAGIC) return parseTokenizer(content, path);
    const values = Object.values(obj);
    if (values.length > 0 && values.every((v) => typeof v === 'number')) {
      throw new UserError(`${path}: looks like GPT-2's encoder.json, which needs its merges: point --tokenizer at the directory holding encoder.json + vocab.bpe (or vocab.json + merges.txt)`);
    }
    if (typeof obj.model === 'object' && obj.model !== null) return parseHfTokenizer(content, path);
    if ('bpe_ranks' in obj && 'pat_str' in obj) return new BpeTokenizer(parseTiktokenNpmJson(content, path));
    throw new UserError(`${path}: a JSON file of no tokenizer format lmforge reads (no "magic", "model" or "bpe_ranks" field); expected ${ACCEPTED_FORMATS}`);
  }
  const firstLine = head.slice(0, Math.max(0, head.indexOf('\n')) || head.length);
  if (RANK_LINE.test(firstLine)) return loadTiktokenRanks(content.replace(/\r\n/g, '\n'), path);
  throw new UserError(`${path}: not a tokenizer file lmforge recognises; expected ${ACCEPTED_FORMATS}`);
}

/** The --tokenizer help text of every command. */
export const TOKENIZER_HELP = 'lmforge tokenizer file, tokenizer.json, tiktoken rank file or npm JSON, or a GPT-2 directory (recognised by content)';
