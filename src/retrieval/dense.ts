// The dense dual encoder: a bag-of-subwords model over the project's BPE tokenizers, trained with InfoNCE
// (in-batch negatives plus BM25 hard negatives, as DPR). Not the search (ip-search.ts) nor the vector file (dense-index.ts).
//
// Model. Text → NFKC, lowercase, words (the BM25 analyzer's token rule) → each word's BPE pieces (encoded as
// " word", so a piece does not depend on its neighbours) → rows of a compact vocabulary (the pieces seen in the
// training corpus; unseen pieces are dropped). With c_t = 1 + ln tf_t (sublinear term frequency),
//   v(x) = Σ_t c_t · w_side[t] · E[t],   f(x) = v / ‖v‖,   s(q, p) = f(q)·f(p) / τ
// E (V, D) is shared by both towers, and each tower has its own per-piece weight (w_q, w_p), initialised to the
// piece's IDF over the passages, while E starts as random N(0, 1/D) rows: the untrained encoder is then a random
// projection of TF-IDF cosine, and training moves what it needs from there.
// Loss (InfoNCE): for B questions and the batch's candidate passages C (their positives, one BM25 hard negative
// each, deduplicated), L = mean_i [ −s(q_i, p_i⁺) + log Σ_{c∈C} exp s(q_i, c) ], where a candidate that is another
// copy of q_i's own passage is left out of its denominator. Optimised with lazy (row-sparse) Adam.
import { mulberry32 } from '../util/mulberry32.js';
import { encodeText, type Tokenizer } from '../tokenizers/tokenizer.js';
import { Analyzer, DEFAULT_ANALYZER } from './analyzer.js';

export interface DenseConfig {
  /** Embedding width D. */
  dim: number;
  /** Softmax temperature τ over the scores. */
  tau: number;
  /**
   * 'log': c_t = 1 + ln tf on both sides and unit-length passage vectors (TF-IDF cosine at init).
   * 'bm25': passages get BM25's saturation c_t = tf·(k1+1)/(tf + k1·(1 − b + b·len/avgLen)) (len in pieces) and
   * are not normalised, queries c_t = tf with w_q = 1 at init: with orthonormal rows the score would be BM25 itself,
   * with random ones it is BM25 plus projection noise, and training moves on from there.
   */
  termWeight: 'log' | 'bm25';
  k1: number;
  b: number;
  /** Mean passage length in pieces (set by init from the corpus). */
  avgLen: number;
  /**
   * What a text is a bag of: 'bpe' = the tokenizer's subword pieces; 'terms' = the BM25 analyzer's terms (stopwords
   * dropped, Porter-stemmed), each a 32-bit hash, plus (with `bigrams`) hashes of adjacent term pairs. Absent = 'bpe'
   * (encoders saved before the option existed).
   */
  units?: 'bpe' | 'terms';
  /** With units 'terms': also a unit per pair of adjacent terms ("new york" is not "new" + "york"). */
  bigrams?: boolean;
  /** With units 'terms': n of the character n-grams added per word (absent/0: none). */
  charGrams?: number;
  /** Factor on the term-frequency coefficient of character n-grams (absent: 1): many grams per word would outvote the word. */
  gramWeight?: number;
  /** Exponent e of the passage length normalisation v/‖v‖^e with termWeight 'log' (absent = 1, a cosine). */
  lengthNorm?: number;
}

export const DEFAULT_DENSE: DenseConfig = { dim: 768, tau: 0.05, termWeight: 'log', k1: 0.9, b: 0.4, avgLen: 1, units: 'bpe', bigrams: false };

/** A text as (row, c_t) pairs of the compact vocabulary. */
export interface Features {
  rows: Int32Array;
  coef: Float32Array;
}

export type Side = 'query' | 'passage';

const WORD = /[\p{L}\p{M}\p{N}]+/gu;

/** Text → BPE piece ids (word by word, cached). */
export class PieceAnalyzer {
  private readonly cache = new Map<string, number[]>();
  constructor(readonly tokenizer: Tokenizer) {}

  pieces(text: string): number[] {
    const out: number[] = [];
    for (const m of text.normalize('NFKC').toLowerCase().matchAll(WORD)) {
      let ids = this.cache.get(m[0]);
      if (!ids) {
        ids = encodeText(this.tokenizer, ' ' + m[0]);
        if (this.cache.size > 500_000) this.cache.clear();
        this.cache.set(m[0], ids);
      }
      for (const id of ids) out.push(id);
    }
    return out;
  }
}

/** Anything that turns text into unit ids (BPE pieces or hashed analyzer terms). */
export interface UnitAnalyzer {
  pieces(text: string): number[];
}

/** FNV-1a of a string as a signed 32-bit id (a vocabulary of ~10⁵ units collides with odds ~10⁻⁶ per pair). */
function hashUnit(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h | 0;
}

/**
 * Text → hashed BM25-analyzer terms (and adjacent-term bigrams): the stemmed vocabulary lets "founded" meet
 * "founding" as BM25's does, where GPT-2 pieces (" founded", " founding") are unrelated rows. Ids need no stored
 * vocabulary: the same text always hashes to the same ids.
 */
export class TermAnalyzer implements UnitAnalyzer {
  private readonly analyzer = new Analyzer(DEFAULT_ANALYZER);
  private readonly words = new Analyzer({ ...DEFAULT_ANALYZER, stem: false });
  private readonly cache = new Map<string, number>();
  /** bigrams: adjacent-term units; charGrams: n > 0 adds the character n-grams of each word ("<word>"), fastText-style. */
  constructor(readonly bigrams: boolean, readonly charGrams = 0) {}

  /** Term and bigram ids are even, character n-gram ids odd (isCharGram), so a gram's weight can differ. */
  private id(key: string, gram: boolean): number {
    let h = this.cache.get(key);
    if (h === undefined) {
      h = gram ? hashUnit(key) | 1 : hashUnit(key) & ~1;
      if (this.cache.size > 500_000) this.cache.clear();
      this.cache.set(key, h);
    }
    return h;
  }

  pieces(text: string): number[] {
    const terms = this.analyzer.analyze(text);
    const out: number[] = terms.map((t) => this.id('1:' + t, false));
    if (this.bigrams) for (let i = 1; i < terms.length; i++) out.push(this.id('2:' + terms[i - 1]! + ' ' + terms[i]!, false));
    const n = this.charGrams;
    // Misspelt or unseen words ("Ghandi", "Cypiddids") still share n-grams with the right one.
    if (n > 0) {
      for (const w of this.words.analyze(text)) {
        const b = `<${w}>`;
        for (let i = 0; i + n <= b.length; i++) out.push(this.id(`3:${b.slice(i, i + n)}`, true));
      }
    }
    return out;
  }
}

/** Whether a 'terms' unit id is a character n-gram (TermAnalyzer makes those odd). */
export function isCharGram(id: number): boolean {
  return (id & 1) === 1;
}

function unitAnalyzer(tokenizer: Tokenizer, config: DenseConfig): UnitAnalyzer {
  return config.units === 'terms' ? new TermAnalyzer(config.bigrams ?? false, config.charGrams ?? 0) : new PieceAnalyzer(tokenizer);
}

export class DenseEncoder {
  readonly config: DenseConfig;
  /** BPE id → row of E. */
  readonly rowOf: Map<number, number>;
  /** Row → BPE id (what the file stores). */
  readonly pieceIds: Int32Array;
  /** (V, D) */
  readonly embed: Float32Array;
  /** (V) per-piece weights of the query and passage towers. */
  readonly wq: Float32Array;
  readonly wp: Float32Array;
  readonly analyzer: UnitAnalyzer;

  constructor(tokenizer: Tokenizer, config: DenseConfig, pieceIds: Int32Array, embed: Float32Array, wq: Float32Array, wp: Float32Array) {
    const V = pieceIds.length;
    if (embed.length !== V * config.dim || wq.length !== V || wp.length !== V) throw new Error(`DenseEncoder: shapes disagree (V = ${V}, D = ${config.dim})`);
    this.config = { ...config };
    this.pieceIds = pieceIds;
    this.embed = embed;
    this.wq = wq;
    this.wp = wp;
    this.analyzer = unitAnalyzer(tokenizer, this.config);
    this.rowOf = new Map();
    pieceIds.forEach((id, r) => this.rowOf.set(id, r));
  }

  /**
   * A fresh encoder over the pieces of `passages` and `queries`: E ~ N(0, 1/D), w_q = w_p = IDF over the passages
   * (ln(1 + N/df)); pieces that occur only in queries get the IDF of a piece seen once.
   */
  static init(tokenizer: Tokenizer, passages: string[], queries: string[], config: DenseConfig = DEFAULT_DENSE, seed = 1): DenseEncoder {
    const pa = unitAnalyzer(tokenizer, config);
    const df = new Map<number, number>();
    for (const p of passages) for (const id of new Set(pa.pieces(p))) df.set(id, (df.get(id) ?? 0) + 1);
    for (const q of queries) for (const id of pa.pieces(q)) if (!df.has(id)) df.set(id, 0);
    const ids = Int32Array.from([...df.keys()].sort((a, b) => a - b));
    const V = ids.length;
    const D = config.dim;
    const rand = mulberry32(seed);
    const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const embed = new Float32Array(V * D);
    for (let i = 0; i < embed.length; i++) embed[i] = gauss() / Math.sqrt(D);
    const N = passages.length;
    const wq = new Float32Array(V);
    const wp = new Float32Array(V);
    let len = 0;
    for (const p of passages) len += pa.pieces(p).length;
    const cfg: DenseConfig = { ...config, avgLen: N > 0 ? len / N : 1 };
    ids.forEach((id, r) => {
      const n = Math.max(1, df.get(id)!);
      if (config.termWeight === 'bm25') {
        wq[r] = 1;
        wp[r] = Math.log(1 + (N - n + 0.5) / (n + 0.5));
      } else {
        wq[r] = wp[r] = Math.log(1 + N / n);
      }
    });
    return new DenseEncoder(tokenizer, cfg, ids, embed, wq, wp);
  }

  get dim(): number {
    return this.config.dim;
  }

  get vocabSize(): number {
    return this.pieceIds.length;
  }

  /** Features of a list of piece ids (pieces outside the vocabulary dropped) on one side. */
  featuresOfPieces(pieces: Iterable<number>, side: Side): Features {
    const tf = new Map<number, number>();
    let len = 0;
    for (const id of pieces) {
      len++;
      const r = this.rowOf.get(id);
      if (r !== undefined) tf.set(r, (tf.get(r) ?? 0) + 1);
    }
    const rows = new Int32Array(tf.size);
    const coef = new Float32Array(tf.size);
    const { termWeight, k1, b, avgLen } = this.config;
    const norm = k1 * (1 - b + (b * len) / avgLen);
    const grams = this.config.units === 'terms' && (this.config.charGrams ?? 0) > 0;
    const gramWeight = this.config.gramWeight ?? 1;
    let i = 0;
    for (const [r, n] of tf) {
      rows[i] = r;
      const c = termWeight === 'log' ? 1 + Math.log(n) : side === 'query' ? n : (n * (k1 + 1)) / (n + norm);
      coef[i++] = grams && isCharGram(this.pieceIds[r]!) ? c * gramWeight : c;
    }
    return { rows, coef };
  }

  features(text: string, side: Side): Features {
    return this.featuresOfPieces(this.analyzer.pieces(text), side);
  }

  /** Whether vectors of this side are scaled to unit length. */
  normalizes(side: Side): boolean {
    return side === 'query' || this.config.termWeight === 'log';
  }

  /**
   * The exponent e of this side's length normalisation f = v / ‖v‖^e: 1 for queries (cosine), `lengthNorm` (default 1)
   * for 'log' passages (e < 1 leaves long passages longer vectors, as pivoted normalisation does: a cosine over-penalises
   * them), 0 for 'bm25' passages (BM25's saturation already holds the length).
   */
  normExponent(side: Side): number {
    if (side === 'query') return 1;
    return this.config.termWeight === 'log' ? (this.config.lengthNorm ?? 1) : 0;
  }

  /** v = Σ c_t w[t] E[t] into out (D); returns ‖v‖. */
  private accumulate(f: Features, w: Float32Array, out: Float32Array): number {
    const D = this.dim;
    out.fill(0);
    for (let i = 0; i < f.rows.length; i++) {
      const r = f.rows[i]!;
      const a = f.coef[i]! * w[r]!;
      const e = r * D;
      for (let d = 0; d < D; d++) out[d]! += a * this.embed[e + d]!;
    }
    let n2 = 0;
    for (let d = 0; d < D; d++) n2 += out[d]! * out[d]!;
    return Math.sqrt(n2);
  }

  /** f(x) (unit length where the side normalises; zeros for a text with no known piece) into out, or a new array. */
  encodeFeatures(f: Features, side: Side, out = new Float32Array(this.dim)): Float32Array {
    const norm = this.accumulate(f, side === 'query' ? this.wq : this.wp, out);
    const e = this.normExponent(side);
    if (norm > 0 && e !== 0) {
      const scale = norm ** e;
      for (let d = 0; d < this.dim; d++) out[d]! /= scale;
    }
    return out;
  }

  encode(text: string, side: Side): Float32Array {
    return this.encodeFeatures(this.features(text, side), side);
  }

  /** Encodes many texts into one (n, D) row-major matrix. */
  encodeMany(texts: string[], side: Side, onProgress?: (done: number) => void): Float32Array {
    const D = this.dim;
    const out = new Float32Array(texts.length * D);
    texts.forEach((t, i) => {
      this.encodeFeatures(this.features(t, side), side, out.subarray(i * D, (i + 1) * D));
      if (onProgress && (i + 1) % 1000 === 0) onProgress(i + 1);
    });
    return out;
  }

  // ---- training ----

  /**
   * InfoNCE loss of one batch and, when `grads` is given, its gradient accumulated there (row-sparse).
   * queries[i]'s positive is candidates[positive[i]]; candidates with the same key as that positive (other copies of
   * the same passage) are left out of query i's denominator.
   */
  infoNce(queries: Features[], candidates: Features[], positive: number[], keys: number[], grads?: SparseGrads): number {
    const D = this.dim;
    const B = queries.length;
    const C = candidates.length;
    const tau = this.config.tau;
    const qv = new Float32Array(B * D);
    const qn = new Float64Array(B);
    const cv = new Float32Array(C * D);
    const cn = new Float64Array(C);
    queries.forEach((f, i) => (qn[i] = this.accumulate(f, this.wq, qv.subarray(i * D, (i + 1) * D))));
    candidates.forEach((f, j) => (cn[j] = this.accumulate(f, this.wp, cv.subarray(j * D, (j + 1) * D))));
    // f = v / ‖v‖^e per side (a zero vector stays zero); n keeps ‖v‖.
    const unit = (v: Float32Array, n: Float64Array, k: number, side: Side): void => {
      const e = this.normExponent(side);
      for (let i = 0; i < k; i++) {
        if (n[i]! > 0 && e !== 0) {
          const scale = n[i]! ** e;
          for (let d = 0; d < D; d++) v[i * D + d]! /= scale;
        }
      }
    };
    unit(qv, qn, B, 'query');
    unit(cv, cn, C, 'passage');
    // S[i, j] = q̂_i · ĉ_j / τ over the allowed candidates; P = softmax rows.
    const P = new Float64Array(B * C);
    let loss = 0;
    for (let i = 0; i < B; i++) {
      let mx = -Infinity;
      for (let j = 0; j < C; j++) {
        if (j !== positive[i] && keys[j] === keys[positive[i]!]) {
          P[i * C + j] = NaN;  // masked
          continue;
        }
        let s = 0;
        for (let d = 0; d < D; d++) s += qv[i * D + d]! * cv[j * D + d]!;
        P[i * C + j] = s / tau;
        mx = Math.max(mx, s / tau);
      }
      let z = 0;
      for (let j = 0; j < C; j++) if (!Number.isNaN(P[i * C + j]!)) z += Math.exp(P[i * C + j]! - mx);
      loss += -(P[i * C + positive[i]!]! - mx) + Math.log(z);
      for (let j = 0; j < C; j++) P[i * C + j] = Number.isNaN(P[i * C + j]!) ? 0 : Math.exp(P[i * C + j]! - mx) / z;
    }
    loss /= B;
    if (!grads) return loss;
    // dS = (P − Y)/B; dq̂_i = Σ_j dS_ij ĉ_j / τ; dĉ_j = Σ_i dS_ij q̂_i / τ.
    const dq = new Float32Array(B * D);
    const dc = new Float32Array(C * D);
    for (let i = 0; i < B; i++) {
      for (let j = 0; j < C; j++) {
        const g = (P[i * C + j]! - (j === positive[i] ? 1 : 0)) / (B * tau);
        if (g === 0) continue;
        for (let d = 0; d < D; d++) {
          dq[i * D + d]! += g * cv[j * D + d]!;
          dc[j * D + d]! += g * qv[i * D + d]!;
        }
      }
    }
    // Through f = v / ‖v‖^e: with u = v/‖v‖ = f ‖v‖^(e−1), dv = (df − e u (u·df)) / ‖v‖^e (cosine: e = 1; none: e = 0).
    const back = (f: Features, vhat: Float32Array, norm: number, dvhat: Float32Array, w: Float32Array, dw: Map<number, number>, side: Side): void => {
      if (norm === 0) return;
      const e = this.normExponent(side);
      const scale = norm ** e;
      const toUnit = norm ** (e - 1);
      let dot = 0;
      if (e !== 0) for (let d = 0; d < D; d++) dot += vhat[d]! * toUnit * dvhat[d]!;
      const dv = new Float32Array(D);
      for (let d = 0; d < D; d++) dv[d] = (dvhat[d]! - e * vhat[d]! * toUnit * dot) / scale;
      // v = Σ c_t w[t] E[t]: dE[t] += c_t w[t] dv, dw[t] += c_t (E[t]·dv).
      for (let i = 0; i < f.rows.length; i++) {
        const r = f.rows[i]!;
        const c = f.coef[i]!;
        const ge = grads.embedRow(r, D);
        const a = c * w[r]!;
        let ed = 0;
        for (let d = 0; d < D; d++) {
          ge[d]! += a * dv[d]!;
          ed += this.embed[r * D + d]! * dv[d]!;
        }
        dw.set(r, (dw.get(r) ?? 0) + c * ed);
      }
    };
    queries.forEach((f, i) => back(f, qv.subarray(i * D, (i + 1) * D), qn[i]!, dq.subarray(i * D, (i + 1) * D), this.wq, grads.wq, 'query'));
    candidates.forEach((f, j) => back(f, cv.subarray(j * D, (j + 1) * D), cn[j]!, dc.subarray(j * D, (j + 1) * D), this.wp, grads.wp, 'passage'));
    return loss;
  }
}

/** Gradients of the rows a batch touched. */
export class SparseGrads {
  readonly embed = new Map<number, Float32Array>();
  readonly wq = new Map<number, number>();
  readonly wp = new Map<number, number>();

  embedRow(r: number, D: number): Float32Array {
    let g = this.embed.get(r);
    if (!g) this.embed.set(r, (g = new Float32Array(D)));
    return g;
  }
}

export interface AdamOptions {
  lr: number;
  /** Learning rate of the per-piece weights (they are O(1)–O(5), the embedding entries O(1/√D)). */
  lrWeights: number;
  beta1: number;
  beta2: number;
  eps: number;
}

export const DEFAULT_ADAM: AdamOptions = { lr: 1e-3, lrWeights: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 };

/**
 * Lazy Adam (as PyTorch's SparseAdam): moments are updated only for the rows a step touched, with the global step's
 * bias correction. Rows untouched for a while thus keep stale moments, the usual trade for sparse embeddings.
 */
export class LazyAdam {
  private readonly mE: Float32Array;
  private readonly vE: Float32Array;
  private readonly mW: [Float32Array, Float32Array];
  private readonly vW: [Float32Array, Float32Array];
  private t = 0;

  constructor(private readonly enc: DenseEncoder, private readonly o: AdamOptions = DEFAULT_ADAM) {
    this.mE = new Float32Array(enc.embed.length);
    this.vE = new Float32Array(enc.embed.length);
    this.mW = [new Float32Array(enc.vocabSize), new Float32Array(enc.vocabSize)];
    this.vW = [new Float32Array(enc.vocabSize), new Float32Array(enc.vocabSize)];
  }

  step(g: SparseGrads, lrScale = 1): void {
    const { beta1: b1, beta2: b2, eps } = this.o;
    this.t++;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    const D = this.enc.dim;
    const lr = this.o.lr * lrScale;
    for (const [r, gr] of g.embed) {
      for (let d = 0; d < D; d++) {
        const i = r * D + d;
        const gi = gr[d]!;
        this.mE[i] = b1 * this.mE[i]! + (1 - b1) * gi;
        this.vE[i] = b2 * this.vE[i]! + (1 - b2) * gi * gi;
        this.enc.embed[i]! -= (lr * (this.mE[i]! / c1)) / (Math.sqrt(this.vE[i]! / c2) + eps);
      }
    }
    const lw = this.o.lrWeights * lrScale;
    ([[g.wq, this.enc.wq, 0], [g.wp, this.enc.wp, 1]] as const).forEach(([gm, w, s]) => {
      const m = this.mW[s];
      const v = this.vW[s];
      for (const [r, gi] of gm) {
        m[r] = b1 * m[r]! + (1 - b1) * gi;
        v[r] = b2 * v[r]! + (1 - b2) * gi * gi;
        w[r]! -= (lw * (m[r]! / c1)) / (Math.sqrt(v[r]! / c2) + eps);
      }
    });
  }
}

/** A training pair: a query and its positive passage (text as encoded, possibly a variant) with the passage's number. */
export interface TrainPair {
  query: Features;
  positive: Features;
  passage: number;
  /** BM25 hard negatives: passage numbers ranked high by BM25 that are not the positive. */
  hardNegatives: number[];
}

export interface TrainOptions {
  steps: number;
  batch: number;
  seed: number;
  adam: AdamOptions;
  /** Hard negatives per query in each batch (DPR: 1). */
  hardPerQuery: number;
  /** Linear warm-up steps, then linear decay to 0. */
  warmup: number;
  onStep?: (step: number, loss: number) => void;
  /** Every this many steps (0 = never), call onRefresh (hard negatives re-mined with the current encoder). */
  refreshEvery?: number;
  onRefresh?: () => void;
}

export const DEFAULT_TRAIN: TrainOptions = { steps: 300, batch: 64, seed: 1, adam: DEFAULT_ADAM, hardPerQuery: 3, warmup: 30 };

/**
 * Trains `enc` on pairs (a fresh shuffle per epoch), passages' features given by number. `pairsFor(step)` may hand a
 * new list each step (ICT pairs are re-drawn with a different removed sentence); returns the mean loss of the last 50 steps.
 */
export function trainDense(enc: DenseEncoder, pairsFor: (epoch: number) => TrainPair[], passageFeatures: Features[], options: TrainOptions): number {
  const rand = mulberry32(options.seed);
  const adam = new LazyAdam(enc, options.adam);
  let pairs: TrainPair[] = [];
  let order: number[] = [];
  let at = 0;
  let epoch = 0;
  const recent: number[] = [];
  for (let step = 1; step <= options.steps; step++) {
    const batch: TrainPair[] = [];
    while (batch.length < options.batch) {
      if (at >= order.length) {
        pairs = pairsFor(epoch++);
        if (pairs.length === 0) throw new Error('trainDense: no training pairs');
        order = pairs.map((_, i) => i);
        for (let i = order.length - 1; i > 0; i--) {
          const j = Math.floor(rand() * (i + 1));
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
        at = 0;
      }
      batch.push(pairs[order[at++]!]!);
    }
    // Candidates: each query's positive (as given), then hard negatives as whole passages, deduplicated by number.
    const candidates: Features[] = [];
    const keys: number[] = [];
    const positive: number[] = [];
    for (const p of batch) {
      positive.push(candidates.length);
      candidates.push(p.positive);
      keys.push(p.passage);
    }
    const inBatch = new Set(keys);
    for (const p of batch) {
      const pool = p.hardNegatives.filter((n) => n !== p.passage);
      for (let h = 0; h < options.hardPerQuery && pool.length > 0; h++) {
        const n = pool.splice(Math.floor(rand() * pool.length), 1)[0]!;
        if (inBatch.has(n)) continue;
        inBatch.add(n);
        candidates.push(passageFeatures[n]!);
        keys.push(n);
      }
    }
    const grads = new SparseGrads();
    const loss = enc.infoNce(batch.map((p) => p.query), candidates, positive, keys, grads);
    const scale = step <= options.warmup ? step / options.warmup : Math.max(0, (options.steps - step) / Math.max(1, options.steps - options.warmup));
    adam.step(grads, scale);
    recent.push(loss);
    if (recent.length > 50) recent.shift();
    options.onStep?.(step, loss);
    if (options.refreshEvery && step % options.refreshEvery === 0 && step < options.steps) options.onRefresh?.();
  }
  return recent.reduce((s, l) => s + l, 0) / Math.max(1, recent.length);
}
