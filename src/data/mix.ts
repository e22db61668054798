// Temperature-based source mixing: p_i ∝ w_i · n_i^(1/T), a per-source epoch cap with the excess handed to the
// other sources, optional quality weighting inside a source, and deterministic per-document sampling so every
// rank draws the same decisions. Plans and reports; reading and writing shards is the pipeline's job.
import { mix32 } from './dedup/minhash.js';
import { formatBytes } from './report.js';

export interface MixSourceConfig {
  weight: number;
  /** Cap on expected epochs for this source (overrides the global cap). */
  maxEpochs?: number;
}

export interface QualityWeighting {
  /** Metadata field with the document's score (e.g. ccnet_perplexity). */
  field: string;
  /** Document weight = score^(-alpha) when lower is better, score^alpha otherwise. */
  alpha: number;
  lowerIsBetter: boolean;
}

export interface MixConfig {
  temperature: number;
  unit: 'documents' | 'bytes';
  /** Size of the mixture in `unit`; null means the size of all sources together. */
  total: number | null;
  maxEpochs: number;
  sources: Record<string, MixSourceConfig>;
  quality: QualityWeighting | null;
  seed: number;
}

export const DEFAULT_MIX: MixConfig = { temperature: 1, unit: 'documents', total: null, maxEpochs: 4, sources: {}, quality: null, seed: 0 };

export interface PlanRow {
  source: string;
  available: number;
  share: number;
  target: number;
  epochs: number;
  capped: boolean;
}

/** Solves the plan: temperature shares, then water-filling so no source passes its epoch cap. */
export function planMix(available: Record<string, number>, c: MixConfig): PlanRow[] {
  if (!(c.temperature > 0)) throw new Error(`mix.temperature: expected a positive number, got ${c.temperature}`);
  const names = Object.keys(available).filter((s) => available[s]! > 0).sort();
  const total = c.total ?? names.reduce((a, s) => a + available[s]!, 0);
  const raw = new Map(names.map((s) => [s, (c.sources[s]?.weight ?? 1) * Math.pow(available[s]!, 1 / c.temperature)]));
  const cap = (s: string): number => (c.sources[s]?.maxEpochs ?? c.maxEpochs) * available[s]!;
  const target = new Map<string, number>();
  const capped = new Set<string>();
  let remaining = total;
  for (;;) {
    const free = names.filter((s) => !capped.has(s));
    const mass = free.reduce((a, s) => a + raw.get(s)!, 0);
    if (free.length === 0 || mass === 0) break;
    let newlyCapped = false;
    for (const s of free) {
      const t = (remaining * raw.get(s)!) / mass;
      if (t > cap(s)) {
        capped.add(s);
        target.set(s, cap(s));
        remaining -= cap(s);
        newlyCapped = true;
      }
    }
    if (!newlyCapped) {
      for (const s of free) target.set(s, (remaining * raw.get(s)!) / mass);
      break;
    }
  }
  const sum = names.reduce((a, s) => a + (target.get(s) ?? 0), 0);
  return names.map((s) => ({
    source: s,
    available: available[s]!,
    share: sum === 0 ? 0 : (target.get(s) ?? 0) / sum,
    target: target.get(s) ?? 0,
    epochs: (target.get(s) ?? 0) / available[s]!,
    capped: capped.has(s),
  }));
}

/** The plan as a table; unit 'tokens' for the trainer's mixing of token sources (train/curriculum.ts). */
export function formatPlan(rows: PlanRow[], unit: MixConfig['unit'] | 'tokens', temperature: number): string {
  const fmt = (n: number): string => (unit === 'bytes' ? formatBytes(Math.round(n)) : Math.round(n).toString());
  const head = ['source', `available (${unit})`, 'natural share', 'planned share', 'target', 'epochs'];
  const tot = rows.reduce((a, r) => a + r.available, 0);
  const body = rows.map((r) => [
    r.source,
    fmt(r.available),
    `${((100 * r.available) / tot).toFixed(1)}%`,
    `${(100 * r.share).toFixed(1)}%`,
    fmt(r.target),
    `${r.epochs.toFixed(2)}${r.capped ? ' (capped)' : ''}`,
  ]);
  const all = [head, ...body];
  const w = head.map((_, c) => Math.max(...all.map((r) => r[c]!.length)));
  return `mixing plan (temperature ${temperature}):\n` + all.map((r) => r.map((x, c) => (c === 0 ? x.padEnd(w[c]!) : x.padStart(w[c]!))).join('  ')).join('\n');
}

/** Uniform in [0, 1) from a document id and a seed (FNV-1a then mix), identical on every rank. */
export function idUniform(id: string, seed: number): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return mix32(h) / 4294967296;
}

/** Document weight for quality-weighted sampling (1 when no weighting is configured or the score is missing). */
export function qualityWeight(q: QualityWeighting | null, metadata: Record<string, unknown>): number {
  if (q === null) return 1;
  const v = metadata[q.field];
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) return 1;
  return Math.pow(v, q.lowerIsBetter ? -q.alpha : q.alpha);
}

/**
 * Copies of one document: its source's epochs times its relative quality weight (weight / source mean weight),
 * capped at the epoch cap; the fractional part is a deterministic coin flip on the id.
 */
export function copiesOf(id: string, epochs: number, relWeight: number, cap: number, seed: number): number {
  const r = Math.min(epochs * relWeight, cap);
  const whole = Math.floor(r);
  return whole + (idUniform(id, seed) < r - whole ? 1 : 0);
}
