// Model-based quality scoring: the DocumentScorer interface (a Kneser-Ney LM today; the trained GPT later can
// register itself under another kind), a registry of scorer kinds, and the filter that keeps the score as
// metadata and cuts on a threshold.
import { KEEP, drop } from '../document.js';
import type { Document, DocumentFilter, FilterResult } from '../document.js';
import { KneserNeyLM } from './kneser-ney.js';
import { UserError } from '../../util/errors.js';

export interface DocumentScorer {
  readonly name: string;
  /** Perplexity-like scores are better when lower; classifier probabilities when higher. */
  readonly lowerIsBetter: boolean;
  score(text: string): number;
}

/** Builds a scorer from its config options; may load a model asynchronously (a neural scorer reading weights). */
export type ScorerFactory = (options: Record<string, unknown>) => DocumentScorer | Promise<DocumentScorer>;

const registry = new Map<string, ScorerFactory>();

/** Makes a scorer kind available to configs (`scorer: {kind: ..., ...options}`). */
export function registerScorer(kind: string, factory: ScorerFactory): void {
  registry.set(kind, factory);
}

export function scorerKinds(): string[] {
  return [...registry.keys()].sort();
}

export async function createScorer(kind: string, options: Record<string, unknown>): Promise<DocumentScorer> {
  const f = registry.get(kind);
  if (f === undefined) throw new UserError(`scorer.kind: unknown scorer "${kind}" (have ${scorerKinds().join(', ')})`);
  return await f(options);
}

export class KneserNeyScorer implements DocumentScorer {
  readonly name = 'ccnet_perplexity';
  readonly lowerIsBetter = true;
  constructor(readonly lm: KneserNeyLM) {}
  score(text: string): number {
    return this.lm.perplexity(text);
  }
}

registerScorer('kneser-ney', (o) => {
  if (typeof o.model !== 'string') throw new UserError('scorer.model: expected the path of a Kneser-Ney model file');
  return new KneserNeyScorer(KneserNeyLM.load(o.model));
});

/** Value at quantile q (0..1) of the numbers, by linear interpolation. */
export function quantile(values: number[], q: number): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Infinity;
  const pos = q * (v.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return v[lo]! + (v[hi]! - v[lo]!) * (pos - lo);
}

/** Stores the score as metadata[field] and drops documents on the wrong side of the threshold. */
export class ScoreFilter implements DocumentFilter {
  readonly name: string;
  constructor(
    private readonly scorer: DocumentScorer,
    private readonly threshold: number | null,
    private readonly field = scorer.name,
  ) {
    this.name = `score_${scorer.name}`;
  }

  apply(doc: Document): FilterResult {
    const s = this.scorer.score(doc.text);
    doc.metadata[this.field] = Number.isFinite(s) ? Math.round(s * 100) / 100 : null;
    if (this.threshold === null) return KEEP;
    const bad = this.scorer.lowerIsBetter ? !(s <= this.threshold) : !(s >= this.threshold);
    return bad ? drop(`${this.scorer.name}_${this.scorer.lowerIsBetter ? 'above' : 'below'}_threshold`, s) : KEEP;
  }
}
