// Byte-level BPE trainer: counts pre-tokens, then merges the most frequent adjacent pair until the vocabulary is
// full, updating pair counts incrementally (only words that contain the merged pair are touched). Not an encoder.
import { utf8Encode } from './bytes.js';
import type { MergeRule } from './bpe.js';
import { BpeTokenizer } from './bpe.js';
import { compilePattern } from './patterns.js';

export interface BpeTrainOptions {
  /** Total vocabulary size: 256 byte tokens + merges + special tokens. */
  vocabSize: number;
  /** Pairs seen fewer times than this are never merged (default 2). */
  minFrequency?: number;
  /** Special tokens, given the last ids (default none). */
  specialTokens?: readonly string[];
  /** Pre-tokenisation pattern name or JavaScript regex source (default 'gpt2'). */
  pattern?: string;
  /** Called every few hundred merges with (merges done, merges wanted). */
  onProgress?: (done: number, total: number) => void;
}

/** Counts pre-tokens of a text into `counts`; call once per document or chunk, then pass counts to trainBpe. */
export function countPreTokens(text: string, counts: Map<string, number>, pattern = 'gpt2'): void {
  const re = compilePattern(pattern);
  for (const m of text.toWellFormed().matchAll(re)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
}

/** Pair key for ids below 2^21 (vocabularies up to two million tokens); exact in a float64. */
const pairKey = (a: number, b: number): number => a * 2097152 + b;

/** Max-heap of (count, pair key) with lazy invalidation; ties break toward the smaller key for determinism. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];
  get size(): number {
    return this.counts.length;
  }
  private above(i: number, j: number): boolean {
    const ci = this.counts[i] as number;
    const cj = this.counts[j] as number;
    return ci > cj || (ci === cj && (this.keys[i] as number) < (this.keys[j] as number));
  }
  private swap(i: number, j: number): void {
    const c = this.counts[i] as number;
    this.counts[i] = this.counts[j] as number;
    this.counts[j] = c;
    const k = this.keys[i] as number;
    this.keys[i] = this.keys[j] as number;
    this.keys[j] = k;
  }
  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): [number, number] {
    const top: [number, number] = [this.counts[0] as number, this.keys[0] as number];
    const lastCount = this.counts.pop() as number;
    const lastKey = this.keys.pop() as number;
    if (this.counts.length > 0) {
      this.counts[0] = lastCount;
      this.keys[0] = lastKey;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < this.counts.length && this.above(l, best)) best = l;
        if (r < this.counts.length && this.above(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

/** Trains merges from pre-token counts and returns a tokenizer using the same pattern. */
export function trainBpe(counts: ReadonlyMap<string, number>, options: BpeTrainOptions): BpeTokenizer {
  const pattern = options.pattern ?? 'gpt2';
  const specials = options.specialTokens ?? [];
  const minFrequency = Math.max(1, options.minFrequency ?? 2);
  const wanted = options.vocabSize - 256 - specials.length;
  if (!Number.isInteger(options.vocabSize) || wanted < 0) {
    throw new Error(`trainBpe: vocabSize must be an integer ≥ 256 + ${specials.length} special tokens, got ${options.vocabSize}`);
  }
  if (options.vocabSize > 2097152) throw new Error(`trainBpe: vocabSize above 2,097,152 is not supported, got ${options.vocabSize}`);

  // Words as symbol arrays with their frequencies.
  const words: Int32Array[] = [];
  const freqs: number[] = [];
  for (const [text, count] of counts) {
    const b = utf8Encode(text);
    if (b.length === 0) continue;
    words.push(Int32Array.from(b));
    freqs.push(count);
  }
  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addPairs = (w: number, sign: number): void => {
    const word = words[w] as Int32Array;
    const f = (freqs[w] as number) * sign;
    for (let i = 0; i + 1 < word.length; i++) {
      const k = pairKey(word[i] as number, word[i + 1] as number);
      pairCounts.set(k, (pairCounts.get(k) ?? 0) + f);
      if (sign > 0) {
        let set = pairWords.get(k);
        if (!set) pairWords.set(k, (set = new Set()));
        set.add(w);
      }
    }
  };
  for (let w = 0; w < words.length; w++) addPairs(w, 1);
  const heap = new PairHeap();
  for (const [k, c] of pairCounts) heap.push(c, k);

  const tokens: Uint8Array[] = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
  const merges: MergeRule[] = [];
  while (merges.length < wanted && heap.size > 0) {
    const [count, key] = heap.pop();
    const current = pairCounts.get(key) ?? 0;
    if (current !== count) {
      if (current > 0) heap.push(current, key); // stale entry: requeue with its present count
      continue;
    }
    if (count < minFrequency) break;
    const left = Math.floor(key / 2097152);
    const right = key - left * 2097152;
    const result = tokens.length;
    const lb = tokens[left] as Uint8Array;
    const rb = tokens[right] as Uint8Array;
    const merged = new Uint8Array(lb.length + rb.length);
    merged.set(lb, 0);
    merged.set(rb, lb.length);
    tokens.push(merged);
    merges.push({ left, right, result, rank: merges.length });
    // Incremental update: only the words that contain the pair change; remove their old pairs, merge, re-add.
    const affected = pairWords.get(key);
    pairWords.delete(key);
    const touched = new Set<number>();
    for (const w of affected ?? []) {
      const word = words[w] as Int32Array;
      let has = false;
      for (let i = 0; i + 1 < word.length; i++) if (word[i] === left && word[i + 1] === right) has = true;
      if (!has) continue;
      addPairs(w, -1);
      const out = new Int32Array(word.length);
      let n = 0;
      for (let i = 0; i < word.length; i++) {
        if (i + 1 < word.length && word[i] === left && word[i + 1] === right) {
          out[n++] = result;
          i++;
        } else out[n++] = word[i] as number;
      }
      words[w] = out.slice(0, n);
      addPairs(w, 1);
      const nw = words[w] as Int32Array;
      for (let i = 0; i + 1 < nw.length; i++) {
        if (nw[i] === result || nw[i + 1] === result) touched.add(pairKey(nw[i] as number, nw[i + 1] as number));
      }
    }
    pairCounts.delete(key);
    for (const k of touched) {
      const c = pairCounts.get(k) ?? 0;
      if (c > 0) heap.push(c, k);
    }
    if (options.onProgress && merges.length % 256 === 0) options.onProgress(merges.length, wanted);
  }
  options.onProgress?.(merges.length, wanted);
  const specialTokens = new Map<string, number>();
  specials.forEach((s, i) => specialTokens.set(s, tokens.length + i));
  return new BpeTokenizer({ pattern, tokens, merges, specialTokens, ignoreMerges: false });
}
