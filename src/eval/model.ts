// The model interface the evaluation harness scores: log-likelihoods of continuations, rolling log-likelihoods of
// whole texts, and greedy generation with stop strings. Any model (lmforge's GPT, later others) implements it;
// the harness never touches tensors. Not an implementation: see gpt-adapter.ts.

/** Score `continuation` given `context` (lm-eval's loglikelihood request). */
export interface LoglikelihoodRequest {
  context: string;
  continuation: string;
}

export interface LoglikelihoodResult {
  /** Sum of log p(token) over the continuation's tokens, natural log. */
  logprob: number;
  /** Whether every continuation token is the model's argmax at its position (lm-eval's is_greedy). */
  isGreedy: boolean;
  /** Tokens in the continuation. */
  tokens: number;
}

export interface RollingResult {
  /** Sum of log p over every token of the text. */
  logprob: number;
  tokens: number;
}

export interface GenerateRequest {
  context: string;
  /** Generation stops before the first occurrence of any of these strings (they are not returned). */
  stop: readonly string[];
  maxTokens: number;
  /** Extractive decoding: only spans of this text may be generated (open-book readers; retrieval/reader-extract.ts). */
  extractFrom?: string;
}

/** n sampled continuations of one context (code tasks: pass@k needs several independent samples per problem). */
export interface SampleRequest extends GenerateRequest {
  n: number;
  /** 0 = greedy (every row the same). */
  temperature: number;
  /** Nucleus mass kept (1 = all). */
  topP: number;
  /** Row r of this request draws from its own RNG seeded with seed + r. */
  seed: number;
}

/** What a report records about the model it scored. */
export interface ModelIdentity {
  kind: string;
  [key: string]: unknown;
}

export interface LanguageModel {
  /** Longest context (tokens); longer inputs are truncated from the left. */
  readonly maxLength: number;
  identity(): ModelIdentity;
  /**
   * Log-likelihoods of a batch of requests. Requests that share a context (the choices of one item, passed
   * consecutively) may share its encoding.
   */
  loglikelihood(requests: readonly LoglikelihoodRequest[]): LoglikelihoodResult[];
  /** Log-likelihood of each whole text, scored in windows of maxLength tokens (perplexity). */
  loglikelihoodRolling(texts: readonly string[]): RollingResult[];
  /** Greedy continuations, one per request. */
  generateUntil(requests: readonly GenerateRequest[]): string[];
  /** request.n sampled continuations per request, each cut before its first stop string. */
  sampleUntil(requests: readonly SampleRequest[]): string[][];
}

/** The minimal tokenizer surface the adapters need. */
export interface TextTokenizer {
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
  /** Token that stands for "start of document" when a context is empty (GPT-2's <|endoftext|>), if any. */
  readonly prefixToken: number | undefined;
}

/**
 * Splits (context, continuation) into token lists as lm-eval does: trailing whitespace of the context moves to the
 * continuation, the pair is encoded whole, and the continuation's tokens are those after the context's encoding.
 */
export function encodePair(tok: TextTokenizer, context: string, continuation: string): { context: number[]; continuation: number[] } {
  const spaces = context.length - context.trimEnd().length;
  if (spaces > 0) {
    continuation = context.slice(context.length - spaces) + continuation;
    context = context.slice(0, context.length - spaces);
  }
  const whole = tok.encode(context + continuation);
  const ctx = tok.encode(context);
  return { context: ctx, continuation: whole.slice(ctx.length) };
}
