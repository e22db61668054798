// Integrity checks shared by every tokenizer file parser (lmforge, tokenizer.json, tiktoken, GPT-2 files): no two
// ids with the same bytes, no merge given twice, special tokens with ids of their own, a split pattern that compiles.
// Each failure is a UserError naming the file and the entry. Not a parser itself.
import { UserError } from '../util/errors.js';
import { bytesKey } from './bytes.js';
import type { MergeRule } from './bpe.js';
import { compilePattern } from './patterns.js';

/**
 * The largest vocabulary lmforge reads (2^24 ids; published vocabularies are under 2^18). A larger id in a file is
 * corruption, and honouring it would allocate or walk an array of that length.
 */
export const MAX_VOCAB = 1 << 24;

/** True for a token id lmforge accepts: an integer in [0, MAX_VOCAB). */
export function isTokenId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < MAX_VOCAB;
}

/** Refuses two ids that hold the same bytes; `where(id)` names the entry in the file ("field \"tokens[5]\""). */
export function checkUniqueTokens(tokens: ReadonlyArray<Uint8Array | undefined>, file: string, where: (id: number) => string): void {
  const seen = new Map<string, number>();
  tokens.forEach((b, id) => {
    if (!b) return;
    const key = bytesKey(b);
    const first = seen.get(key);
    if (first !== undefined) throw new UserError(`${file}: ${where(id)}: token id ${id} repeats the bytes of token id ${first} (each token may appear once)`);
    seen.set(key, id);
  });
}

/**
 * Refuses a merge whose pair was already merged, and a merge whose result is not its two parts side by side;
 * `where(i)` names the i-th merge in the file.
 */
export function checkMerges(merges: readonly MergeRule[], tokens: ReadonlyArray<Uint8Array | undefined>, file: string, where: (i: number) => string): void {
  const seen = new Map<string, number>();
  merges.forEach((m, i) => {
    const key = `${m.left},${m.right}`;
    const first = seen.get(key);
    if (first !== undefined) throw new UserError(`${file}: ${where(i)}: the pair (${m.left}, ${m.right}) is merged twice (first at merge ${first}); each merge may appear once`);
    seen.set(key, i);
    const l = tokens[m.left];
    const r = tokens[m.right];
    const out = tokens[m.result];
    if (!l || !r || !out || out.length !== l.length + r.length || bytesKey(out) !== bytesKey(l) + bytesKey(r)) {
      throw new UserError(`${file}: ${where(i)}: token ${m.result} is not tokens ${m.left} and ${m.right} side by side`);
    }
  });
}

/** Refuses a special id used by two names, or by an ordinary token. */
export function checkSpecialIds(specials: ReadonlyMap<string, number>, tokens: ReadonlyArray<unknown>, file: string, field: string): void {
  const byId = new Map<number, string>();
  for (const [name, id] of specials) {
    const other = byId.get(id);
    if (other !== undefined) throw new UserError(`${file}: field "${field}": id ${id} is given to both ${JSON.stringify(other)} and ${JSON.stringify(name)}`);
    if (tokens[id] !== undefined) throw new UserError(`${file}: field "${field}.${name}": id ${id} is already an ordinary token's id`);
    byId.set(id, name);
  }
}

/** Refuses a unigram piece that appears twice; `where(i)` names the i-th piece in the file. */
export function checkUniquePieces(pieces: ReadonlyArray<{ piece: string }>, file: string, where: (i: number) => string): void {
  const seen = new Map<string, number>();
  pieces.forEach((p, i) => {
    const first = seen.get(p.piece);
    if (first !== undefined) throw new UserError(`${file}: ${where(i)}: piece ${JSON.stringify(p.piece)} repeats piece ${first} (each piece may appear once)`);
    seen.set(p.piece, i);
  });
}

/** A pattern name or a JavaScript regex source that compiles; otherwise a UserError naming the field. */
export function checkPattern(pattern: string, file: string, field: string): void {
  try {
    compilePattern(pattern);
  } catch (e) {
    throw new UserError(`${file}: field "${field}": not a split pattern lmforge knows (gpt2, cl100k, o200k, code) nor a valid JavaScript regex (${(e as Error).message})`, { cause: e });
  }
}
