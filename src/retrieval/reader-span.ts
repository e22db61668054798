// The reader's extractive span head (DPR's reader, Karpukhin et al. 2020): start and end logits over the passage
// tokens, read from the same GPT's final hidden states that its LM head reads, trained with cross-entropy on the gold
// span's first and last token. One network, two heads: the LM head answers closed book (and can generate open book),
// the span head points at the answer in a retrieved passage. Saved beside the GPT as span_head.safetensors.
// Also: the token ↔ byte bookkeeping that finds a passage and an answer among a prompt's tokens. Not the trainer
// (reader-train.ts) nor the evaluation (reader-eval.ts).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as lm from '../core/index.js';
import { Rng, type Tensor } from '../core/index.js';
import { readSafetensors, writeSafetensors } from '../core/safetensors.js';
import { Embedding, Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { loadStateDict, StateDictError, stateDict, type NamedArray } from '../nn/state.js';
import type { BpeTokenizer } from '../tokenizers/bpe.js';
import { UserError } from '../util/errors.js';
import { Analyzer } from './analyzer.js';

export const SPAN_HEAD_FILE = 'span_head.safetensors';
export const MATCH_FILE = 'match_embedding.safetensors';

/** Linear C → 2: per position a start logit and an end logit. */
export class SpanHead extends Module {
  readonly proj: Linear;

  constructor(readonly C: number, seed = 0) {
    super();
    this.proj = this.child('proj', new Linear(C, 2, { bias: true, rng: new Rng(seed), std: 0.02 }));
  }

  /** hidden (B, T, C) → [start (B, T), end (B, T)]. */
  logits(hidden: Tensor): [Tensor, Tensor] {
    const [B, T] = hidden.shape as [number, number, number];
    const both = this.proj.forward(hidden); // (B, T, 2)
    const pick = (i: number): Tensor => lm.reshape(lm.contiguous(lm.slice(both, 2, i, i + 1)), [B, T]);
    return [pick(0), pick(1)];
  }

  save(dir: string): void {
    writeSafetensors(join(dir, SPAN_HEAD_FILE), [...stateDict(this)].map(([name, a]) => [name, { shape: [...a.shape], data: a.data as Float32Array }]), { format: 'pt', head: 'span' });
  }
}

/**
 * DrQA's exact-match feature (Chen et al. 2017) as an embedding: a learned vector added to the input embedding of
 * every passage token whose word occurs in the question (0: no, 1: yes), so the reader sees at once which passage
 * words the question repeats, and that the answer is the words beside them, not them. Starts at zero, so adding it
 * to a trained reader leaves its outputs unchanged until training moves it. Saved as match_embedding.safetensors.
 */
export class MatchEmbedding extends Module {
  readonly table: Embedding;

  constructor(readonly C: number) {
    super();
    this.table = this.child('table', new Embedding(2, C, { rng: new Rng(0), std: 0 }));
  }

  /** flags (B·T, 0/1, row-major) → (B, T, C), the GPT's options.inputFeatures. */
  features(flags: Int32Array, B: number, T: number): Tensor {
    return this.table.forward(lm.fromArray(flags, [B, T]));
  }

  save(dir: string): void {
    writeSafetensors(join(dir, MATCH_FILE), [...stateDict(this)].map(([name, a]) => [name, { shape: [...a.shape], data: a.data as Float32Array }]), { format: 'pt', feature: 'exact-match' });
  }
}

/** The exact-match embedding of a reader directory, or null when it was trained without one. */
export function loadMatchEmbedding(dir: string, C: number): MatchEmbedding | null {
  return loadHeadFile(join(dir, MATCH_FILE), new MatchEmbedding(C));
}

const MATCH_ANALYZER = new Analyzer({ stopwords: true, stem: true });

/**
 * Per token of ids, 1 when it lies in the passage tokens [lo, hi) and its word shares a term with the question (BM25's
 * analysis: lower case, Lucene's stopwords dropped, Porter stems, so "founded" matches "founding"), else 0. A word is
 * a run of tokens that wordBoundaries joins; all its tokens get the word's flag.
 */
export function questionMatches(tok: BpeTokenizer, ids: readonly number[], lo: number, hi: number, question: string): number[] {
  const asked = new Set(MATCH_ANALYZER.analyze(question));
  const flags = ids.map(() => 0);
  const { start, end } = wordBoundaries(tok, ids);
  for (let i = Math.max(0, lo); i < Math.min(hi, ids.length); ) {
    let j = i;
    while (j + 1 < hi && !end[j]) j++;
    if (start[i] && MATCH_ANALYZER.analyze(tok.decode(ids.slice(i, j + 1))).some((t) => asked.has(t))) for (let t = i; t <= j; t++) flags[t] = 1;
    i = j + 1;
  }
  return flags;
}

/** The span head of a reader directory, or null when it was trained without one. */
export function loadSpanHead(dir: string, C: number): SpanHead | null {
  return loadHeadFile(join(dir, SPAN_HEAD_FILE), new SpanHead(C));
}

/** Loads a small module saved beside a reader's GPT (null when the file is absent); non-finite weights are refused. */
function loadHeadFile<M extends Module>(path: string, module: M): M | null {
  if (!existsSync(path)) return null;
  const entries = new Map<string, NamedArray>();
  for (const [name, t] of readSafetensors(path).tensors) {
    const d = t.data as ArrayLike<number>;
    for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) throw new UserError(`${path}: tensor ${name} holds ${d[i]} at element ${i} (a diverged run?)`);
    entries.set(name, { shape: t.shape, data: d });
  }
  try {
    loadStateDict(module, entries, path);
  } catch (e) {
    module.dispose();
    if (e instanceof StateDictError) throw new UserError(e.message);
    throw e;
  }
  return module;
}

/** Byte offset where each token starts in the UTF-8 text of ids, plus the total as a last entry. */
export function tokenByteStarts(tok: BpeTokenizer, ids: readonly number[]): number[] {
  const out = [0];
  for (let i = 0; i < ids.length; i++) out.push(out[i]! + tok.tokenBytes(ids[i]!, i).length);
  return out;
}

/** UTF-8 byte length of a string. */
export function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/**
 * The tokens [first, last] (inclusive) covering the bytes [from, to) of the text, given tokenByteStarts: first is the
 * token holding byte `from`, last the one holding byte to − 1. null when the range is empty or outside.
 */
export function tokensCovering(starts: readonly number[], from: number, to: number): [number, number] | null {
  if (!(from < to) || from < 0 || to > starts[starts.length - 1]!) return null;
  let first = -1;
  let last = -1;
  for (let i = 0; i + 1 < starts.length; i++) {
    if (first < 0 && starts[i + 1]! > from) first = i;
    if (starts[i]! < to) last = i;
  }
  return first >= 0 && last >= first ? [first, last] : null;
}

/** The character index of the first word-aligned occurrence of `answer` in `text` at or after `from` (−1 if none). */
export function findAnswer(text: string, answer: string, from = 0): number {
  if (answer === '') return -1;
  for (let at = text.indexOf(answer, from); at >= 0; at = text.indexOf(answer, at + 1)) {
    const before = at > 0 ? text[at - 1]! : ' ';
    const after = at + answer.length < text.length ? text[at + answer.length]! : ' ';
    if (!/[\p{L}\p{N}]/u.test(before) && !/[\p{L}\p{N}]/u.test(after)) return at;
  }
  return -1;
}

export interface ScoredSpan {
  start: number;
  end: number;
  /** log p_start(start) + log p_end(end), each softmax over the allowed positions. */
  logprob: number;
}

/**
 * The best spans of one row: start and end logits (length T), positions [lo, hi) allowed, end − start < maxLen.
 * Log-softmax over the positions for each, then the top `top` pairs by the sum (DPR's span score); with `allowed`,
 * only pairs whose start and end it marks (whole words: wordBoundaries).
 */
export function bestSpans(start: ArrayLike<number>, end: ArrayLike<number>, lo: number, hi: number, maxLen: number, top: number, allowed?: { start: readonly boolean[]; end: readonly boolean[] }): ScoredSpan[] {
  const logSoftmax = (x: ArrayLike<number>): number[] => {
    let m = -Infinity;
    for (let i = lo; i < hi; i++) m = Math.max(m, x[i]!);
    let z = 0;
    for (let i = lo; i < hi; i++) z += Math.exp(x[i]! - m);
    const lse = m + Math.log(z);
    return Array.from({ length: hi - lo }, (_, i) => x[lo + i]! - lse);
  };
  const s = logSoftmax(start);
  const e = logSoftmax(end);
  const out: ScoredSpan[] = [];
  for (let i = 0; i < s.length; i++) {
    if (allowed && !allowed.start[lo + i]) continue;
    for (let j = i; j < Math.min(e.length, i + maxLen); j++) if (!allowed || allowed.end[lo + j]) out.push({ start: lo + i, end: lo + j, logprob: s[i]! + e[j]! });
  }
  out.sort((a, b) => b.logprob - a.logprob);
  return out.slice(0, top);
}

/** Letters and digits (a token starting or ending with one continues a word across a token boundary). */
function isWordByte(b: number | undefined): boolean {
  return b !== undefined && ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b >= 0x80);
}

/**
 * Per token whether a whole-word answer may start there (it does not continue the previous token's word) and end
 * there (the next token does not continue its word), so "Grammy" is never read out of " Grammys".
 */
export function wordBoundaries(tok: BpeTokenizer, ids: readonly number[]): { start: boolean[]; end: boolean[] } {
  const bytes = ids.map((id, i) => tok.tokenBytes(id, i));
  const joins = (i: number): boolean => i > 0 && i < ids.length && isWordByte(bytes[i - 1]![bytes[i - 1]!.length - 1]) && isWordByte(bytes[i]![0]);
  return { start: ids.map((_, i) => !joins(i)), end: ids.map((_, i) => !joins(i + 1)) };
}
