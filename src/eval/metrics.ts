// Metric arithmetic of the harness: means with lm-eval's standard error (sample standard deviation / √n, the
// binomial formula for 0/1 scores), a seeded bootstrap for metrics that are not means, TruthfulQA's MC2,
// perplexities, and answer normalisation for exact match (SQuAD-style for NQ-Open, numbers for GSM8K).
import { mulberry32 } from '../util/mulberry32.js';

export interface MetricValue {
  value: number;
  /** null when it cannot be estimated (fewer than 2 items). */
  stderr: number | null;
}

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Standard error of the mean: sample std (n − 1) / √n; for 0/1 scores this is √(p(1−p)/(n−1)). */
export function meanStderr(xs: readonly number[]): number | null {
  const n = xs.length;
  if (n < 2) return null;
  const m = mean(xs);
  let ss = 0;
  for (const x of xs) ss += (x - m) * (x - m);
  return Math.sqrt(ss / (n - 1)) / Math.sqrt(n);
}

export function meanMetric(xs: readonly number[]): MetricValue {
  return { value: mean(xs), stderr: meanStderr(xs) };
}

/** Standard deviation of `statistic` over `iters` seeded resamples of the items (for ratio metrics). */
export function bootstrapStderr<T>(items: readonly T[], statistic: (sample: readonly T[]) => number, iters = 200, seed = 1234): number | null {
  if (items.length < 2) return null;
  const next = mulberry32(seed);
  const stats: number[] = [];
  for (let k = 0; k < iters; k++) {
    const sample = Array.from({ length: items.length }, () => items[Math.floor(next() * items.length)]!);
    stats.push(statistic(sample));
  }
  const m = mean(stats);
  return Math.sqrt(stats.reduce((a, s) => a + (s - m) * (s - m), 0) / (iters - 1));
}

/** Index of the first maximum (numpy's argmax). */
export function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

/** TruthfulQA MC2: probability mass on the true answers, normalised over all answers. */
export function mc2(logprobs: readonly number[], labels: readonly number[]): number {
  const m = Math.max(...logprobs);
  let all = 0;
  let truth = 0;
  logprobs.forEach((lp, i) => {
    const p = Math.exp(lp - m);
    all += p;
    if (labels[i] === 1) truth += p;
  });
  return truth / all;
}

export interface PerplexityTotals {
  logprob: number;
  words: number;
  bytes: number;
}

/** Words as lm-eval counts them: pieces of a split on runs of whitespace. */
export function countWords(text: string): number {
  return text.split(/\s+/).length;
}

export function perplexities(t: PerplexityTotals): Record<'word_perplexity' | 'byte_perplexity' | 'bits_per_byte', number> {
  return {
    word_perplexity: Math.exp(-t.logprob / t.words),
    byte_perplexity: Math.exp(-t.logprob / t.bytes),
    bits_per_byte: -t.logprob / t.bytes / Math.LN2,
  };
}

/** SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces. */
export function normalizeSquad(s: string): string {
  return s
    .toLowerCase()
    .replace(/[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g, '')
    .replace(/\b(a|an|the)\b/g, ' ')
    .split(/\s+/)
    .filter((w) => w !== '')
    .join(' ');
}

/** GSM8K's normalisation (lm-eval regexes_to_ignore): no commas, dollar signs or trailing period; trimmed. */
export function normalizeNumber(s: string): string {
  return s.replace(/,/g, '').replace(/\$/g, '').trim().replace(/\.$/, '').trim().toLowerCase();
}

/** The answer a regex extracts from a generation: its first non-empty group of the first or last match. */
export function extractAnswer(text: string, regex: string, pick: 'first' | 'last'): string | null {
  const matches = [...text.matchAll(new RegExp(regex, 'g'))];
  const m = pick === 'first' ? matches[0] : matches[matches.length - 1];
  if (!m) return null;
  for (let i = 1; i < m.length; i++) if (m[i]) return m[i]!;
  return m[0];
}

/** SQuAD's token F1 of a prediction against one answer, both already normalised (normalizeSquad). */
export function tokenF1(pred: string, gold: string): number {
  const p = pred.split(/\s+/).filter((t) => t !== '');
  const g = gold.split(/\s+/).filter((t) => t !== '');
  if (p.length === 0 || g.length === 0) return p.length === g.length ? 1 : 0;
  const count = new Map<string, number>();
  for (const t of g) count.set(t, (count.get(t) ?? 0) + 1);
  let common = 0;
  for (const t of p) {
    const n = count.get(t) ?? 0;
    if (n > 0) {
      common++;
      count.set(t, n - 1);
    }
  }
  if (common === 0) return 0;
  const precision = common / p.length;
  const recall = common / g.length;
  return (2 * precision * recall) / (precision + recall);
}
