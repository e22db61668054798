// Unigram LM trainer (SentencePiece's algorithm): seed pieces from frequent substrings, EM over forward-backward
// expected counts, prune by the likelihood lost when a piece is removed, repeat to the target size. Not an encoder.
import { normalizeText, splitWords } from './normalize.js';
import { SubstringTrie } from './substring-trie.js';
import type { NormalizerOptions } from './normalize.js';
import { PieceTrie, UNK_PENALTY, UnigramTokenizer, byteToken, codePoints, logAddExp, viterbi } from './unigram.js';
import type { UnigramPiece } from './unigram.js';

export interface UnigramTrainOptions {
  /** Total vocabulary size, counting `<unk>`, special tokens and byte pieces. */
  vocabSize: number;
  specialTokens?: readonly string[];
  /** Add `<0x00>`…`<0xFF>` so that unknown characters encode as bytes (default true). */
  byteFallback?: boolean;
  /** Fraction of character occurrences the vocabulary must cover (default 0.9995, as sentencepiece). */
  characterCoverage?: number;
  /** Longest piece in code points (default 16). */
  maxPieceLength?: number;
  /** Seed pieces kept from the right-branching substring counts (default 1,000,000 as sentencepiece). */
  seedSize?: number;
  /** Fraction of pieces kept at each pruning step (default 0.75). */
  shrinkingFactor?: number;
  /** EM iterations between prunings (default 2). */
  subIterations?: number;
  /** Pieces never mix Unicode scripts, e.g. letters and punctuation (default true, as sentencepiece). */
  splitByUnicodeScript?: boolean;
  /** Digits never join letters in a piece (default true, as sentencepiece); false lets them join anything. */
  splitByNumber?: boolean;
  normalizer?: NormalizerOptions;
  onProgress?: (pieces: number, target: number) => void;
}

/** Counts normalised words (each starting with `▁`) of a text into `counts`. */
export function countUnigramWords(text: string, counts: Map<string, number>, normalizer: NormalizerOptions = {}): void {
  for (const line of text.split('\n')) {
    for (const w of splitWords(normalizeText(line, normalizer))) counts.set(w, (counts.get(w) ?? 0) + 1);
  }
}

/** ψ(x), the digamma function (recurrence up to x ≥ 7, then the asymptotic series). */
function digamma(x: number): number {
  let result = 0;
  for (; x < 7; x++) result -= 1 / x;
  x -= 0.5;
  const xx = 1 / x;
  const xx2 = xx * xx;
  const xx4 = xx2 * xx2;
  return result + Math.log(x) + (1 / 24) * xx2 - (7 / 960) * xx4 + (31 / 8064) * xx4 * xx2 - (127 / 30720) * xx4 * xx4;
}

// Script classes for the seed filter; Han, Hiragana and Katakana count as one (as sentencepiece does).
const SCRIPTS: ReadonlyArray<[RegExp, number]> = [
  [/\p{Script=Latin}/u, 1], [/\p{Script=Greek}/u, 2], [/\p{Script=Cyrillic}/u, 3], [/[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u, 4],
  [/\p{Script=Hangul}/u, 5], [/\p{Script=Arabic}/u, 6], [/\p{Script=Hebrew}/u, 7], [/\p{Script=Devanagari}/u, 8], [/\p{Script=Thai}/u, 9],
  [/\p{Script=Inherited}/u, -1], [/\p{L}/u, 10],
];
const scriptCache = new Map<number, number>();
/**
 * Script class of a code point: 0 for Common (punctuation, symbols, and digits when splitByNumber), -1 ("any": joins
 * everything) for combining marks and, without splitByNumber, digits — sentencepiece's rules.
 */
function scriptOf(cp: number, splitByNumber: boolean): number {
  let s = scriptCache.get(cp);
  if (s === undefined) {
    const ch = String.fromCodePoint(cp);
    s = /\p{N}/u.test(ch) ? 11 : 0;
    if (s === 0) for (const [re, id] of SCRIPTS) if (re.test(ch)) { s = id; break; }
    scriptCache.set(cp, s);
  }
  return s === 11 ? (splitByNumber ? 0 : -1) : s;
}

interface Word {
  text: string;
  cps: Int32Array;
  count: number;
}

export function trainUnigram(counts: ReadonlyMap<string, number>, options: UnigramTrainOptions): UnigramTokenizer {
  const specials = options.specialTokens ?? [];
  const byteFallback = options.byteFallback ?? true;
  const maxLen = options.maxPieceLength ?? 16;
  const meta = 1 + specials.length + (byteFallback ? 256 : 0);
  const target = options.vocabSize - meta;
  if (!Number.isInteger(options.vocabSize) || target < 1) {
    throw new Error(`trainUnigram: vocabSize must be an integer > ${meta} (unk + specials + byte pieces), got ${options.vocabSize}`);
  }
  const words: Word[] = [];
  for (const [w, c] of counts) if (w.length > 0) words.push({ text: w, cps: codePoints(w), count: c });

  // Required characters: the most frequent ones covering `characterCoverage` of all occurrences.
  const charFreq = new Map<number, number>();
  let totalChars = 0;
  for (const { cps, count } of words) for (const cp of cps) {
    charFreq.set(cp, (charFreq.get(cp) ?? 0) + count);
    totalChars += count;
  }
  const chars = [...charFreq].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  const coverage = options.characterCoverage ?? 0.9995;
  const required = new Set<string>();
  let covered = 0;
  for (const [cp, f] of chars) {
    if (required.size > 0 && covered / totalChars >= coverage) break;
    required.add(String.fromCodePoint(cp));
    covered += f;
  }
  const allowed = new Set([...required].map((c) => c.codePointAt(0) as number));

  // Seeds: substrings within words (never crossing `▁` except at their start), scored by frequency × length. Like
  // sentencepiece's suffix-array seeds, only right-branching substrings qualify: those followed by at least two
  // different characters or by a word end (a substring always followed by the same character is not a seed).
  const byScript = options.splitByUnicodeScript ?? true;
  const byNumber = options.splitByNumber ?? true;
  const trie = new SubstringTrie();
  for (const { cps, count } of words) {
    // Per code point, once per word: is it a required character, and its script class (-3 for `▁`).
    const L = cps.length;
    const ok = new Uint8Array(L);
    const cls = new Int8Array(L);
    for (let k = 0; k < L; k++) {
      const cp = cps[k] as number;
      ok[k] = allowed.has(cp) ? 1 : 0;
      cls[k] = cp === 0x2581 ? -3 : byScript ? scriptOf(cp, byNumber) : 0;
    }
    for (let i = 0; i < L; i++) {
      if (!ok[i]) continue;
      let script = cls[i] === -3 ? -1 : (cls[i] as number);
      let node = trie.child(0, cps[i] as number);
      for (let j = i + 1; j < L && j - i < maxLen; j++) {
        const sc = cls[j] as number;
        if (!ok[j] || sc === -3) break;
        if (sc !== -1 && script !== -1 && sc !== script) break;
        if (script === -1) script = sc;
        node = trie.child(node, cps[j] as number);
        trie.count(node, count, j + 1 < L ? (cps[j + 1] as number) : -1);
      }
    }
  }
  const seedSize = options.seedSize ?? 1_000_000;
  const seedNode: number[] = [];
  const seedScore: number[] = [];
  for (let node = 1; node < trie.size; node++) {
    const f = trie.freq[node] as number;
    if ((trie.depth[node] as number) < 2 || f < 2 || (trie.follow[node] as number) >= 0) continue;
    seedNode.push(node);
    seedScore.push(f * (trie.depth[node] as number));
  }
  const seedOrder = seedNode.map((_, i) => i).sort((a, b) => (seedScore[b] as number) - (seedScore[a] as number) || a - b);
  // Seed ids: required characters first, then the best substrings. Pieces only ever get removed, so every word's
  // lattice over the seeds is built once; later iterations skip edges of removed seeds.
  const seedPieces: string[] = [...required];
  const initial: number[] = seedPieces.map((p) => charFreq.get(p.codePointAt(0) as number) ?? 1);
  for (const i of seedOrder.slice(0, Math.max(0, seedSize - seedPieces.length))) {
    const node = seedNode[i] as number;
    seedPieces.push(trie.text(node));
    initial.push(trie.freq[node] as number);
  }
  const S = seedPieces.length;
  const isRequired = Uint8Array.from(seedPieces, (p) => (required.has(p) ? 1 : 0));
  const live = new Uint8Array(S).fill(1);
  const scores = new Float64Array(S);
  const logTotal = Math.log(initial.reduce((a, f) => a + f, 0));
  initial.forEach((f, i) => (scores[i] = Math.log(f) - logTotal));
  const lattice = buildLattice(words, seedPieces);
  let size = S;

  const desired = Math.max(required.size, Math.floor(target * 1.1));
  const shrink = options.shrinkingFactor ?? 0.75;
  const subIterations = options.subIterations ?? 2;
  for (;;) {
    for (let it = 0; it < subIterations; it++) {
      const expected = eStep(words, lattice, scores, live);
      // M-step with a digamma (Bayesian, sparsity-inducing) update; rare non-required pieces are dropped.
      let total = 0;
      for (let i = 0; i < S; i++) {
        if (!live[i]) continue;
        if (!isRequired[i] && (expected[i] as number) < 0.5) {
          live[i] = 0;
          size--;
        } else total += Math.max(expected[i] as number, 1e-6);
      }
      const lt = digamma(total);
      for (let i = 0; i < S; i++) if (live[i]) scores[i] = digamma(Math.max(expected[i] as number, 1e-6)) - lt;
    }
    options.onProgress?.(size, target);
    if (size <= desired) break;
    size = prune(words, lattice, seedPieces, scores, live, isRequired, Math.max(desired, Math.floor(size * shrink)));
  }
  // Final: required characters first, then the best-scoring pieces up to the target size.
  const order: number[] = [];
  for (let i = 0; i < S; i++) if (live[i]) order.push(i);
  order.sort((a, b) => (scores[b] as number) - (scores[a] as number) || a - b);
  const chosen = new Set<number>();
  for (const i of order) if (isRequired[i]) chosen.add(i);
  for (const i of order) if (chosen.size < target) chosen.add(i);
  const final = order.filter((i) => chosen.has(i));
  const pieces = seedPieces;

  const out: UnigramPiece[] = [{ piece: '<unk>', score: 0 }];
  const specialTokens = new Map<string, number>();
  for (const s of specials) {
    specialTokens.set(s, out.length);
    out.push({ piece: s, score: 0 });
  }
  if (byteFallback) for (let b = 0; b < 256; b++) out.push({ piece: byteToken(b), score: 0 });
  for (const i of final) out.push({ piece: pieces[i] as string, score: scores[i] as number });
  return new UnigramTokenizer({ pieces: out, unkId: 0, byteFallback, specialTokens, normalizer: options.normalizer ?? {} });
}

/** Every word's lattice over the seed pieces: edges (start, end, seed) sorted by start; seed -1 is an unknown char. */
interface Lattice {
  offsets: Int32Array; // word w's edges are [offsets[w], offsets[w + 1])
  starts: Int32Array;
  ends: Int32Array;
  seeds: Int32Array;
}

function buildLattice(words: readonly Word[], pieces: readonly string[]): Lattice {
  const trie = new PieceTrie();
  pieces.forEach((p, i) => trie.add(p, i));
  const offsets = new Int32Array(words.length + 1);
  let cap = 1 << 16;
  let starts: Int32Array<ArrayBuffer> = new Int32Array(cap);
  let ends: Int32Array<ArrayBuffer> = new Int32Array(cap);
  let seeds: Int32Array<ArrayBuffer> = new Int32Array(cap);
  let m = 0;
  const push = (start: number, end: number, seed: number): void => {
    if (m === cap) {
      cap *= 2;
      const grow = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
        const b = new Int32Array(cap);
        b.set(a);
        return b;
      };
      starts = grow(starts);
      ends = grow(ends);
      seeds = grow(seeds);
    }
    starts[m] = start;
    ends[m] = end;
    seeds[m++] = seed;
  };
  let longest = 1;
  for (const { cps } of words) longest = Math.max(longest, cps.length);
  const matchEnds = new Int32Array(longest);
  const matchIds = new Int32Array(longest);
  words.forEach(({ cps }, w) => {
    for (let i = 0; i < cps.length; i++) {
      const k = trie.matches(cps, i, matchEnds, matchIds);
      if (k === 0 || matchEnds[0] !== i + 1) push(i, i + 1, -1); // no single-character piece: unknown char
      for (let e = 0; e < k; e++) push(i, matchEnds[e] as number, matchIds[e] as number);
    }
    offsets[w + 1] = m;
  });
  return { offsets, starts: starts.slice(0, m), ends: ends.slice(0, m), seeds: seeds.slice(0, m) };
}

/**
 * Expected piece counts under the current model: forward-backward over each word's lattice, in linear probability
 * space (words are short); a word whose total probability underflows is redone in log space.
 */
function eStep(words: readonly Word[], lattice: Lattice, scores: Float64Array, live: Uint8Array): Float64Array {
  const S = scores.length;
  const expected = new Float64Array(S);
  let minScore = Infinity;
  for (let i = 0; i < S; i++) if (live[i]) minScore = Math.min(minScore, scores[i] as number);
  const unk = minScore - UNK_PENALTY;
  const prob = new Float64Array(S);
  for (let i = 0; i < S; i++) prob[i] = live[i] ? Math.exp(scores[i] as number) : 0;
  const unkProb = Math.exp(unk);
  const { offsets, starts, ends, seeds } = lattice;
  let fwd = new Float64Array(64);
  let bwd = new Float64Array(64);
  for (let w = 0; w < words.length; w++) {
    const { cps, count } = words[w] as Word;
    const n = cps.length;
    if (fwd.length < n + 1) {
      fwd = new Float64Array(2 * n + 2);
      bwd = new Float64Array(2 * n + 2);
    }
    fwd.fill(0, 0, n + 1);
    bwd.fill(0, 0, n + 1);
    const e0 = offsets[w] as number;
    const e1 = offsets[w + 1] as number;
    fwd[0] = 1;
    for (let e = e0; e < e1; e++) {
      const seed = seeds[e] as number;
      const p = seed < 0 ? unkProb : (prob[seed] as number);
      if (p === 0) continue;
      const end = ends[e] as number;
      fwd[end] = (fwd[end] as number) + (fwd[starts[e] as number] as number) * p;
    }
    const z = fwd[n] as number;
    if (!(z > 1e-250)) {
      eStepLog(lattice, w, n, count, scores, live, unk, expected);
      continue;
    }
    bwd[n] = 1;
    for (let e = e1 - 1; e >= e0; e--) {
      const seed = seeds[e] as number;
      const p = seed < 0 ? unkProb : (prob[seed] as number);
      if (p === 0) continue;
      const start = starts[e] as number;
      const contrib = (bwd[ends[e] as number] as number) * p;
      bwd[start] = (bwd[start] as number) + contrib;
      if (seed >= 0) expected[seed] = (expected[seed] as number) + (count * (fwd[start] as number) * contrib) / z;
    }
  }
  return expected;
}

/** Log-space forward-backward for one word (long words whose probability underflows in linear space). */
function eStepLog(lattice: Lattice, w: number, n: number, count: number, scores: Float64Array, live: Uint8Array, unk: number, expected: Float64Array): void {
  const { offsets, starts, ends, seeds } = lattice;
  const e0 = offsets[w] as number;
  const e1 = offsets[w + 1] as number;
  const fwd = new Float64Array(n + 1).fill(-Infinity);
  const bwd = new Float64Array(n + 1).fill(-Infinity);
  const score = (seed: number): number => (seed < 0 ? unk : live[seed] ? (scores[seed] as number) : -Infinity);
  fwd[0] = 0;
  for (let e = e0; e < e1; e++) {
    const end = ends[e] as number;
    fwd[end] = logAddExp(fwd[end] as number, (fwd[starts[e] as number] as number) + score(seeds[e] as number));
  }
  bwd[n] = 0;
  for (let e = e1 - 1; e >= e0; e--) {
    const start = starts[e] as number;
    bwd[start] = logAddExp(bwd[start] as number, (bwd[ends[e] as number] as number) + score(seeds[e] as number));
  }
  const z = fwd[n] as number;
  for (let e = e0; e < e1; e++) {
    const seed = seeds[e] as number;
    if (seed < 0 || !live[seed]) continue;
    const p = Math.exp((fwd[starts[e] as number] as number) + (scores[seed] as number) + (bwd[ends[e] as number] as number) - z);
    expected[seed] = (expected[seed] as number) + count * p;
  }
}

/** Viterbi path of word w over its lattice: seeds of the best segmentation (-1 = unknown char). */
function latticeViterbi(lattice: Lattice, w: number, n: number, scores: Float64Array, live: Uint8Array, unk: number, best: Float64Array, via: Int32Array, from: Int32Array): number[] {
  const { offsets, starts, ends, seeds } = lattice;
  best.fill(-Infinity, 0, n + 1);
  best[0] = 0;
  for (let e = offsets[w] as number; e < (offsets[w + 1] as number); e++) {
    const seed = seeds[e] as number;
    if (seed >= 0 && !live[seed]) continue;
    const start = starts[e] as number;
    const end = ends[e] as number;
    const s = (best[start] as number) + (seed < 0 ? unk : (scores[seed] as number));
    if (s > (best[end] as number)) {
      best[end] = s;
      via[end] = seed;
      from[end] = start;
    }
  }
  const path: number[] = [];
  for (let j = n; j > 0; j = from[j] as number) path.push(via[j] as number);
  return path;
}

/**
 * Keeps `size` pieces (marking the rest dead in `live`): those whose removal would cost the most likelihood. A
 * piece's cost is its Viterbi frequency times the log-probability lost by re-spelling it with its best alternative.
 */
function prune(words: readonly Word[], lattice: Lattice, pieces: readonly string[], scores: Float64Array, live: Uint8Array, isRequired: Uint8Array, size: number): number {
  const S = pieces.length;
  const trie = new PieceTrie();
  let minScore = Infinity;
  for (let i = 0; i < S; i++) {
    if (!live[i]) continue;
    trie.add(pieces[i] as string, i);
    minScore = Math.min(minScore, scores[i] as number);
  }
  const unk = minScore - UNK_PENALTY;
  const freq = new Float64Array(S);
  const wordFreq = new Float64Array(S); // Σ counts of words whose best path uses the piece
  let wordTotal = 0;
  let maxLen = 1;
  for (const { cps } of words) maxLen = Math.max(maxLen, cps.length);
  const best = new Float64Array(maxLen + 1);
  const via = new Int32Array(maxLen + 1);
  const from = new Int32Array(maxLen + 1);
  const seen = new Set<number>();
  words.forEach(({ cps, count }, w) => {
    wordTotal += count;
    seen.clear();
    for (const id of latticeViterbi(lattice, w, cps.length, scores, live, unk, best, via, from)) {
      if (id < 0) continue;
      freq[id] = (freq[id] as number) + count;
      seen.add(id);
    }
    for (const id of seen) wordFreq[id] = (wordFreq[id] as number) + count;
  });
  let sum = 0;
  for (let i = 0; i < S; i++) sum += freq[i] as number;
  const logSum = Math.log(sum);
  const loss = new Float64Array(S);
  let kept = 0;
  const candidates: number[] = [];
  for (let i = 0; i < S; i++) {
    if (!live[i]) continue;
    const f = freq[i] as number;
    if (isRequired[i]) {
      kept++;
      continue;
    }
    if (f === 0) {
      live[i] = 0; // never on a best path: removing it costs nothing
      continue;
    }
    const alt = viterbi(codePoints(pieces[i] as string), trie, scores, unk, i);
    if (alt.includes(-1)) {
      kept++;
      continue;
    }
    const logpPiece = Math.log(f) - logSum;
    // Removing the piece moves its frequency onto its alternatives.
    const logSumAlt = Math.log(sum + f * (alt.length - 1));
    let logpAlt = 0;
    for (const a of alt) logpAlt += Math.log((freq[a] as number) + f) - logSumAlt;
    loss[i] = ((wordFreq[i] as number) / wordTotal) * (logpPiece - logpAlt);
    candidates.push(i);
  }
  candidates.sort((a, b) => (loss[b] as number) - (loss[a] as number) || a - b);
  const room = Math.max(0, size - kept);
  for (let k = room; k < candidates.length; k++) live[candidates[k] as number] = 0;
  return kept + Math.min(room, candidates.length);
}
