// Training data and measurement for the dense retriever on a question set over an indexed corpus (XQuAD here):
// a deterministic train/held-out split of the questions, InfoNCE pairs (training questions → their paragraph, and
// ICT pairs: a sentence → its paragraph, the sentence removed from it 90% of the time, as in ORQA), BM25 hard
// negatives, and recall@k of BM25, dense and hybrid retrieval on the held-out questions. Not the model (dense.ts).
import { mulberry32 } from '../util/mulberry32.js';
import { UserError } from '../util/errors.js';
import type { BM25Index } from './bm25.js';
import { passageText, type Passage, type Question } from './corpus.js';
import type { DenseEncoder, Features, TrainPair } from './dense.js';
import { interpolate, rrf } from './fusion.js';
import { ipTopK } from './ip-search.js';
import type { Hit } from './topk.js';

/** FNV-1a of a string, as a uniform number in [0, 1). */
function hash01(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0) / 4294967296;
}

/**
 * Splits questions by a hash of (seed, id): the same question always lands on the same side, whatever the order
 * or the other questions. Held-out questions share paragraphs with training ones (the corpus is fixed, as in DPR's
 * NQ setting); the questions themselves are never trained on.
 */
export function splitQuestions(qs: Question[], heldOutFraction = 0.5, seed = 17): { train: Question[]; test: Question[] } {
  const train: Question[] = [];
  const test: Question[] = [];
  for (const q of qs) (hash01(`${seed}:${q.id}`) < heldOutFraction ? test : train).push(q);
  return { train, test };
}

/** Sentences of a paragraph (split after . ! ? before a capital, digit or quote). */
export function sentences(text: string): string[] {
  return text.split(/(?<=[.!?])\s+(?=["'(\p{Lu}\p{N}])/u).map((s) => s.trim()).filter((s) => s.length > 0);
}

/** Passage numbers of the index, by id. */
export function passageNumbers(index: BM25Index): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < index.docs; i++) m.set(index.passage(i).id, i);
  return m;
}

export function goldNumbers(questions: Question[], numbers: Map<string, number>, source: string): number[] {
  return questions.map((q) => {
    const n = numbers.get(q.passageId);
    if (n === undefined) throw new UserError(`${source}: question '${q.id}' is about passage '${q.passageId}', which the index does not hold (index the same file)`);
    return n;
  });
}

export interface PairSets {
  questionPairs: number;
  ictSentences: number;
  /** A fresh list per epoch (ICT positives re-drawn). */
  pairsFor: (epoch: number) => TrainPair[];
  passageFeatures: Features[];
  /** Re-mines the hard negatives of question and ICT pairs with the current encoder (dense top passages). */
  refresh: () => void;
}

/** BM25 neighbours of `text` other than passage `gold` (the hard-negative pool). */
function hardPool(index: BM25Index, text: string, gold: number, depth: number): number[] {
  return index.search(text, { k: depth + 1 }).map((h) => h.index).filter((n) => n !== gold).slice(0, depth);
}

export interface PairOptions {
  /** Add ICT pairs (sentence → paragraph). */
  ict: boolean;
  /** Probability that an ICT positive keeps its sentence (ORQA: 0.1). */
  keepSentence: number;
  /** BM25 neighbours kept per query as the hard-negative pool. */
  hardDepth: number;
  /**
   * Span pairs per paragraph and epoch: a random window of 4–12 words → its paragraph with the window removed (an
   * ICT variant with shorter, question-like queries, re-drawn every epoch; hard negatives are the sentence's pool).
   */
  spans: number;
  seed: number;
}

export const DEFAULT_PAIRS: PairOptions = { ict: true, keepSentence: 0.1, hardDepth: 10, spans: 8, seed: 1 };

export function buildPairs(enc: DenseEncoder, index: BM25Index, passages: Passage[], train: Question[], trainGold: number[], options: PairOptions = DEFAULT_PAIRS): PairSets {
  const passageFeatures = passages.map((p) => enc.features(passageText(p), 'passage'));
  const qPairs: TrainPair[] = train.map((q, i) => ({
    query: enc.features(q.question, 'query'),
    positive: passageFeatures[trainGold[i]!]!,
    passage: trainGold[i]!,
    hardNegatives: hardPool(index, q.question, trainGold[i]!, options.hardDepth),
  }));
  // ICT: pieces of each sentence, so a paragraph without sentence s is its title's pieces + the others'.
  interface Ict { passage: number; sent: number; query: Features; hard: number[] }
  const sentPieces: number[][][] = [];
  const titlePieces: number[][] = [];
  const icts: Ict[] = [];
  if (options.ict) {
    passages.forEach((p, n) => {
      const ss = sentences(p.text);
      sentPieces.push(ss.map((s) => enc.analyzer.pieces(s)));
      titlePieces.push(p.title ? enc.analyzer.pieces(p.title) : []);
      ss.forEach((s, j) => {
        if (ss.length < 2 || s.split(/\s+/).length < 4) return;
        icts.push({ passage: n, sent: j, query: enc.featuresOfPieces(sentPieces[n]![j]!, 'query'), hard: hardPool(index, s, n, options.hardDepth) });
      });
    });
  }
  const rand = mulberry32(options.seed);
  // Words of each paragraph for span pairs (title kept in the positive); the span and the rest are analyzed as
  // text, so units that span words (bigrams) are formed inside each part as they would be in a real query.
  const paragraphWords: string[][] = options.spans > 0 ? passages.map((p) => p.text.match(/[\p{L}\p{M}\p{N}]+/gu) ?? []) : [];
  const spanHard: number[][] = options.spans > 0 ? passages.map((p, n) => hardPool(index, p.text.slice(0, 300), n, options.hardDepth)) : [];
  const pairsFor = (_epoch: number): TrainPair[] => {
    const out = [...qPairs];
    paragraphWords.forEach((words, n) => {
      for (let s = 0; s < options.spans && words.length > 16; s++) {
        const len = 4 + Math.floor(rand() * 9);
        const at = Math.floor(rand() * (words.length - len));
        const q = enc.analyzer.pieces(words.slice(at, at + len).join(' '));
        const rest: number[] = [
          ...(passages[n]!.title ? enc.analyzer.pieces(passages[n]!.title!) : []),
          ...enc.analyzer.pieces(words.slice(0, at).join(' ')),
          ...enc.analyzer.pieces(words.slice(at + len).join(' ')),
        ];
        out.push({ query: enc.featuresOfPieces(q, 'query'), positive: rand() < options.keepSentence ? passageFeatures[n]! : enc.featuresOfPieces(rest, 'passage'), passage: n, hardNegatives: spanHard[n]! });
      }
    });
    for (const c of icts) {
      let positive = passageFeatures[c.passage]!;
      if (rand() >= options.keepSentence) {
        const pieces: number[] = [...titlePieces[c.passage]!];
        sentPieces[c.passage]!.forEach((sp, j) => { if (j !== c.sent) for (const x of sp) pieces.push(x); });
        positive = enc.featuresOfPieces(pieces, 'passage');
      }
      out.push({ query: c.query, positive, passage: c.passage, hardNegatives: c.hard });
    }
    return out;
  };
  // ANCE/REALM-style refresh: re-encode the passages with the current encoder and replace each question's and ICT
  // sentence's hard-negative pool (in place, so pairs already handed out see it) by its dense top passages.
  const refresh = (): void => {
    const D = enc.dim;
    const P = new Float32Array(passages.length * D);
    passageFeatures.forEach((f, n) => enc.encodeFeatures(f, 'passage', P.subarray(n * D, (n + 1) * D)));
    const items = [...qPairs.map((p) => ({ query: p.query, gold: p.passage, pool: p.hardNegatives })), ...icts.map((c) => ({ query: c.query, gold: c.passage, pool: c.hard }))];
    const Q = new Float32Array(items.length * D);
    items.forEach((it, m) => enc.encodeFeatures(it.query, 'query', Q.subarray(m * D, (m + 1) * D)));
    const k = options.hardDepth + 1;
    const r = ipTopK(P, passages.length, D, Q, items.length, k);
    items.forEach((it, m) => {
      const mined = Array.from(r.indices.subarray(m * k, (m + 1) * k)).filter((n) => n >= 0 && n !== it.gold).slice(0, options.hardDepth);
      it.pool.splice(0, it.pool.length, ...mined);
    });
  };
  return { questionPairs: qPairs.length, ictSentences: icts.length, pairsFor, passageFeatures, refresh };
}

/** Fraction of queries whose gold passage is among the first k hits. */
export function recallAt(hits: Hit[][], gold: number[], k: number): number {
  let n = 0;
  hits.forEach((h, i) => { if (h.slice(0, k).some((x) => x.index === gold[i])) n++; });
  return hits.length ? n / hits.length : 0;
}

export const RECALL_KS = [1, 5, 20] as const;

export interface RecallRow {
  method: string;
  recall: Record<string, number>;
}

/** Recall@1/5/20 of each method's ranked lists. */
export function recallTable(methods: Record<string, Hit[][]>, gold: number[]): RecallRow[] {
  return Object.entries(methods).map(([method, hits]) => ({
    method,
    recall: Object.fromEntries(RECALL_KS.map((k) => [`r@${k}`, recallAt(hits, gold, k)])),
  }));
}

/** Depth of the lists fused by the hybrids. */
export const FUSION_DEPTH = 100;

/** BM25, dense, RRF and interpolated hybrids for each query (lists of depth FUSION_DEPTH fused, 20 kept). */
export function hybridLists(bm25: Hit[][], dense: Hit[][], alpha = 0.5): { rrf: Hit[][]; interp: Hit[][] } {
  return {
    rrf: bm25.map((b, i) => rrf([b, dense[i]!], 20)),
    interp: bm25.map((b, i) => interpolate(b, dense[i]!, alpha, 20)),
  };
}

export function formatRecallTable(rows: RecallRow[]): string {
  const head = `${'method'.padEnd(22)}${RECALL_KS.map((k) => `recall@${k}`.padStart(11)).join('')}`;
  return [head, ...rows.map((r) => `${r.method.padEnd(22)}${RECALL_KS.map((k) => r.recall[`r@${k}`]!.toFixed(4).padStart(11)).join('')}`)].join('\n');
}
