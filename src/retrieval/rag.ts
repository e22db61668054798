// Retrieval-augmented reading (Lewis et al. 2020, RAG): a generator conditioned on each of the top-k passages z, with
// p(z|x) = softmax(retrieval score / T) over them.
//   RAG-Sequence: p(y|x) = Σ_z p(z|x) Π_t p(y_t | x, z, y_<t)        (one passage explains the whole answer)
//   RAG-Token:    p(y|x) = Π_t Σ_z p(z|x) p(y_t | x, z, y_<t)        (each token may lean on a different passage)
// Both in log space with log-sum-exp. Decoding: RAG-Token greedily from the mixed next-token distribution;
// RAG-Sequence decodes greedily under each passage, then ranks those candidates by their marginal p(y|x) ("thorough
// decoding" restricted to the k candidates). The model is abstract (a ReaderLM), so any causal LM can be the reader;
// not a retriever, not a trainer. gptReader adapts a GPT (src/models) to it.
import * as lm from '../core/index.js';
import type { GPT } from '../models/gpt.js';

/** What a reader needs from a causal language model over token ids. */
export interface ReaderLM {
  /** log p(next token | prefix) over the vocabulary. */
  nextLogprobs(prefix: readonly number[]): Float32Array;
}

function logSumExp(xs: readonly number[]): number {
  let m = -Infinity;
  for (const x of xs) m = Math.max(m, x);
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (const x of xs) s += Math.exp(x - m);
  return m + Math.log(s);
}

/** log p(z|x) = log softmax(score_z / temperature) over the retrieved passages. */
export function passagePrior(scores: readonly number[], temperature = 1): number[] {
  const z = scores.map((s) => s / temperature);
  const lse = logSumExp(z);
  return z.map((s) => s - lse);
}

/** Per-token log p(y_t | prompt, y_<t) of `target` after `prompt`. */
export function tokenLogprobs(lm: ReaderLM, prompt: readonly number[], target: readonly number[]): number[] {
  const out: number[] = [];
  const prefix = [...prompt];
  for (const y of target) {
    out.push(lm.nextLogprobs(prefix)[y]!);
    prefix.push(y);
  }
  return out;
}

/** RAG-Sequence: log Σ_z p(z|x) Π_t p(y_t|x,z,y_<t), from each passage's per-token log-probabilities. */
export function ragSequenceLogprob(logPz: readonly number[], perPassage: readonly (readonly number[])[]): number {
  return logSumExp(logPz.map((lz, z) => lz + perPassage[z]!.reduce((s, x) => s + x, 0)));
}

/** RAG-Token: Σ_t log Σ_z p(z|x) p(y_t|x,z,y_<t). */
export function ragTokenLogprob(logPz: readonly number[], perPassage: readonly (readonly number[])[]): number {
  const T = perPassage[0]?.length ?? 0;
  let total = 0;
  for (let t = 0; t < T; t++) total += logSumExp(logPz.map((lz, z) => lz + perPassage[z]![t]!));
  return total;
}

export interface DecodeOptions {
  maxTokens: number;
  /** Token ids that end the answer (not included in it). */
  stop: readonly number[];
}

function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

/** RAG-Token greedy decoding: each step takes the argmax of Σ_z p(z|x) p(·|x,z,y_<t). prompts[z] is x with passage z. */
export function ragTokenGenerate(lm: ReaderLM, prompts: readonly (readonly number[])[], logPz: readonly number[], o: DecodeOptions): number[] {
  const out: number[] = [];
  for (let t = 0; t < o.maxTokens; t++) {
    const dists = prompts.map((p) => lm.nextLogprobs([...p, ...out]));
    const V = dists[0]!.length;
    const mix = new Float64Array(V);
    for (let v = 0; v < V; v++) mix[v] = logSumExp(dists.map((d, z) => logPz[z]! + d[v]!));
    const y = argmax(mix);
    if (o.stop.includes(y)) break;
    out.push(y);
  }
  return out;
}

/** RAG-Sequence decoding: a greedy answer under each passage, the one with the largest marginal p(y|x) returned. */
export function ragSequenceGenerate(lm: ReaderLM, prompts: readonly (readonly number[])[], logPz: readonly number[], o: DecodeOptions): { tokens: number[]; logprob: number } {
  const candidates: number[][] = prompts.map((p) => {
    const out: number[] = [];
    for (let t = 0; t < o.maxTokens; t++) {
      const y = argmax(lm.nextLogprobs([...p, ...out]));
      if (o.stop.includes(y)) break;
      out.push(y);
    }
    return out;
  });
  let best = { tokens: [] as number[], logprob: -Infinity };
  const seen = new Set<string>();
  for (const c of candidates) {
    const key = c.join(',');
    if (seen.has(key)) continue;
    seen.add(key);
    const lp = ragSequenceLogprob(logPz, prompts.map((p) => tokenLogprobs(lm, p, c)));
    if (lp > best.logprob) best = { tokens: c, logprob: lp };
  }
  return best;
}

/** The prompt a reader sees for one passage (title, text, question), as text. */
export function readerPrompt(passage: { title?: string; text: string }, question: string): string {
  return `${passage.title ? `${passage.title}\n` : ''}${passage.text}\n\nQuestion: ${question}\nAnswer:`;
}

/** A GPT as a ReaderLM: one forward over the last block_size tokens of the prefix, log-softmax of the last logits. */
export function gptReader(model: GPT): ReaderLM {
  const T = model.config.block_size;
  return {
    nextLogprobs(prefix) {
      const ids = prefix.length > T ? prefix.slice(prefix.length - T) : prefix;
      if (ids.length === 0) throw new RangeError('gptReader: empty prefix');
      const logits = lm.tidy(() => model.forward(lm.tensor(ids, [1, ids.length], 'int32'), undefined, { last: 1 }).logits.toArray()); // (1, 1, V)
      let m = -Infinity;
      for (const x of logits) m = Math.max(m, x);
      let z = 0;
      for (const x of logits) z += Math.exp(x - m);
      const lse = m + Math.log(z);
      return Float32Array.from(logits, (x) => x - lse);
    },
  };
}

/**
 * A reader seen through text (the evaluation harness's LanguageModel has this shape): greedy generation until a stop
 * string, and the log-probability of a continuation after a context.
 */
export interface TextReader {
  generateUntil(requests: readonly { context: string; stop: readonly string[]; maxTokens: number; extractFrom?: string }[]): string[];
  loglikelihood(requests: readonly { context: string; continuation: string }[]): { logprob: number; tokens?: number }[];
  /** Optional: the same for many continuations of one context, sharing the passes of common token prefixes. */
  loglikelihoodShared?(context: string, continuations: readonly string[]): { logprob: number; tokens?: number }[];
}

/** loglikelihood of requests, through loglikelihoodShared per run of one context where the reader has it. */
function scoreAll(reader: TextReader, requests: readonly { context: string; continuation: string }[]): { logprob: number; tokens?: number }[] {
  if (!reader.loglikelihoodShared) return reader.loglikelihood(requests);
  const out: { logprob: number; tokens?: number }[] = [];
  for (let i = 0; i < requests.length;) {
    let j = i + 1;
    while (j < requests.length && requests[j]!.context === requests[i]!.context) j++;
    out.push(...reader.loglikelihoodShared(requests[i]!.context, requests.slice(i, j).map((r) => r.continuation)));
    i = j;
  }
  return out;
}

export interface RagSequenceAnswer {
  /** The chosen answer text (as generated, before any normalisation). */
  answer: string;
  /** log p(answer + end | x) = log Σ_z p(z|x) p(answer + end | x, z). */
  logprob: number;
  /** Each distinct greedy candidate with its marginal log-probability. */
  candidates: { text: string; logprob: number }[];
}

/**
 * RAG-Sequence over a TextReader: a greedy answer under each passage's prompt, then each distinct candidate y scored
 * under every prompt as y followed by the first stop string (so p(y) includes ending there), marginalised with
 * p(z|x). prompts[z] is x conditioned on passage z; requests are grouped by prompt so a reader can reuse its encoding.
 * With extractFrom, the answer under passage z is decoded as a span of extractFrom[z] (an extractive reader), and a
 * candidate gets no mass from a passage that does not contain it (the extractive reader's support).
 */
export function ragSequenceAnswerText(reader: TextReader, prompts: readonly string[], logPz: readonly number[], o: RagSequenceOptions, extractFrom?: readonly string[]): RagSequenceAnswer {
  if (prompts.length === 0) throw new RangeError('ragSequenceAnswerText: no passages');
  if (prompts.length !== logPz.length) throw new RangeError(`ragSequenceAnswerText: ${prompts.length} prompts but ${logPz.length} passage log-probabilities`);
  const generated = reader.generateUntil(prompts.map((context, z) => ({ context, stop: o.stop, maxTokens: o.maxTokens, ...(extractFrom ? { extractFrom: extractFrom[z]! } : {}) })));
  // Span scoring adds every short word span of every passage to the greedy answers (with the leading space a
  // generated answer has after "Answer:").
  const spans = extractFrom && o.spanWords ? extractFrom.flatMap((t) => wordSpans(t, o.spanWords!).map((w) => ' ' + w)) : [];
  const texts = [...new Set([...generated, ...spans])];
  const end = o.stop[0] ?? '';
  // An extractive reader puts no mass on text its passage does not hold: such (candidate, passage) pairs count zero,
  // and are not scored (most spans occur in one passage only).
  const squashed = extractFrom?.map(squash);
  const holds = (z: number, text: string): boolean => !squashed || holdsSpan(squashed[z]!, squash(text));
  const pairs: { z: number; c: number }[] = [];
  prompts.forEach((_, z) => texts.forEach((t, c) => { if (holds(z, t)) pairs.push({ z, c }); }));
  const lls = scoreAll(reader, pairs.map(({ z, c }) => ({ context: prompts[z]!, continuation: texts[c]! + end })));
  const joint: number[][] = texts.map(() => []);
  const tokens = new Array<number>(texts.length).fill(1);
  pairs.forEach(({ z, c }, i) => {
    joint[c]!.push(logPz[z]! + lls[i]!.logprob);
    if (lls[i]!.tokens !== undefined) tokens[c] = Math.max(1, lls[i]!.tokens!);
  });
  if (o.pmi && o.nullPrompts) {
    // Question-aware scoring: subtract λ · log p(y + end | passage z, no question) from each pair, so a span the reader
    // would give under this passage whatever the question (its prior) stops winning by default (pointwise mutual
    // information between the answer and the question, given the passage). Cached per null prompt: every question
    // retrieving the same passage shares it.
    const cache = o.nullCache ?? new Map<string, Map<string, number>>();
    const missing: { z: number; c: number }[] = [];
    const seen = new Set<string>();
    for (const { z, c } of pairs) {
      const m = cache.get(o.nullPrompts[z]!);
      const key = `${z}\u0000${c}`;
      if (!m?.has(texts[c]!) && !seen.has(key)) {
        seen.add(key);
        missing.push({ z, c });
      }
    }
    missing.sort((a, b) => a.z - b.z);
    const nulls = scoreAll(reader, missing.map(({ z, c }) => ({ context: o.nullPrompts![z]!, continuation: texts[c]! + end })));
    missing.forEach(({ z, c }, i) => {
      let m = cache.get(o.nullPrompts![z]!);
      if (!m) cache.set(o.nullPrompts![z]!, (m = new Map()));
      m.set(texts[c]!, nulls[i]!.logprob);
    });
    const lambda = o.pmi;
    joint.forEach((row) => row.splice(0));
    pairs.forEach(({ z, c }, i) => joint[c]!.push(logPz[z]! + lls[i]!.logprob - lambda * cache.get(o.nullPrompts![z]!)!.get(texts[c]!)!));
  }
  const candidates = texts.map((text, c) => ({ text, logprob: logSumExp(joint[c]!) }));
  // Ranking: the marginal log p(y|x), divided by (tokens of y + end)^α when α > 0 (a length-normalised score: without
  // it every extra token costs probability and one-word spans win by default).
  const alpha = o.lengthAlpha ?? 0;
  const rank = (c: number): number => (alpha > 0 ? candidates[c]!.logprob / tokens[c]! ** alpha : candidates[c]!.logprob);
  let best = 0;
  for (let c = 1; c < candidates.length; c++) if (rank(c) > rank(best)) best = c;
  // The samples log keeps the greedy answers and the best-ranked span candidates, not all of them.
  const greedyCount = new Set(generated).size;
  const shown = candidates.filter((_, c) => c < greedyCount || c === best);
  return { answer: candidates[best]!.text, logprob: candidates[best]!.logprob, candidates: shown };
}

export interface RagSequenceOptions {
  stop: readonly string[];
  maxTokens: number;
  /** Extractive readers: also score every span of 1..spanWords words of each passage as a candidate (0/absent: greedy answers only). */
  spanWords?: number;
  /** Rank candidates by log p(y|x) / (tokens)^α (0/absent: by log p(y|x)). */
  lengthAlpha?: number;
  /** λ of question-aware scoring: each log p(y|x,z) less λ · log p(y|z without the question) (needs nullPrompts). */
  pmi?: number;
  /** prompts[z] with the question left out (same layout), for pmi. */
  nullPrompts?: readonly string[];
  /** log p(y | null prompt) by null prompt and answer text, shared across calls (questions retrieving the same passage). */
  nullCache?: Map<string, Map<string, number>>;
}

function squash(t: string): string {
  return t.split(/\s+/).filter((w) => w !== '').join(' ');
}

/** Whether `span` occurs in `text` word-aligned: neither preceded nor followed by a letter or digit (both squashed). */
export function holdsSpan(text: string, span: string): boolean {
  if (span === '') return false;
  for (let at = text.indexOf(span); at >= 0; at = text.indexOf(span, at + 1)) {
    const before = at > 0 ? text[at - 1]! : ' ';
    const after = at + span.length < text.length ? text[at + span.length]! : ' ';
    if (!/[\p{L}\p{N}]/u.test(before) && !/[\p{L}\p{N}]/u.test(after)) return true;
  }
  return false;
}

/**
 * The distinct spans of 1..maxWords whitespace words of `text`, with punctuation trimmed from both ends ("Gaga," →
 * "Gaga"), in order of first occurrence; spans left with no letter or digit are dropped.
 */
export function wordSpans(text: string, maxWords: number): string[] {
  const words = text.split(/\s+/).filter((w) => w !== '');
  const out = new Set<string>();
  for (let i = 0; i < words.length; i++) {
    for (let n = 1; n <= maxWords && i + n <= words.length; n++) {
      const span = words.slice(i, i + n).join(' ').replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, '');
      if (span !== '') out.add(span);
    }
  }
  return [...out];
}

/**
 * REALM / RAG training objective for one answer over the K retrieved passages, differentiable in both the retriever
 * and the reader: −log p(y|x) = −log Σ_z p(z|x) p(y|x,z), with p(z|x) = softmax(scores/τ) over the top K.
 * passageScores (K) are the retriever's scores (e.g. dense inner products, with gradients into the encoders);
 * answerLogprobs (K) are log p(y|x,z) from the reader (readerAnswerLogprobs). ∂/∂score_z = (p(z|x) − p(z|x,y)) / τ:
 * passages under which the answer is likelier than the prior says are pulled up.
 */
export function marginalLikelihoodLoss(passageScores: lm.Tensor, answerLogprobs: lm.Tensor, temperature = 1): lm.Tensor {
  if (passageScores.ndim !== 1 || answerLogprobs.ndim !== 1 || passageScores.shape[0] !== answerLogprobs.shape[0]) {
    throw new RangeError(`marginalLikelihoodLoss: expected two (K) tensors, got ${passageScores.describe()} and ${answerLogprobs.describe()}`);
  }
  const joint = lm.add(lm.logSoftmax(lm.mulScalar(passageScores, 1 / temperature), -1), answerLogprobs); // (K): log p(z|x) + log p(y|x,z)
  // log-sum-exp shifted by the (constant) maximum for stability; the shift does not change the gradient.
  const m = Math.max(...joint.toArray());
  return lm.neg(lm.addScalar(lm.log(lm.sum(lm.exp(lm.addScalar(joint, -m)))), m));
}

/**
 * log p(y | x, z) of one answer under each of K prompts, with gradients into the GPT: ids[z] = prompt_z + answer,
 * answerStart[z] the index of the answer's first token. Rows are right-padded to one length. Returns (K).
 */
export function readerAnswerLogprobs(model: GPT, ids: readonly (readonly number[])[], answerStart: readonly number[]): lm.Tensor {
  const K = ids.length;
  const T = Math.max(...ids.map((r) => r.length)) - 1;
  const x = new Int32Array(K * T);
  const y = new Int32Array(K * T).fill(-1);
  ids.forEach((row, z) => {
    if (!(answerStart[z]! >= 1 && answerStart[z]! < row.length)) throw new RangeError(`readerAnswerLogprobs: row ${z} has answerStart ${answerStart[z]} outside [1, ${row.length})`);
    for (let t = 0; t < row.length - 1; t++) {
      x[z * T + t] = row[t]!;
      if (t + 1 >= answerStart[z]!) y[z * T + t] = row[t + 1]!; // position t predicts answer token t+1
    }
  });
  const logits = model.forward(lm.fromArray(x, [K, T])).logits; // (K, T, V)
  const nll = lm.crossEntropy(logits, lm.fromArray(y, [K, T]), { ignoreIndex: -1, reduction: 'none' }); // (K, T), 0 where ignored
  return lm.neg(lm.sum(nll, 1)); // (K)
}
