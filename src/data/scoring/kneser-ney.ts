// Interpolated modified Kneser-Ney n-gram language model (Chen & Goodman 1998, as in KenLM) trained on a
// reference corpus of good text, and CCNet's document score: perplexity over the document's lines.
// Words are lower-cased word/punctuation tokens (CCNet used SentencePiece pieces; no tokenizer dependency here).
// Not a neural scorer; see scorer.ts for the interface both kinds implement.
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../writers.js';
import { KeyTable } from '../keytable.js';
import { UserError } from '../../util/errors.js';

const MAGIC = 'lmforge-kneser-ney';
const VERSION = 1;
const BOS = '<s>';
const EOS = '</s>';
const UNK = '<unk>';
const TOKEN_RE = /[\p{L}\p{N}\p{M}]+(?:['’-][\p{L}\p{N}\p{M}]+)*|[^\s\p{L}\p{N}\p{M}]/gu;

export function lmTokens(line: string): string[] {
  return line.toLowerCase().match(TOKEN_RE) ?? [];
}

interface Order {
  /** Adjusted counts a(h w) by n-gram key: raw counts at the top order or after <s>, continuation counts otherwise. */
  ngrams: KeyTable;
  count: Float64Array;
  /** Per history h: the total a(h.) and the discount mass D1 N1(h.) + D2 N2(h.) + D3 N3+(h.). */
  histories: KeyTable;
  total: Float64Array;
  gammaMass: Float64Array;
  /** Discounts for adjusted counts 1, 2 and 3+. */
  discounts: [number, number, number];
  /** The word-keyed counts, kept for saving. */
  words: Map<string, number>;
}

const EMPTY_KEY = 0x12345;

/**
 * Extends a sequence key by one more word id to the left: two 32-bit lanes folded into a 52-bit number so the
 * tables key on numbers. A history h = (.., h2, h1) has key fold(..fold(fold(EMPTY, h1), h2)..), and the n-gram
 * (h, w) has key fold(..fold(fold(EMPTY, w), h1)..). Collisions are ~2^-52 per pair of distinct n-grams.
 */
function fold(key: number, id: number): number {
  const hi = Math.floor(key / 4294967296);
  const lo = key >>> 0;
  let a = Math.imul(lo ^ Math.imul(id, 0x9e3779b1), 0x85ebca6b);
  a ^= a >>> 13;
  a = Math.imul(a, 0xc2b2ae35);
  a ^= a >>> 16;
  let b = Math.imul(hi ^ Math.imul(id + 0x632be5ab, 0x27d4eb2f), 0x165667b1);
  b ^= b >>> 15;
  b = Math.imul(b, 0x85ebca77);
  b ^= b >>> 13;
  return (b & 0x1fffff) * 4294967296 + (a >>> 0);
}

interface SavedModel {
  magic: string;
  version: number;
  order: number;
  vocab: string[];
  counts: [string, number][][];
  discounts: [number, number, number][];
}

/** Chen & Goodman's estimates from the count-of-counts n1..n4: D_k = k - (k+1) Y n_{k+1}/n_k, Y = n1/(n1+2 n2). */
export function modifiedDiscounts(n: [number, number, number, number]): [number, number, number] {
  const [n1, n2, n3, n4] = n;
  if (n1 === 0 || n2 === 0 || n3 === 0 || n4 === 0) {
    // Too little data for the estimate: fall back to the common constant discounts.
    return [0.5, 1.0, 1.5];
  }
  const Y = n1 / (n1 + 2 * n2);
  const clamp = (d: number, k: number): number => Math.min(Math.max(d, 0.01), k);
  return [clamp(1 - 2 * Y * (n2 / n1), 1), clamp(2 - 3 * Y * (n3 / n2), 2), clamp(3 - 4 * Y * (n4 / n3), 3)];
}

export class KneserNeyLM {
  private readonly orders: Order[] = [];
  private readonly ids = new Map<string, number>();
  private readonly unkId: number;

  private constructor(readonly order: number, vocab: string[], counts: Map<string, number>[], discounts?: [number, number, number][]) {
    for (const w of vocab) this.ids.set(w, this.ids.size + 1);
    if (!this.ids.has(BOS)) this.ids.set(BOS, this.ids.size + 1);
    this.unkId = this.ids.get(UNK)!;
    for (let k = 0; k < order; k++) {
      const c = counts[k]!;
      let d = discounts?.[k];
      if (d === undefined) {
        const coc: [number, number, number, number] = [0, 0, 0, 0];
        for (const v of c.values()) if (v >= 1 && v <= 4) coc[v - 1]!++;
        d = modifiedDiscounts(coc);
      }
      const ngrams = new KeyTable(c.size);
      const count = new Float64Array(ngrams.capacity);
      const histories = new KeyTable(c.size);
      const total = new Float64Array(histories.capacity);
      const gammaMass = new Float64Array(histories.capacity);
      for (const [ngram, v] of c) {
        const ws = ngram.split(' ').map((w) => this.ids.get(w) ?? this.unkId);
        let hk = EMPTY_KEY;
        for (let j = ws.length - 2; j >= 0; j--) hk = fold(hk, ws[j]!);
        let nk = fold(EMPTY_KEY, ws[ws.length - 1]!);
        for (let j = ws.length - 2; j >= 0; j--) nk = fold(nk, ws[j]!);
        count[ngrams.insert(nk)] = v;
        const h = histories.insert(hk);
        total[h]! += v;
        gammaMass[h]! += d[Math.min(v, 3) - 1]!;
      }
      this.orders.push({ ngrams, count, histories, total, gammaMass, discounts: d, words: c });
    }
  }

  /** Trains on lines of text (each line is a sentence framed by <s> ... </s>). */
  static train(lines: Iterable<string>, order = 5): KneserNeyLM {
    if (order < 1 || order > 8) throw new Error(`Kneser-Ney order must be 1..8, got ${order}`);
    const raw: Map<string, number>[] = Array.from({ length: order }, () => new Map());
    const vocab = new Set<string>([EOS, UNK]);
    for (const line of lines) {
      const toks = lmTokens(line);
      if (toks.length === 0) continue;
      for (const t of toks) vocab.add(t);
      const seq = [BOS, ...toks, EOS];
      for (let i = 1; i < seq.length; i++) {
        for (let k = 1; k <= order && i - k + 1 >= 0; k++) {
          const key = seq.slice(i - k + 1, i + 1).join(' ');
          raw[k - 1]!.set(key, (raw[k - 1]!.get(key) ?? 0) + 1);
        }
      }
    }
    // Adjusted counts: the top order and n-grams starting with <s> keep raw counts; the others count the distinct
    // words that precede them (continuation counts), which is what makes the lower orders Kneser-Ney.
    const adjusted: Map<string, number>[] = Array.from({ length: order }, () => new Map());
    adjusted[order - 1] = raw[order - 1]!;
    for (let k = order - 1; k >= 1; k--) {
      const cont = new Map<string, number>();
      for (const key of raw[k]!.keys()) {
        const suffix = key.slice(key.indexOf(' ') + 1);
        cont.set(suffix, (cont.get(suffix) ?? 0) + 1);
      }
      const a = adjusted[k - 1]!;
      for (const [key, v] of raw[k - 1]!) a.set(key, key.startsWith(BOS + ' ') || key === BOS ? v : (cont.get(key) ?? v));
    }
    return new KneserNeyLM(order, [...vocab], adjusted);
  }

  private id(word: string): number {
    return this.ids.get(word) ?? this.unkId;
  }

  /** log10 P(word | history), interpolating from the unigram (with a uniform floor) up to the longest seen history. */
  logProb(word: string, history: string[]): number {
    return this.logProbIds(this.id(word), history.map((w) => this.id(w)), history.length);
  }

  /** The same on ids; the history is hist[0 .. end). */
  private logProbIds(w: number, hist: number[], end: number): number {
    // V counts the predictable words: the vocabulary with <unk> and </s>, without <s>.
    const V = this.ids.size - 1;
    const o1 = this.orders[0]!;
    const root = o1.histories.find(EMPTY_KEY);
    const rootTotal = o1.total[root]!;
    let nk = fold(EMPTY_KEY, w);
    const s1 = o1.ngrams.find(nk);
    const a1 = s1 === -1 ? 0 : o1.count[s1]!;
    let p = Math.max(a1 - (a1 > 0 ? o1.discounts[Math.min(a1, 3) - 1]! : 0), 0) / rootTotal + o1.gammaMass[root]! / rootTotal / V;
    const maxH = Math.min(end, this.order - 1);
    let hk = EMPTY_KEY;
    for (let k = 1; k <= maxH; k++) {
      const o = this.orders[k]!;
      const prev = hist[end - k]!;
      hk = fold(hk, prev);
      nk = fold(nk, prev);
      const hs = o.histories.find(hk);
      if (hs === -1) break; // a longer history cannot have been seen either
      const slot = o.ngrams.find(nk);
      const a = slot === -1 ? 0 : o.count[slot]!;
      const disc = a > 0 ? o.discounts[Math.min(a, 3) - 1]! : 0;
      const tot = o.total[hs]!;
      p = (a - disc) / tot + (o.gammaMass[hs]! / tot) * p;
    }
    return Math.log10(p);
  }

  /** Sum of log10 probabilities of a line's tokens and </s>, and the number of predicted tokens. */
  scoreLine(line: string): { logProb: number; tokens: number } {
    const toks = lmTokens(line);
    if (toks.length === 0) return { logProb: 0, tokens: 0 };
    const seq = [this.ids.get(BOS)!];
    for (const t of toks) seq.push(this.id(t));
    seq.push(this.ids.get(EOS)!);
    let lp = 0;
    for (let i = 1; i < seq.length; i++) lp += this.logProbIds(seq[i]!, seq, i);
    return { logProb: lp, tokens: toks.length + 1 };
  }

  /** CCNet's document perplexity: 10^(-sum of log10 p / number of tokens) over all non-empty lines. */
  perplexity(text: string): number {
    let lp = 0;
    let n = 0;
    for (const line of text.split('\n')) {
      const s = this.scoreLine(line);
      lp += s.logProb;
      n += s.tokens;
    }
    return n === 0 ? Infinity : Math.pow(10, -lp / n);
  }

  save(path: string): void {
    const m: SavedModel = {
      magic: MAGIC,
      version: VERSION,
      order: this.order,
      vocab: [...this.ids.keys()].filter((w) => w !== BOS),
      counts: this.orders.map((o) => [...o.words.entries()]),
      discounts: this.orders.map((o) => o.discounts),
    };
    writeFileAtomic(path, JSON.stringify(m));
  }

  static load(path: string): KneserNeyLM {
    let m: SavedModel;
    try {
      m = JSON.parse(readFileSync(path, 'utf8')) as SavedModel;
    } catch (e) {
      throw new UserError(`${path}: cannot read Kneser-Ney model (${(e as Error).message})`, { cause: e });
    }
    if (m.magic !== MAGIC) throw new UserError(`${path}: not a Kneser-Ney model (magic "${String(m.magic)}", expected "${MAGIC}")`);
    if (m.version !== VERSION) throw new UserError(`${path}: model version ${m.version}, expected ${VERSION}; retrain it`);
    return new KneserNeyLM(m.order, m.vocab, m.counts.map((c) => new Map(c)), m.discounts);
  }
}
