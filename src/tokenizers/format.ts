// lmforge's own tokenizer file (JSON with a magic and a version; BPE or unigram) and the human-readable vocabulary
// listing. Not Hugging Face's tokenizer.json (see hf.ts) and not token shards (see token-file.ts).
import { UserError } from '../util/errors.js';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/atomic.js';
import { base64ToBytes, bytesToBase64, utf8DecodeStrict } from './bytes.js';
import { BpeTokenizer } from './bpe.js';
import type { MergeRule } from './bpe.js';
import type { Tokenizer } from './tokenizer.js';
import { isTokenId, checkMerges, checkPattern, checkSpecialIds, checkUniquePieces, checkUniqueTokens } from './checks.js';
import { UnigramTokenizer } from './unigram.js';
import type { UnigramPiece } from './unigram.js';

export const TOKENIZER_MAGIC = 'lmforge-tokenizer';
export const TOKENIZER_VERSION = 1;

export { writeFileAtomic };

export function serializeTokenizer(tok: Tokenizer): string {
  const specialTokens = Object.fromEntries(tok.specialTokens);
  if (tok instanceof BpeTokenizer) {
    const merges: number[] = [];
    for (const m of tok.merges) merges.push(m.left, m.right, m.result, m.rank);
    return JSON.stringify({
      magic: TOKENIZER_MAGIC,
      version: TOKENIZER_VERSION,
      type: 'bpe',
      pattern: tok.pattern,
      ignoreMerges: tok.ignoreMerges,
      specialTokens,
      tokens: tok.tokens.map((b) => (b ? bytesToBase64(b) : null)),
      merges,
    });
  }
  return JSON.stringify({
    magic: TOKENIZER_MAGIC,
    version: TOKENIZER_VERSION,
    type: 'unigram',
    unkId: tok.unkId,
    byteFallback: tok.byteFallback,
    normalizer: tok.normalizer,
    specialTokens,
    pieces: tok.pieces.map((p) => [p.piece, p.score]),
  });
}

export function saveTokenizer(tok: Tokenizer, path: string): void {
  writeFileAtomic(path, serializeTokenizer(tok));
}

type Json = Record<string, unknown>;

function field<T>(obj: Json, name: string, file: string, check: (v: unknown) => v is T, expected: string): T {
  const v = obj[name];
  if (!check(v)) throw new UserError(`${file}: field "${name}": expected ${expected}, found ${JSON.stringify(v)?.slice(0, 60)}`);
  return v;
}
const isString = (v: unknown): v is string => typeof v === 'string';
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isInt = isTokenId;
const isArray = (v: unknown): v is unknown[] => Array.isArray(v);
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function specialMap(obj: Json, file: string): Map<string, number> {
  const raw = field(obj, 'specialTokens', file, isObject, 'an object of token → id');
  const out = new Map<string, number>();
  for (const [k, v] of Object.entries(raw)) {
    if (!isInt(v)) throw new UserError(`${file}: field "specialTokens.${k}": expected an integer id in [0, 2^24)`);
    out.set(k, v);
  }
  return out;
}

export function parseTokenizer(content: string, file = '<tokenizer>'): Tokenizer {
  let data: unknown;
  try {
    data = JSON.parse(content);
  } catch (e) {
    throw new UserError(`${file}: not an lmforge tokenizer file (not JSON: ${(e as Error).message}); Hugging Face tokenizer.json files load with importHfTokenizer`, { cause: e });
  }
  if (!isObject(data) || data.magic !== TOKENIZER_MAGIC) {
    const found = isObject(data) ? JSON.stringify(data.magic ?? null) : typeof data;
    throw new UserError(`${file}: field "magic": expected "${TOKENIZER_MAGIC}", found ${found}; for a Hugging Face tokenizer.json use importHfTokenizer (CLI: --tokenizer accepts both)`);
  }
  if (data.version !== TOKENIZER_VERSION) {
    throw new UserError(`${file}: field "version": this lmforge reads version ${TOKENIZER_VERSION}, found ${JSON.stringify(data.version)}; re-export the tokenizer with a matching lmforge`);
  }
  const type = field(data, 'type', file, isString, '"bpe" or "unigram"');
  if (type === 'bpe') {
    const rawTokens = field(data, 'tokens', file, isArray, 'an array of base64 strings');
    const tokens = rawTokens.map((t, i) => {
      if (t === null) return undefined;
      const b = typeof t === 'string' ? base64ToBytes(t) : null;
      if (!b) throw new UserError(`${file}: field "tokens[${i}]": expected base64 bytes or null`);
      return b;
    });
    const flat = field(data, 'merges', file, isArray, 'a flat array of [left, right, result, rank] integers');
    if (flat.length % 4 !== 0) throw new UserError(`${file}: field "merges": length ${flat.length} is not a multiple of 4`);
    const merges: MergeRule[] = [];
    for (let i = 0; i < flat.length; i += 4) {
      const [left, right, result, rank] = flat.slice(i, i + 4);
      if (!isInt(left) || !isInt(right) || !isInt(result) || !isInt(rank) || !tokens[left] || !tokens[right] || !tokens[result]) {
        throw new UserError(`${file}: field "merges[${i / 4}]": expected token ids present in "tokens" and a rank`);
      }
      merges.push({ left, right, result, rank });
    }
    checkUniqueTokens(tokens, file, (id) => `field "tokens[${id}]"`);
    checkMerges(merges, tokens, file, (i) => `field "merges[${i}]"`);
    const pattern = field(data, 'pattern', file, isString, 'a pattern name or regex source');
    checkPattern(pattern, file, 'pattern');
    const specialTokens = specialMap(data, file);
    checkSpecialIds(specialTokens, tokens, file, 'specialTokens');
    return new BpeTokenizer({
      source: file,
      pattern,
      ignoreMerges: field(data, 'ignoreMerges', file, isBool, 'a boolean'),
      specialTokens,
      tokens,
      merges,
    });
  }
  if (type === 'unigram') {
    const raw = field(data, 'pieces', file, isArray, 'an array of [piece, score]');
    const pieces: UnigramPiece[] = raw.map((p, i) => {
      if (!Array.isArray(p) || typeof p[0] !== 'string' || typeof p[1] !== 'number') throw new UserError(`${file}: field "pieces[${i}]": expected [piece, score]`);
      return { piece: p[0], score: p[1] };
    });
    checkUniquePieces(pieces, file, (i) => `field "pieces[${i}]"`);
    return new UnigramTokenizer({
      source: file,
      pieces,
      unkId: field(data, 'unkId', file, isInt, 'a piece id'),
      byteFallback: field(data, 'byteFallback', file, isBool, 'a boolean'),
      specialTokens: specialMap(data, file),
      normalizer: field(data, 'normalizer', file, isObject, 'an object') as Json,
    });
  }
  throw new UserError(`${file}: field "type": expected "bpe" or "unigram", found ${JSON.stringify(type)}`);
}

export function loadTokenizer(path: string): Tokenizer {
  return parseTokenizer(readFileSync(path, 'utf8'), path);
}

/** One line per id: `id<TAB>token<TAB>detail`; tokens as JSON strings, or `<0x..>` hex when not valid UTF-8. */
export function vocabListing(tok: Tokenizer): string {
  const lines: string[] = [];
  const specialById = new Map([...tok.specialTokens].map(([k, v]) => [v, k]));
  for (let id = 0; id < tok.vocabSize; id++) {
    const special = specialById.get(id);
    if (special !== undefined) {
      lines.push(`${id}\t${JSON.stringify(special)}\tspecial`);
      continue;
    }
    if (tok instanceof BpeTokenizer) {
      const b = tok.tokens[id];
      if (!b) continue;
      const text = utf8DecodeStrict(b);
      lines.push(`${id}\t${text !== null ? JSON.stringify(text) : [...b].map((x) => `<0x${x.toString(16).toUpperCase().padStart(2, '0')}>`).join('')}\t${b.length} bytes`);
    } else {
      const p = tok.pieces[id] as UnigramPiece;
      lines.push(`${id}\t${JSON.stringify(p.piece)}\t${p.score.toFixed(6)}`);
    }
  }
  return lines.join('\n') + '\n';
}
