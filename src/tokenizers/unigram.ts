// Unigram language-model tokenizer (SentencePiece's model): pieces with log-probabilities, Viterbi encoding,
// sampling of segmentations (forward-filtering, backward-sampling), byte fallback. Training is in unigram-trainer.ts.
import { UserError } from '../util/errors.js';
import { utf8Decode, utf8Encode } from './bytes.js';
import { PairTable } from './merge.js';
import { denormalizeText, normalizeText, splitWords } from './normalize.js';
import type { NormalizerOptions } from './normalize.js';

export interface UnigramPiece {
  piece: string;
  score: number;
}

export interface UnigramSpec {
  /** Every piece by id, including `<unk>`, special tokens and (with byte fallback) `<0x00>`…`<0xFF>`. */
  pieces: readonly UnigramPiece[];
  unkId: number;
  byteFallback: boolean;
  /** Ids of special tokens (control / user-defined symbols) by their text. */
  specialTokens?: ReadonlyMap<string, number>;
  normalizer?: NormalizerOptions;
  /** Where the model came from (a file name), for error messages. */
  source?: string;
}

export const UNK_PENALTY = 10; // an unknown character scores this much below the worst piece (as sentencepiece)

export const byteToken = (b: number): string => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;

/** A code-point trie over pieces (edges in an integer hash table); `ids[node]` is the piece ending there or -1. */
export class PieceTrie {
  private readonly edges = new PairTable(1 << 12); // (node, code point) → child node
  private ids: number[] = [-1];

  add(piece: string, id: number): void {
    let node = 0;
    for (const ch of piece) {
      const cp = ch.codePointAt(0) as number;
      const slot = this.edges.find(node, cp);
      if (slot >= 0) node = this.edges.resultAt(slot);
      else {
        const next = this.ids.length;
        this.ids.push(-1);
        this.edges.add(node, cp, 0, next);
        node = next;
      }
    }
    this.ids[node] = id;
  }

  /** Writes (end, id) of every piece starting at `start` into ends/ids (room for cps.length - start); returns the count. */
  matches(cps: ArrayLike<number>, start: number, ends: Int32Array, ids: Int32Array): number {
    let node = 0;
    let m = 0;
    for (let j = start; j < cps.length; j++) {
      const slot = this.edges.find(node, cps[j] as number);
      if (slot < 0) break;
      node = this.edges.resultAt(slot);
      const id = this.ids[node] as number;
      if (id >= 0) {
        ends[m] = j + 1;
        ids[m++] = id;
      }
    }
    return m;
  }

  /** Calls fn(end, id) for every piece that starts at `start` in the code-point array. */
  prefixes(cps: ArrayLike<number>, start: number, fn: (end: number, id: number) => void): void {
    let node = 0;
    for (let j = start; j < cps.length; j++) {
      const slot = this.edges.find(node, cps[j] as number);
      if (slot < 0) return;
      node = this.edges.resultAt(slot);
      const id = this.ids[node] as number;
      if (id >= 0) fn(j + 1, id);
    }
  }
}

export function codePoints(text: string): Int32Array {
  const out: number[] = [];
  for (const ch of text) out.push(ch.codePointAt(0) as number);
  return Int32Array.from(out);
}

/** Best segmentation of cps: piece ids, with -1 marking an uncovered (unknown) code point. */
export function viterbi(cps: Int32Array, trie: PieceTrie, scores: ArrayLike<number>, unkScore: number, exclude = -1): number[] {
  const n = cps.length;
  const best = new Float64Array(n + 1).fill(-Infinity);
  const from = new Int32Array(n + 1);
  const via = new Int32Array(n + 1);
  best[0] = 0;
  for (let i = 0; i < n; i++) {
    const base = best[i] as number;
    if (base === -Infinity) continue;
    let covered = false;
    trie.prefixes(cps, i, (end, id) => {
      if (id === exclude) return;
      if (end === i + 1) covered = true;
      const s = base + (scores[id] as number);
      if (s > (best[end] as number)) {
        best[end] = s;
        from[end] = i;
        via[end] = id;
      }
    });
    if (!covered && base + unkScore > (best[i + 1] as number)) {
      best[i + 1] = base + unkScore;
      from[i + 1] = i;
      via[i + 1] = -1;
    }
  }
  const out: number[] = [];
  for (let j = n; j > 0; j = from[j] as number) out.push(via[j] as number);
  return out.reverse();
}

export class UnigramTokenizer {
  readonly pieces: readonly UnigramPiece[];
  readonly unkId: number;
  readonly byteFallback: boolean;
  readonly specialTokens: ReadonlyMap<string, number>;
  readonly normalizer: NormalizerOptions;
  readonly vocabSize: number;
  private readonly trie = new PieceTrie();
  private readonly scores: Float64Array;
  private readonly unkScore: number;
  private readonly byteIds = new Int32Array(256).fill(-1);
  private readonly byteOfId = new Map<number, number>();
  private readonly cache = new Map<string, number[]>();
  private specialRegex: RegExp | undefined;

  constructor(spec: UnigramSpec) {
    this.pieces = spec.pieces;
    this.unkId = spec.unkId;
    this.byteFallback = spec.byteFallback;
    this.specialTokens = spec.specialTokens ?? new Map();
    this.normalizer = spec.normalizer ?? {};
    this.vocabSize = spec.pieces.length;
    this.scores = Float64Array.from(spec.pieces, (p) => p.score);
    if (!(spec.unkId >= 0 && spec.unkId < spec.pieces.length)) throw new UserError(`${spec.source ?? 'unigram'}: unk id ${spec.unkId} is not a piece id (${spec.pieces.length} pieces)`);
    const special = new Set(this.specialTokens.values());
    let minScore = Infinity;
    spec.pieces.forEach((p, id) => {
      const m = /^<0x([0-9A-F]{2})>$/.exec(p.piece);
      if (spec.byteFallback && m) {
        const b = parseInt(m[1] as string, 16);
        this.byteIds[b] = id;
        this.byteOfId.set(id, b);
        return;
      }
      if (id === spec.unkId || special.has(id)) return;
      this.trie.add(p.piece, id);
      minScore = Math.min(minScore, p.score);
    });
    if (spec.byteFallback && this.byteIds.includes(-1)) throw new UserError(`${spec.source ?? 'unigram'}: byte fallback needs the 256 pieces <0x00>…<0xFF>`);
    this.unkScore = (Number.isFinite(minScore) ? minScore : 0) - UNK_PENALTY;
  }

  /** Normalised form of the text (NFKC, `▁` for spaces) that the pieces spell. */
  normalize(text: string): string {
    return normalizeText(text, this.normalizer);
  }

  /** Viterbi (most likely) segmentation; with `sample`, draws a segmentation with probability ∝ P(seg)^alpha. */
  encode(text: string, options: { sample?: { alpha: number; random: () => number }; allowSpecial?: boolean } = {}): number[] {
    const out: number[] = [];
    if (!options.allowSpecial || this.specialTokens.size === 0) {
      this.encodeSegment(text, options.sample, out);
      return out;
    }
    // Special tokens written in the text become their ids; the text between them is normalised on its own (as
    // Hugging Face does around added tokens).
    this.specialRegex ??= new RegExp([...this.specialTokens.keys()].sort((a, b) => b.length - a.length).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'gu');
    const re = this.specialRegex;
    re.lastIndex = 0;
    let last = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      this.encodeSegment(text.slice(last, m.index), options.sample, out);
      out.push(this.specialTokens.get(m[0]) as number);
      last = m.index + m[0].length;
    }
    this.encodeSegment(text.slice(last), options.sample, out);
    return out;
  }

  private encodeSegment(text: string, sample: { alpha: number; random: () => number } | undefined, out: number[]): void {
    const options = { sample };
    for (const word of splitWords(this.normalize(text))) {
      if (options.sample) {
        this.emit(codePoints(word), this.sampleWord(codePoints(word), options.sample.alpha, options.sample.random), out);
        continue;
      }
      let ids = this.cache.get(word);
      if (!ids) {
        ids = [];
        const cps = codePoints(word);
        this.emit(cps, viterbi(cps, this.trie, this.scores, this.unkScore), ids);
        if (this.cache.size > 200_000) this.cache.clear();
        this.cache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /** Pieces as strings (for inspection). */
  encodeAsPieces(text: string): string[] {
    return this.encode(text).map((id) => (this.pieces[id] as UnigramPiece).piece);
  }

  decode(ids: ArrayLike<number>): string {
    const bytes: number[] = [];
    let text = '';
    const flush = (): void => {
      if (bytes.length > 0) text += utf8Decode(Uint8Array.from(bytes));
      bytes.length = 0;
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      const piece = this.pieces[id];
      if (!piece) throw new UserError(`decode: unknown token id ${id} at position ${i} (vocabulary size ${this.vocabSize})`);
      const b = this.byteOfId.get(id);
      if (b !== undefined) {
        bytes.push(b);
        continue;
      }
      flush();
      text += id === this.unkId ? ' \u2047 ' : piece.piece;
    }
    flush();
    return denormalizeText(text, this.normalizer.addDummyPrefix ?? true);
  }

  private emit(cps: Int32Array, path: number[], out: number[]): void {
    let pos = 0;
    for (const id of path) {
      if (id >= 0) {
        out.push(id);
        pos += [...(this.pieces[id] as UnigramPiece).piece].length;
        continue;
      }
      // Unknown code point: its UTF-8 bytes with byte fallback, else <unk>.
      const cp = cps[pos++] as number;
      if (this.byteFallback) for (const b of utf8Encode(String.fromCodePoint(cp))) out.push(this.byteIds[b] as number);
      else out.push(this.unkId);
    }
  }

  /** Forward filtering (log-sum-exp over the lattice), then backward sampling of one path. */
  private sampleWord(cps: Int32Array, alpha: number, random: () => number): number[] {
    const n = cps.length;
    const fwd = new Float64Array(n + 1).fill(-Infinity);
    fwd[0] = 0;
    const edges: Array<Array<[number, number]>> = Array.from({ length: n + 1 }, () => []); // edges[end] = [start, id]
    for (let i = 0; i < n; i++) {
      let covered = false;
      this.trie.prefixes(cps, i, (end, id) => {
        if (end === i + 1) covered = true;
        (edges[end] as Array<[number, number]>).push([i, id]);
      });
      if (!covered) (edges[i + 1] as Array<[number, number]>).push([i, -1]);
    }
    const edgeScore = (id: number): number => alpha * (id < 0 ? this.unkScore : (this.scores[id] as number));
    for (let j = 1; j <= n; j++) {
      let acc = -Infinity;
      for (const [i, id] of edges[j] as Array<[number, number]>) acc = logAddExp(acc, (fwd[i] as number) + edgeScore(id));
      fwd[j] = acc;
    }
    const path: number[] = [];
    for (let j = n; j > 0; ) {
      const options = edges[j] as Array<[number, number]>;
      let u = random();
      let chosen = options[options.length - 1] as [number, number];
      for (const e of options) {
        u -= Math.exp((fwd[e[0]] as number) + edgeScore(e[1]) - (fwd[j] as number));
        if (u <= 0) {
          chosen = e;
          break;
        }
      }
      path.push(chosen[1]);
      j = chosen[0];
    }
    return path.reverse();
  }
}

export function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  return a > b ? a + Math.log1p(Math.exp(b - a)) : b + Math.log1p(Math.exp(a - b));
}
