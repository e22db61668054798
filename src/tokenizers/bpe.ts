// Byte-level BPE tokenizer (GPT-2 / tiktoken family): regex pre-tokenisation, merge ranks, special tokens,
// encode/decode that round-trip any byte sequence, optional BPE-dropout. Not a loader or trainer (see loaders.ts,
// bpe-trainer.ts) and not a file format (see format.ts).
import { UserError } from '../util/errors.js';
import { utf8Decode, utf8DecodeStrict, utf8Encode, wellFormed } from './bytes.js';
import { NO_MERGE, PairTable, mergeDropout, mergeLong, mergeShort } from './merge.js';
import { compilePattern } from './patterns.js';
import { mulberry32 } from '../util/mulberry32.js';

/** One merge rule: tokens `left` and `right` become `result`; lower rank merges first (ties: leftmost). */
export interface MergeRule {
  left: number;
  right: number;
  result: number;
  rank: number;
}

export interface BpeSpec {
  /** A pattern name ('gpt2' | 'cl100k' | 'o200k' | 'code') or a JavaScript regex source. */
  pattern: string;
  /** Bytes of every ordinary token by id (holes allowed for ids used by special tokens). */
  tokens: ReadonlyArray<Uint8Array | undefined>;
  merges: readonly MergeRule[];
  specialTokens?: ReadonlyMap<string, number>;
  /**
   * tiktoken's rule (Hugging Face's `ignore_merges`): a piece that is itself a token encodes to that token without
   * running the merges. Default false (pure merge semantics, as the original GPT-2 encoder).
   */
  ignoreMerges?: boolean;
  /** Where the vocabulary came from (a file name), for error messages. */
  source?: string;
}

/** Which special tokens may appear in text: 'all', 'none', or an explicit list. */
export type SpecialSet = 'all' | 'none' | readonly string[];

export interface EncodeOptions {
  /** Special tokens recognised in the text and emitted as their ids (default 'none': encoded as plain text). */
  allowedSpecial?: SpecialSet;
  /** Special tokens whose presence in the text is an error (default 'none', so encoding never throws). */
  disallowedSpecial?: SpecialSet;
  /** BPE-dropout probability (default 0: deterministic). */
  dropout?: number;
  /** Random source in [0, 1) for dropout; defaults to a seeded generator (seed 0) created per call. */
  random?: () => number;
}

const SHORT_PIECE = 48; // pieces up to this many bytes use the array-scan merge; longer ones the heap.
const CACHE_LIMIT = 200_000;

/** Seeded uniform generator for BPE-dropout (mulberry32, shared with data and eval). */
export const seededRandom = mulberry32;

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class BpeTokenizer {
  readonly pattern: string;
  readonly tokens: ReadonlyArray<Uint8Array | undefined>;
  readonly merges: readonly MergeRule[];
  readonly specialTokens: ReadonlyMap<string, number>;
  readonly vocabSize: number;
  readonly ignoreMerges: boolean;
  private readonly regex: RegExp;
  private readonly table: PairTable;
  private readonly byteIds: Int32Array;
  /** Pieces that are a single ordinary token, keyed by their text. */
  private readonly wholeTokens = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();
  private readonly specialById = new Map<number, Uint8Array>();
  private readonly specialRegexCache = new Map<string, RegExp>();
  private parts = new Int32Array(256);
  private pairRanks = new Int32Array(256);

  constructor(spec: BpeSpec) {
    this.pattern = spec.pattern;
    this.tokens = spec.tokens;
    this.merges = spec.merges;
    this.specialTokens = spec.specialTokens ?? new Map();
    this.ignoreMerges = spec.ignoreMerges ?? false;
    this.regex = compilePattern(spec.pattern);
    this.byteIds = new Int32Array(256).fill(-1);
    let maxId = spec.tokens.length - 1;
    spec.tokens.forEach((bytes, id) => {
      if (!bytes) return;
      if (bytes.length === 1) this.byteIds[bytes[0] as number] = id;
      if (!this.ignoreMerges) return;
      const text = utf8DecodeStrict(bytes);
      if (text !== null && !this.wholeTokens.has(text)) this.wholeTokens.set(text, id);
    });
    for (let b = 0; b < 256; b++) {
      if (this.byteIds[b] === -1) throw new UserError(`${spec.source ?? 'BPE vocabulary'}: no token for byte 0x${b.toString(16).padStart(2, '0')} (byte-level BPE needs all 256 single-byte tokens)`);
    }
    this.table = new PairTable(spec.merges.length);
    for (const m of spec.merges) this.table.add(m.left, m.right, m.rank, m.result);
    for (const [text, id] of this.specialTokens) {
      this.specialById.set(id, utf8Encode(text));
      maxId = Math.max(maxId, id);
    }
    this.vocabSize = maxId + 1;
  }

  /** Encodes text; special tokens are only recognised when allowed (see EncodeOptions). */
  encode(text: string, options: EncodeOptions = {}): number[] {
    text = wellFormed(text); // lone surrogates → U+FFFD, as tiktoken's wasm boundary does
    const out: number[] = [];
    const allowed = this.resolveSpecial(options.allowedSpecial ?? 'none');
    const disallowed = this.resolveSpecial(options.disallowedSpecial ?? 'none').filter((s) => !allowed.includes(s));
    if (disallowed.length > 0) {
      const found = this.specialRegex(disallowed).exec(text);
      if (found) throw new UserError(`encode: text contains disallowed special token ${JSON.stringify(found[0])} at index ${found.index}`);
    }
    const dropout = options.dropout ?? 0;
    const random = dropout > 0 ? (options.random ?? seededRandom(0)) : undefined;
    if (allowed.length === 0) {
      this.encodeOrdinaryInto(text, out, dropout, random);
      return out;
    }
    const re = this.specialRegex(allowed);
    re.lastIndex = 0;
    let last = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      this.encodeOrdinaryInto(text.slice(last, m.index), out, dropout, random);
      out.push(this.specialTokens.get(m[0]) as number);
      last = m.index + m[0].length;
    }
    this.encodeOrdinaryInto(text.slice(last), out, dropout, random);
    return out;
  }

  /**
   * BPE-dropout encoding for training (Provilkov et al.): every merge is skipped with probability p (default 0.1).
   * Pass a seeded generator (e.g. seededRandom(seed)) and keep it across calls so each epoch samples afresh.
   */
  encodeDropout(text: string, random: () => number, p = 0.1): number[] {
    return this.encode(text, { dropout: p, random });
  }

  /** Encodes text with no special-token handling at all. */
  encodeOrdinary(text: string): number[] {
    text = wellFormed(text); // lone surrogates → U+FFFD, as tiktoken's wasm boundary does
    const out: number[] = [];
    this.encodeOrdinaryInto(text, out, 0, undefined);
    return out;
  }

  /**
   * Encodes arbitrary bytes, invalid UTF-8 included: valid UTF-8 runs go through the normal path, and each maximal
   * run of invalid bytes becomes one piece merged at the byte level, so decodeBytes(encodeBytes(b)) equals b.
   */
  encodeBytes(bytes: Uint8Array): number[] {
    const out: number[] = [];
    let start = 0;
    let i = 0;
    while (i < bytes.length) {
      const len = validUtf8Length(bytes, i);
      if (len > 0) {
        i += len;
        continue;
      }
      let j = i + 1;
      while (j < bytes.length && validUtf8Length(bytes, j) === 0) j++;
      if (i > start) this.encodeOrdinaryInto(utf8Decode(bytes.subarray(start, i)), out, 0, undefined);
      this.mergeBytes(bytes.subarray(i, j), out, 0, undefined);
      start = i = j;
    }
    if (bytes.length > start) this.encodeOrdinaryInto(utf8Decode(bytes.subarray(start)), out, 0, undefined);
    return out;
  }

  /** Bytes of a token sequence; unknown ids are an error naming the position. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let total = 0;
    for (let i = 0; i < ids.length; i++) total += this.tokenBytes(ids[i] as number, i).length;
    const out = new Uint8Array(total);
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.tokenBytes(ids[i] as number, i);
      out.set(b, at);
      at += b.length;
    }
    return out;
  }

  /** Text of a token sequence; invalid UTF-8 becomes U+FFFD (use decodeBytes for the exact bytes). */
  decode(ids: ArrayLike<number>): string {
    return utf8Decode(this.decodeBytes(ids));
  }

  tokenBytes(id: number, position = 0): Uint8Array {
    const b = this.tokens[id] ?? this.specialById.get(id);
    if (!b) throw new UserError(`decode: unknown token id ${id} at position ${position} (vocabulary size ${this.vocabSize})`);
    return b;
  }

  private resolveSpecial(set: SpecialSet): string[] {
    if (set === 'all') return [...this.specialTokens.keys()];
    if (set === 'none') return [];
    for (const s of set) if (!this.specialTokens.has(s)) throw new UserError(`encode: ${JSON.stringify(s)} is not a special token of this tokenizer`);
    return [...set];
  }

  private specialRegex(names: readonly string[]): RegExp {
    const key = names.join('\u0000');
    let re = this.specialRegexCache.get(key);
    if (!re) {
      // Longest first so that a special token that prefixes another does not shadow it.
      const sorted = [...names].sort((a, b) => b.length - a.length);
      re = new RegExp(sorted.map(escapeRegex).join('|'), 'gu');
      this.specialRegexCache.set(key, re);
    }
    re.lastIndex = 0;
    return re;
  }

  private encodeOrdinaryInto(text: string, out: number[], dropout: number, random: (() => number) | undefined): void {
    if (text.length === 0) return;
    const re = this.regex;
    re.lastIndex = 0;
    let last = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const piece = m[0];
      if (m.index > last) this.encodePiece(text.slice(last, m.index), out, dropout, random);
      if (piece.length === 0) {
        re.lastIndex++;
        continue;
      }
      this.encodePiece(piece, out, dropout, random);
      last = m.index + piece.length;
    }
    if (last < text.length) this.encodePiece(text.slice(last), out, dropout, random);
  }

  private encodePiece(piece: string, out: number[], dropout: number, random: (() => number) | undefined): void {
    if (dropout > 0) {
      this.mergeBytes(utf8Encode(piece), out, dropout, random);
      return;
    }
    const whole = this.wholeTokens.get(piece);
    if (whole !== undefined) {
      out.push(whole);
      return;
    }
    const cached = this.cache.get(piece);
    if (cached !== undefined) {
      for (let i = 0; i < cached.length; i++) out.push(cached[i] as number);
      return;
    }
    const start = out.length;
    this.mergeBytes(utf8Encode(piece), out, 0, undefined);
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(piece, out.slice(start));
  }

  private mergeBytes(bytes: Uint8Array, out: number[], dropout: number, random: (() => number) | undefined): void {
    const n = bytes.length;
    if (n === 1) {
      out.push(this.byteIds[bytes[0] as number] as number);
      return;
    }
    if (this.parts.length < n) {
      this.parts = new Int32Array(n * 2);
      this.pairRanks = new Int32Array(n * 2);
    }
    const parts = this.parts;
    for (let i = 0; i < n; i++) parts[i] = this.byteIds[bytes[i] as number] as number;
    let m: number;
    if (dropout > 0 && random) m = mergeDropout(parts, n, this.table, dropout, random);
    else if (n <= SHORT_PIECE) m = mergeShort(parts, n, this.table, this.pairRanks);
    else m = mergeLong(parts, n, this.table);
    for (let i = 0; i < m; i++) out.push(parts[i] as number);
  }

  /** Rank of merging `left` and `right`, or undefined when they never merge. */
  mergeRank(left: number, right: number): number | undefined {
    const r = this.table.rank(left, right);
    return r === NO_MERGE ? undefined : r;
  }
}

/** Length of the valid UTF-8 sequence starting at i, or 0 when the byte there does not start one. */
export function validUtf8Length(bytes: Uint8Array, i: number): number {
  const b0 = bytes[i] as number;
  if (b0 < 0x80) return 1;
  const cont = (k: number): boolean => i + k < bytes.length && ((bytes[i + k] as number) & 0xc0) === 0x80;
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 >= 0xe0 && b0 <= 0xef) {
    const b1 = bytes[i + 1] ?? 0;
    if (b0 === 0xe0 && b1 < 0xa0) return 0;
    if (b0 === 0xed && b1 >= 0xa0) return 0; // surrogates are not valid UTF-8
    return cont(1) && cont(2) ? 3 : 0;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    const b1 = bytes[i + 1] ?? 0;
    if (b0 === 0xf0 && b1 < 0x90) return 0;
    if (b0 === 0xf4 && b1 >= 0x90) return 0;
    return cont(1) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}
