// lmforge's GPT behind the harness's LanguageModel interface: continuation log-likelihoods through the KV cache
// (the shared context of an item's choices encoded once, then each choice scored from it), rolling windows for
// perplexity, and greedy or sampled generation with stop strings. Inputs longer than block_size are truncated from the left
// exactly as lm-evaluation-harness does. Not the harness (harness.ts) and not a tokenizer.
import * as lm from '../core/index.js';
import type { GPT, KVCache } from '../models/gpt.js';
import { generate, type Generation } from '../serve/generate.js';
import { samplingProcessors } from '../serve/logits.js';
import { spanConstraint } from '../retrieval/reader-extract.js';
import {
  encodePair, type GenerateRequest, type LanguageModel, type LoglikelihoodRequest, type LoglikelihoodResult,
  type ModelIdentity, type RollingResult, type SampleRequest, type TextTokenizer,
} from './model.js';

/** Sampled rows of one request decoded as one batch at most. */
const SAMPLE_BATCH = 32;

export interface GPTAdapterOptions {
  /** Encode a context shared by consecutive requests once and score each continuation from the cache (default true). */
  prefixReuse?: boolean;
  /** Extra identity fields for reports (path, weights hash). */
  identity?: Record<string, unknown>;
}

/** Log-softmax of one row at `token`, and whether `token` is the row's argmax. Float64 accumulation. */
export function logprobAt(row: ArrayLike<number>, token: number): { logprob: number; greedy: boolean } {
  let max = -Infinity;
  let arg = 0;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (v > max) {
      max = v;
      arg = i;
    }
  }
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return { logprob: row[token]! - max - Math.log(sum), greedy: arg === token || row[token] === max };
}

interface Encoded {
  context: number[];
  continuation: number[];
}

/** lm-eval's rolling windows (context length 1): each window predicts up to L new tokens with up to L tokens of input. */
export function rollingWindows(tokens: readonly number[], prefix: number, L: number): { input: number[]; predict: number[] }[] {
  const out: { input: number[]; predict: number[] }[] = [];
  if (tokens.length === 0) return out;
  const first = Math.min(L, tokens.length);
  out.push({ input: [prefix, ...tokens.slice(0, first - 1)], predict: tokens.slice(0, first) });
  let predicted = first;
  while (predicted < tokens.length) {
    const n = Math.min(tokens.length - predicted, L);
    const end = predicted + n;
    out.push({ input: tokens.slice(end - L - 1, end - 1), predict: tokens.slice(end - n, end) });
    predicted += n;
  }
  return out;
}

export class GPTAdapter implements LanguageModel {
  readonly maxLength: number;
  private readonly prefixReuse: boolean;
  private cache: KVCache | null = null;

  constructor(readonly model: GPT, readonly tokenizer: TextTokenizer, private readonly options: GPTAdapterOptions = {}) {
    this.maxLength = model.config.block_size;
    this.prefixReuse = options.prefixReuse ?? true;
    model.eval();
  }

  identity(): ModelIdentity {
    return { kind: 'lmforge-gpt', config: { ...this.model.config }, parameters: this.model.numParameters(), ...this.options.identity };
  }

  dispose(): void {
    this.cache?.dispose();
    this.cache = null;
  }

  private kv(): KVCache {
    this.cache ??= this.model.newCache(1);
    return this.cache;
  }

  /** Feeds tokens at the cache's position; returns the logits rows of the last n positions. */
  private feed(tokens: readonly number[], n: number): Float32Array[] {
    const cache = this.kv();
    return lm.tidy(() => {
      const logits = this.model.forwardCachedLast(lm.tensor([...tokens], [1, tokens.length], 'int32'), cache, n);
      const flat = logits.toTypedArray() as Float32Array;
      const V = this.model.config.vocab_size;
      return Array.from({ length: n }, (_, i) => flat.slice(i * V, (i + 1) * V));
    });
  }

  private encode(r: LoglikelihoodRequest): Encoded {
    const pair = r.context === '' ? undefined : encodePair(this.tokenizer, r.context, r.continuation);
    if (pair && pair.context.length > 0) return pair;
    const cont = pair ? pair.continuation : this.tokenizer.encode(r.continuation);
    const prefix = this.tokenizer.prefixToken;
    // lm-eval starts an empty context with the end-of-text token; without one the first token goes unscored.
    if (prefix !== undefined) return { context: [prefix], continuation: cont };
    return { context: cont.slice(0, 1), continuation: cont.slice(1) };
  }

  loglikelihood(requests: readonly LoglikelihoodRequest[]): LoglikelihoodResult[] {
    const results: LoglikelihoodResult[] = new Array<LoglikelihoodResult>(requests.length);
    let i = 0;
    while (i < requests.length) {
      // A run of consecutive requests with the same context shares its encoding.
      let j = i + 1;
      if (this.prefixReuse) while (j < requests.length && requests[j]!.context === requests[i]!.context) j++;
      const encoded = requests.slice(i, j).map((r) => this.encode(r));
      this.scoreGroup(encoded).forEach((res, k) => (results[i + k] = res));
      i = j;
    }
    return results;
  }

  /** Scores requests sharing one context; those whose left truncation starts at the same token share the prefix pass. */
  private scoreGroup(encoded: readonly Encoded[]): LoglikelihoodResult[] {
    const L = this.maxLength;
    const results: LoglikelihoodResult[] = new Array<LoglikelihoodResult>(encoded.length);
    // lm-eval's input: (context + continuation)[-(L+1):][:-1]; its start index in context + continuation:
    const starts = encoded.map((e) => Math.max(0, e.context.length + e.continuation.length - 1 - L));
    const done = new Array<boolean>(encoded.length).fill(false);
    for (let a = 0; a < encoded.length; a++) {
      if (done[a]) continue;
      const e = encoded[a]!;
      if (e.continuation.length === 0) {
        results[a] = { logprob: 0, isGreedy: true, tokens: 0 };
        done[a] = true;
        continue;
      }
      const s = starts[a]!;
      if (!this.prefixReuse || s >= e.context.length) {
        results[a] = this.scoreWhole(e, s);
        done[a] = true;
        continue;
      }
      // Encode context[s:] once; its last logits row predicts every continuation's first token.
      const cache = this.kv();
      cache.length = 0;
      const [first] = this.feed(e.context.slice(s), 1);
      const prefixLength = cache.length;
      for (let b = a; b < encoded.length; b++) {
        const o = encoded[b]!;
        if (done[b] || starts[b] !== s || o.continuation.length === 0) continue;
        cache.length = prefixLength;
        let { logprob, greedy } = logprobAt(first!, o.continuation[0]!);
        if (o.continuation.length > 1) {
          const rows = this.feed(o.continuation.slice(0, -1), o.continuation.length - 1);
          rows.forEach((row, k) => {
            const r = logprobAt(row, o.continuation[k + 1]!);
            logprob += r.logprob;
            greedy &&= r.greedy;
          });
        }
        results[b] = { logprob, isGreedy: greedy, tokens: o.continuation.length };
        done[b] = true;
      }
    }
    return results;
  }

  /**
   * Log-likelihoods of many continuations of one context that share token prefixes (the word spans of a passage, an
   * extractive reader's candidates): the context is encoded once, and continuations are visited in reverse
   * lexicographic order of their tokens, so a longer one is fed before its prefixes, which are then scored from rows
   * already computed; otherwise only the tokens after the common prefix are fed. The same numbers as loglikelihood
   * (up to float rounding); continuations that would need left truncation, or whose context encodes differently
   * (a merge across the boundary), go through loglikelihood.
   */
  loglikelihoodShared(context: string, continuations: readonly string[]): LoglikelihoodResult[] {
    const results: LoglikelihoodResult[] = new Array<LoglikelihoodResult>(continuations.length);
    const encoded = continuations.map((continuation) => this.encode({ context, continuation }));
    const ctx = encoded[0]?.context ?? [];
    const sameContext = (e: Encoded): boolean => e.context.length === ctx.length && e.context.every((t, i) => t === ctx[i]);
    const fits = (e: Encoded): boolean => e.context.length + e.continuation.length - 1 <= this.maxLength;
    const shared: number[] = [];
    const rest: number[] = [];
    encoded.forEach((e, i) => (e.continuation.length > 0 && sameContext(e) && fits(e) ? shared : rest).push(i));
    if (rest.length > 0) this.loglikelihood(rest.map((i) => ({ context, continuation: continuations[i]! }))).forEach((r, k) => (results[rest[k]!] = r));
    if (shared.length === 0) return results;
    const compare = (a: readonly number[], b: readonly number[]): number => {
      for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
      return a.length - b.length;
    };
    shared.sort((i, j) => compare(encoded[j]!.continuation, encoded[i]!.continuation));
    const cache = this.kv();
    cache.length = 0;
    const [first] = this.feed(ctx, 1);
    const base = cache.length;
    // The fed path after the context; rows[k] holds the logits that predict the token after path[k].
    const path: number[] = [];
    const rows: Float32Array[] = [];
    for (const i of shared) {
      const cont = encoded[i]!.continuation;
      const input = cont.slice(0, -1);
      let common = 0;
      while (common < input.length && common < path.length && path[common] === input[common]) common++;
      if (common < input.length) {
        path.length = common;
        rows.length = common;
        cache.length = base + common;
        const fresh = input.slice(common);
        rows.push(...this.feed(fresh, fresh.length));
        path.push(...fresh);
      }
      let { logprob, greedy } = logprobAt(first!, cont[0]!);
      for (let k = 1; k < cont.length; k++) {
        const r = logprobAt(rows[k - 1]!, cont[k]!);
        logprob += r.logprob;
        greedy &&= r.greedy;
      }
      results[i] = { logprob, isGreedy: greedy, tokens: cont.length };
    }
    return results;
  }

  /** One pass over (context + continuation)[s:-1], scoring the continuation's positions. */
  private scoreWhole(e: Encoded, s: number): LoglikelihoodResult {
    const full = [...e.context, ...e.continuation];
    const input = full.slice(s, full.length - 1);
    // A continuation longer than the window: only its last input.length tokens can be scored.
    const n = Math.min(e.continuation.length, input.length);
    const targets = full.slice(full.length - n);
    this.kv().length = 0;
    const rows = this.feed(input, n);
    let logprob = 0;
    let greedy = true;
    rows.forEach((row, k) => {
      const r = logprobAt(row, targets[k]!);
      logprob += r.logprob;
      greedy &&= r.greedy;
    });
    return { logprob, isGreedy: greedy, tokens: n };
  }

  loglikelihoodRolling(texts: readonly string[]): RollingResult[] {
    return texts.map((text) => {
      let tokens = this.tokenizer.encode(text);
      let prefix = this.tokenizer.prefixToken;
      if (prefix === undefined) {
        // No end-of-text token: the first token conditions the rest and is not scored.
        prefix = tokens[0];
        tokens = tokens.slice(1);
      }
      let logprob = 0;
      for (const w of rollingWindows(tokens, prefix ?? 0, this.maxLength)) {
        this.kv().length = 0;
        const rows = this.feed(w.input, w.predict.length);
        rows.forEach((row, k) => (logprob += logprobAt(row, w.predict[k]!).logprob));
      }
      return { logprob, tokens: tokens.length };
    });
  }

  generateUntil(requests: readonly GenerateRequest[]): string[] {
    return this.sampleUntil(requests.map((r) => ({ ...r, n: 1, temperature: 0, topP: 1, seed: 0 }))).map((rows) => rows[0]!);
  }

  /** The extractive constraint of a request: spans of its text (words joined by single spaces, so each word's token has its leading space), ended by a one-token stop string. */
  private extractive(r: GenerateRequest): ReturnType<typeof spanConstraint>[] {
    if (r.extractFrom === undefined) return [];
    const source = this.tokenizer.encode(' ' + r.extractFrom.split(/\s+/).filter((w) => w !== '').join(' '));
    const stop = r.stop.map((s) => this.tokenizer.encode(s)).filter((ids) => ids.length === 1).map((ids) => ids[0]!);
    // A token whose text starts with a letter or digit continues the word before it.
    const midWord = (id: number): boolean => /^[\p{L}\p{N}]/u.test(this.tokenizer.decode([id]));
    return [spanConstraint(source, stop, midWord)];
  }

  /** Greedy (temperature 0) or sampled continuations: a request's n rows decode together as one batch. */
  sampleUntil(requests: readonly SampleRequest[]): string[][] {
    const L = this.maxLength;
    return requests.map((r) => {
      let ctx = r.context === '' ? [] : this.tokenizer.encode(r.context);
      if (ctx.length === 0) ctx = this.tokenizer.prefixToken !== undefined ? [this.tokenizer.prefixToken] : [0];
      // lm-eval keeps the last (max_length − max_gen_toks) context tokens; when the block is shorter than
      // max_gen_toks that would be nothing, so half the block is kept and generation ends when the block is full.
      ctx = ctx.slice(-(L > r.maxTokens ? L - r.maxTokens : Math.max(1, Math.floor(L / 2))));
      const prefix = this.tokenizer.prefixToken;
      const rows: Generation[] = [];
      // At most SAMPLE_BATCH rows decode together (KV-cache memory grows with the batch); row i always draws from seed + i.
      for (let start = 0; start < r.n; start += SAMPLE_BATCH) {
        rows.push(...generate(this.model, Array.from({ length: Math.min(SAMPLE_BATCH, r.n - start) }, () => ctx), {
          maxNewTokens: r.maxTokens, greedy: r.temperature === 0, onFull: 'stop', seed: r.seed + start,
          processors: [...this.extractive(r), ...samplingProcessors({ temperature: r.temperature, topP: r.topP })],
          stopTokens: prefix !== undefined ? [prefix] : [],
          stopStrings: { strings: r.stop, decode: (ids) => this.tokenizer.decode(ids) },
        }));
      }
      return rows.map((g) => {
        // The end-of-text token ends the answer and is not part of it.
        const ids = prefix !== undefined && g.tokens[g.tokens.length - 1] === prefix ? g.tokens.slice(0, -1) : g.tokens;
        const text = this.tokenizer.decode(ids);
        const cut = firstStop(text, r.stop);
        return cut >= 0 ? text.slice(0, cut) : text;
      });
    });
  }
}

function firstStop(text: string, stop: readonly string[]): number {
  let cut = -1;
  for (const s of stop) {
    if (s === '') continue;
    const k = text.indexOf(s);
    if (k >= 0 && (cut < 0 || k < cut)) cut = k;
  }
  return cut;
}
