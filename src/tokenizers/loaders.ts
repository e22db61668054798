// Loaders for existing byte-level BPE vocabularies: GPT-2's encoder.json + vocab.bpe, tiktoken rank files
// (`<base64> <rank>` lines) and the tiktoken npm package's JSON encoders. Not a file format of our own (format.ts).
import { UserError } from '../util/errors.js';
import { readFileSync } from 'node:fs';
import { base64ToBytes, bytesKey, gpt2StringToBytes } from './bytes.js';
import type { BpeSpec, MergeRule } from './bpe.js';
import { BpeTokenizer } from './bpe.js';
import { isTokenId, checkMerges, checkSpecialIds, checkUniqueTokens } from './checks.js';

/** Merge rules that reproduce tiktoken's rank-based BPE: every split of a token into two tokens merges at its rank. */
export function mergesFromRanks(tokens: ReadonlyArray<Uint8Array | undefined>): MergeRule[] {
  const idByKey = new Map<string, number>();
  tokens.forEach((b, id) => {
    if (b) idByKey.set(bytesKey(b), id);
  });
  const merges: MergeRule[] = [];
  tokens.forEach((b, id) => {
    if (!b || b.length < 2) return;
    for (let k = 1; k < b.length; k++) {
      const left = idByKey.get(bytesKey(b, 0, k));
      const right = idByKey.get(bytesKey(b, k));
      if (left !== undefined && right !== undefined) merges.push({ left, right, result: id, rank: id });
    }
  });
  return merges;
}

/** Parses a tiktoken rank file: one `<base64 token bytes> <rank>` per line. */
export function parseTiktokenRanks(content: string, file = '<tiktoken ranks>'): Array<Uint8Array | undefined> {
  const tokens: Array<Uint8Array | undefined> = [];
  const lineOf: number[] = [];
  const lines = content.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const parts = line.split(' ');
    const bytes = parts.length === 2 ? base64ToBytes(parts[0] as string) : null;
    const rank = parts.length === 2 ? Number(parts[1]) : NaN;
    if (!bytes || bytes.length === 0 || !isTokenId(rank)) {
      throw new UserError(`${file}:${i + 1}: expected "<base64 bytes> <rank>", found ${JSON.stringify(line.slice(0, 80))}`);
    }
    if (tokens[rank] !== undefined) throw new UserError(`${file}:${i + 1}: rank ${rank} appears twice (first on line ${lineOf[rank]}); each rank may appear once`);
    tokens[rank] = bytes;
    lineOf[rank] = i + 1;
  });
  checkUniqueTokens(tokens, file, (rank) => `line ${lineOf[rank]}`);
  return tokens;
}

export interface TiktokenOptions {
  pattern: string;
  specialTokens?: ReadonlyMap<string, number>;
}

/** A tiktoken-compatible tokenizer from a rank file on disk. */
export function loadTiktokenFile(path: string, options: TiktokenOptions): BpeTokenizer {
  const tokens = parseTiktokenRanks(readFileSync(path, 'utf8'), path);
  return new BpeTokenizer({
    source: path,
    pattern: options.pattern,
    tokens,
    merges: mergesFromRanks(tokens),
    specialTokens: options.specialTokens ?? new Map(),
    ignoreMerges: true,
  });
}

/** Maps the npm package's `pat_str` to our translated pattern names. */
function patternForTiktokenSource(patStr: string, file: string): string {
  if (patStr.startsWith("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+")) return 'gpt2';
  if (patStr.startsWith("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+")) return 'cl100k';
  if (patStr.startsWith('[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*')) return 'o200k';
  throw new UserError(`${file}: field "pat_str": unknown split pattern ${JSON.stringify(patStr.slice(0, 60))}`);
}

/** The tiktoken npm package's encoder JSON: { pat_str, special_tokens, bpe_ranks: "! <offset> <b64> <b64> ...\n..." }. */
export function parseTiktokenNpmJson(content: string, file = '<tiktoken json>'): BpeSpec {
  let data: unknown;
  try {
    data = JSON.parse(content);
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  const obj = data as { pat_str?: unknown; special_tokens?: unknown; bpe_ranks?: unknown };
  if (typeof obj.pat_str !== 'string') throw new UserError(`${file}: field "pat_str": expected a string`);
  if (typeof obj.bpe_ranks !== 'string') throw new UserError(`${file}: field "bpe_ranks": expected a string`);
  if (typeof obj.special_tokens !== 'object' || obj.special_tokens === null) {
    throw new UserError(`${file}: field "special_tokens": expected an object of token → id`);
  }
  const tokens: Array<Uint8Array | undefined> = [];
  obj.bpe_ranks.split('\n').forEach((line, i) => {
    if (line === '') return;
    const [bang, offsetText, ...encoded] = line.split(' ');
    const offset = Number(offsetText);
    if (bang !== '!' || !isTokenId(offset) || offset + encoded.length > 1 << 24) {
      throw new UserError(`${file}: field "bpe_ranks" line ${i + 1}: expected "! <offset> <base64>...", found ${JSON.stringify(line.slice(0, 40))}`);
    }
    encoded.forEach((b64, k) => {
      const bytes = base64ToBytes(b64);
      if (!bytes || bytes.length === 0) throw new UserError(`${file}: field "bpe_ranks" line ${i + 1}: invalid base64 ${JSON.stringify(b64)}`);
      if (tokens[offset + k] !== undefined) throw new UserError(`${file}: field "bpe_ranks" line ${i + 1}: rank ${offset + k} is given twice (each rank may appear once)`);
      tokens[offset + k] = bytes;
    });
  });
  const specialTokens = new Map<string, number>();
  for (const [name, id] of Object.entries(obj.special_tokens as Record<string, unknown>)) {
    if (!isTokenId(id)) throw new UserError(`${file}: field "special_tokens.${name}": expected an integer id in [0, 2^24)`);
    specialTokens.set(name, id);
  }
  checkUniqueTokens(tokens, file, (rank) => `field "bpe_ranks" rank ${rank}`);
  checkSpecialIds(specialTokens, tokens, file, 'special_tokens');
  return { source: file, pattern: patternForTiktokenSource(obj.pat_str, file), tokens, merges: mergesFromRanks(tokens), specialTokens, ignoreMerges: true };
}

export function loadTiktokenNpmJson(path: string): BpeTokenizer {
  return new BpeTokenizer(parseTiktokenNpmJson(readFileSync(path, 'utf8'), path));
}

export interface Gpt2FilesOptions {
  /** Entries of encoder.json treated as special tokens rather than byte strings (default: `<|endoftext|>`). */
  specialTokens?: readonly string[];
  /** Use tiktoken's whole-piece rule (default true: tiktoken and GPT-2's own encoder agree on GPT-2's files). */
  ignoreMerges?: boolean;
}

/** Parses GPT-2's `encoder.json` (token string → id) and `vocab.bpe` (`#version` line, then `left right` merges). */
export function parseGpt2Files(
  encoderJson: string,
  vocabBpe: string,
  files = { encoder: 'encoder.json', merges: 'vocab.bpe' },
  options: Gpt2FilesOptions = {},
): BpeSpec {
  let data: unknown;
  try {
    data = JSON.parse(encoderJson);
  } catch (e) {
    throw new UserError(`${files.encoder}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new UserError(`${files.encoder}: expected a JSON object of token → id`);
  const specialNames = new Set(options.specialTokens ?? ['<|endoftext|>']);
  const tokens: Array<Uint8Array | undefined> = [];
  const idByString = new Map<string, number>();
  const specialTokens = new Map<string, number>();
  for (const [text, id] of Object.entries(data as Record<string, unknown>)) {
    if (!isTokenId(id)) {
      throw new UserError(`${files.encoder}: field ${JSON.stringify(text)}: expected an integer id in [0, 2^24), found ${JSON.stringify(id)}`);
    }
    if (specialNames.has(text)) {
      specialTokens.set(text, id);
      continue;
    }
    const bytes = gpt2StringToBytes(text);
    if (!bytes) throw new UserError(`${files.encoder}: field ${JSON.stringify(text)}: contains a character outside GPT-2's byte table`);
    if (tokens[id] !== undefined) throw new UserError(`${files.encoder}: field ${JSON.stringify(text)}: id ${id} is used twice`);
    tokens[id] = bytes;
    idByString.set(text, id);
  }
  const merges: MergeRule[] = [];
  const mergeLine: number[] = [];
  const lines = vocabBpe.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '' || (i === 0 && line.startsWith('#version'))) return;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new UserError(`${files.merges}:${i + 1}: expected "left right", found ${JSON.stringify(line.slice(0, 80))}`);
    }
    const [a, b] = parts as [string, string];
    const left = idByString.get(a);
    const right = idByString.get(b);
    const result = idByString.get(a + b);
    if (left === undefined || right === undefined || result === undefined) {
      const missing = left === undefined ? a : right === undefined ? b : a + b;
      throw new UserError(`${files.merges}:${i + 1}: token ${JSON.stringify(missing)} is not in ${files.encoder}`);
    }
    merges.push({ left, right, result, rank: merges.length });
    mergeLine.push(i + 1);
  });
  checkMerges(merges, tokens, files.merges, (k) => `line ${mergeLine[k]}`);
  checkSpecialIds(specialTokens, tokens, files.encoder, 'special tokens');
  return { source: files.encoder, pattern: 'gpt2', tokens, merges, specialTokens, ignoreMerges: options.ignoreMerges ?? true };
}

export function loadGpt2Files(encoderPath: string, vocabPath: string, options: Gpt2FilesOptions = {}): BpeTokenizer {
  const spec = parseGpt2Files(readFileSync(encoderPath, 'utf8'), readFileSync(vocabPath, 'utf8'), { encoder: encoderPath, merges: vocabPath }, options);
  return new BpeTokenizer(spec);
}
