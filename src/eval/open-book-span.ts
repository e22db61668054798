// Open-book QA with the reader's span head (reader-span.ts) on the held-out questions of the reader's SQuAD split:
// the top-k passages of a BM25 index for each question (the query is the closed-book prompt, as `lmforge eval
// --open-book` sends it), each read question-first by the GPT, the span head's best spans under each passage, and
// RAG-Sequence over them: p(y|x) = Σ_z p(z|x) Σ_{spans of z reading y} p_start(i|x,z) p_end(j|x,z), p(z|x) =
// softmax(BM25 score / T). Scored with the harness's SQuAD normalisation, exact match and token F1 (metrics.ts).
// The generative heads go through the harness (`lmforge eval --open-book`); the span head has no text interface, so
// it is evaluated here. Not the trainer (retrieval/reader-train.ts).
import { join } from 'node:path';
import * as lm from '../core/index.js';
import { normalizeSquad, tokenF1 } from './metrics.js';
import { loadGPT } from '../models/gpt-io.js';
import { BpeTokenizer } from '../tokenizers/bpe.js';
import { loadTokenizer } from '../tokenizers/format.js';
import { UserError } from '../util/errors.js';
import { BM25Index } from '../retrieval/bm25.js';
import { passagePrior } from '../retrieval/rag.js';
import { closedBookPrompt, HELD_OUT_FROM, paragraphIndex, questionLead, questionLeads, splitSquad, trainedLayout, type ReaderLayout } from '../retrieval/reader-data.js';
import { bestSpans, loadMatchEmbedding, loadSpanHead, questionMatches, SPAN_HEAD_FILE, tokenByteStarts, tokensCovering, utf8Length, wordBoundaries } from '../retrieval/reader-span.js';

export interface SpanEvalOptions {
  /** A reader directory with span_head.safetensors (`lmforge reader-train --span-weight`). */
  reader: string;
  /** The SQuAD file the reader was trained on; its held-out paragraphs' questions are evaluated. */
  squad: string;
  /** A BM25 index of the passages (`lmforge index`). */
  index: string;
  k: number;
  temperature: number;
  /** The first n held-out questions only. */
  limit?: number;
  /** Longest answer in tokens. */
  maxAnswerTokens: number;
  heldOutFrom?: number;
  /** Only held-out paragraphs below this index (a development split: train with --held-out-from 2, select on paragraph 2). */
  heldOutTo?: number;
  /**
   * Skip spans every word of which occurs in the question ("Broncos" for "Who is the General Manager for the
   * Broncos?"): they only repeat it. Words are compared after SQuAD normalisation, a possessive or plural s dropped.
   */
  skipQuestionWords?: boolean;
  /** The row layout the reader was trained on (default: its reader.json's, else question-first). */
  layout?: ReaderLayout;
}

/** The layout a span reader was trained with (reader.json; question-first without one); passage-first is refused. */
export function readerLayout(dir: string): ReaderLayout {
  const layout = trainedLayout(dir) ?? 'question-first';
  if (!questionLeads(layout)) throw new UserError(`${join(dir, 'reader.json')}: the reader was trained with layout ${layout}; its span head needs question-first or question-echo rows`);
  return layout;
}

export interface SpanEvalSample {
  question: string;
  answers: string[];
  prediction: string;
  logprob: number;
  passages: string[];
  exact_match: number;
  f1: number;
}

export interface SpanEvalResult {
  n: number;
  f1: number;
  em: number;
  seconds: number;
  samples: SpanEvalSample[];
}

function logSumExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const m = Math.max(a, b);
  return m + Math.log(Math.exp(a - m) + Math.exp(b - m));
}

/** A span's text as an answer: its decoded tokens with white space and punctuation trimmed from both ends. */
export function spanText(tok: BpeTokenizer, ids: readonly number[]): string {
  return tok.decode(ids).replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}%]+$/gu, '');
}

/** SQuAD-normalised words with a final s dropped ("Manning's", "Super Bowls" → manning, super bowl). */
function wordStems(text: string): string[] {
  return normalizeSquad(text).split(' ').filter((w) => w !== '').map((w) => (w.length > 3 ? w.replace(/s$/, '') : w));
}

/** Whether every word of a span occurs in the question (so it is no answer to it). */
export function repeatsQuestion(span: string, question: string): boolean {
  const asked = new Set(wordStems(question));
  const words = wordStems(span);
  return words.length > 0 && words.every((w) => asked.has(w));
}

/** Evaluates the span head open book on the held-out questions; samples in question order. */
export function evaluateSpanReader(o: SpanEvalOptions): SpanEvalResult {
  const t0 = performance.now();
  const tok = loadTokenizer(join(o.reader, 'tokenizer.json'));
  if (!(tok instanceof BpeTokenizer)) throw new UserError(`${join(o.reader, 'tokenizer.json')}: expected the BPE tokenizer of \`lmforge reader-train\``);
  const model = loadGPT(o.reader);
  const head = loadSpanHead(o.reader, model.config.n_embd);
  if (!head) {
    model.dispose();
    throw new UserError(`${o.reader}: no ${SPAN_HEAD_FILE}; train the reader with \`lmforge reader-train --layout question-first --span-weight 1\``);
  }
  // The exact-match feature, when the reader was trained with one (match_embedding.safetensors).
  const match = loadMatchEmbedding(o.reader, model.config.n_embd);
  const index = new BM25Index(o.index);
  const questions = splitSquad(o.squad, o.heldOutFrom ?? HELD_OUT_FROM).heldOut
    .filter((q) => o.heldOutTo === undefined || paragraphIndex(q.passageId) < o.heldOutTo)
    .slice(0, o.limit);
  const T = model.config.block_size;
  const echo = (o.layout ?? readerLayout(o.reader)) === 'question-echo';
  const samples: SpanEvalSample[] = [];
  try {
    model.eval();
    for (const q of questions) {
      const prompt = closedBookPrompt(q.question);
      const hits = index.search(prompt, { k: o.k });
      const passages = hits.map((h) => index.passage(h.index));
      const logPz = passagePrior(hits.map((h) => h.score), o.temperature);
      const marginal = new Map<string, number>();
      passages.forEach((p, z) => {
        const block = p.title ? `${p.title}\n${p.text}` : p.text;
        // The harness's question-first open-book prompt (eval/harness.ts), exactly as the reader was trained on; with
        // the echo layout the passage comes twice and the span head reads the second copy.
        const lead = `${questionLead(prompt)}\n\n${echo ? `${block}\n\n` : ''}`;
        let ids = tok.encode(`${lead}${block}\n\n${prompt}`);
        const starts = tokenByteStarts(tok, ids);
        const range = tokensCovering(starts, utf8Length(lead), utf8Length(lead + block));
        if (!range) return;
        // Longer than the context: the start goes, as the LM reader truncates (positions shift by the cut).
        const cut = Math.max(0, ids.length - T);
        const flags = match ? Int32Array.from(questionMatches(tok, ids, range[0], range[1] + 1, q.question).slice(cut)) : null;
        ids = ids.slice(cut);
        const lo = Math.max(0, range[0] - cut);
        const hi = range[1] + 1 - cut;
        if (hi <= lo) return;
        const [s, e] = lm.tidy(() => {
          const { hidden } = model.forward(lm.tensor(ids, [1, ids.length], 'int32'), undefined, match && flags ? { inputFeatures: match.features(flags, 1, ids.length) } : {});
          const [sl, el] = head.logits(hidden);
          return [sl.toArray(), el.toArray()];
        });
        for (const span of bestSpans(s, e, lo, hi, o.maxAnswerTokens, 20, wordBoundaries(tok, ids))) {
          const text = spanText(tok, ids.slice(span.start, span.end + 1));
          if (text === '' || (o.skipQuestionWords && repeatsQuestion(text, q.question))) continue;
          marginal.set(text, logSumExp(marginal.get(text) ?? -Infinity, logPz[z]! + span.logprob));
        }
      });
      let prediction = '';
      let logprob = -Infinity;
      for (const [text, lp] of marginal) if (lp > logprob) [prediction, logprob] = [text, lp];
      const answers = q.answers.map(normalizeSquad);
      const pred = normalizeSquad(prediction);
      samples.push({
        question: q.question, answers: q.answers, prediction, logprob, passages: passages.map((p) => p.id),
        exact_match: answers.includes(pred) ? 1 : 0, f1: Math.max(0, ...answers.map((a) => tokenF1(pred, a))),
      });
    }
  } finally {
    model.dispose();
    head.dispose();
    match?.dispose();
  }
  const mean = (f: (s: SpanEvalSample) => number): number => (samples.length ? samples.reduce((a, s) => a + f(s), 0) / samples.length : 0);
  return { n: samples.length, f1: mean((s) => s.f1), em: mean((s) => s.exact_match), seconds: (performance.now() - t0) / 1000, samples };
}
