// Template bias probes scored by model log-likelihood (WinoBias / May et al.-style slot templates, and CrowS-style
// sentence pairs), reported per category with percentile-bootstrap 95% intervals. The probe file (configs/bias/*.json)
// holds the templates, the two contrasted groups' words, the attribute terms (occupations) by category, each
// category's stereotyped group, and neutral baseline fillers. Not the corpus statistics (data/bias-stats.ts).
//
// The score, in nats. For attribute a (an occupation) and template t, with G₁, G₂ the contrasted groups:
//   d(a, t) = log p(t[a, G₁]) − log p(t[a, G₂])             (whole-sentence log-likelihood, after the start token)
//   b(a)    = mean_t [ d(a, t) − mean_n d(n, t) ]           (n over the neutral fillers: removes the model's
//                                                            attribute-free preference for one group's words)
//   s(a)    = +1 when a's category is stereotyped toward G₁, −1 toward G₂
//   stereotype_score = mean_a s(a)·b(a)                      (> 0: the model follows the stereotype; 0: no lean)
//   mean_abs_bias    = mean_a |b(a)|                         (lean either way)
// Intervals resample the attributes (1,000 seeded percentile-bootstrap draws). Pairs: d = log p(more) − log p(less),
// reported per category as the mean d and pct_stereotype (share of d > 0), as CrowS-Pairs does.
import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { mulberry32 } from '../util/mulberry32.js';
import type { LanguageModel } from './model.js';

export interface ProbeGroup {
  /** Slot name → this group's word, e.g. { pronoun: "he", possessive: "his", noun: "man" }. */
  slots: Record<string, string>;
}

export interface ProbePair {
  more: string;
  less: string;
  category: string;
}

export interface BiasProbe {
  name: string;
  /** The two contrasted groups, G₁ first: d = log p(G₁ variant) − log p(G₂ variant). */
  groups: [string, string];
  groupSlots: Record<string, Record<string, string>>;
  /** Templates with {attribute} and the group slots ({pronoun}, …). */
  templates: string[];
  /** The slot the attribute terms fill (default "occupation"). */
  attributeSlot: string;
  /** Category → attribute terms. */
  attributes: Record<string, string[]>;
  /** Category → the group it is stereotyped toward (or "none"). */
  stereotype: Record<string, string>;
  /** Neutral fillers of the attribute slot ("person"). */
  baseline: string[];
  pairs: ProbePair[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function strList(v: unknown, source: string, field: string): string[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string' && x.trim() !== '')) {
    throw new UserError(`${source}: field ${field} must be a non-empty array of non-empty strings, got ${JSON.stringify(v)}`);
  }
  return v as string[];
}

/** Validates a parsed probe file; every problem names the file and the field. */
export function parseBiasProbe(raw: unknown, source: string): BiasProbe {
  if (!isObj(raw)) throw new UserError(`${source}: expected a JSON object describing a bias probe`);
  const allowed = ['probe', 'notes', 'groups', 'templates', 'attribute_slot', 'attributes', 'stereotype', 'baseline', 'pairs'];
  for (const k of Object.keys(raw)) if (!allowed.includes(k)) throw new UserError(`${source}: unknown field ${k} (expected one of ${allowed.join(', ')})`);
  if (typeof raw.probe !== 'string') throw new UserError(`${source}: field probe must be the probe's name (a string)`);
  if (!isObj(raw.groups) || Object.keys(raw.groups).length !== 2) throw new UserError(`${source}: field groups must be an object of exactly two groups, each {slot: word}`);
  const groupSlots: Record<string, Record<string, string>> = {};
  for (const [g, slots] of Object.entries(raw.groups)) {
    if (!isObj(slots) || !Object.values(slots).every((w) => typeof w === 'string')) throw new UserError(`${source}: field groups.${g} must map slot names to words`);
    groupSlots[g] = slots as Record<string, string>;
  }
  const groups = Object.keys(groupSlots) as [string, string];
  const [k1, k2] = groups.map((g) => Object.keys(groupSlots[g]!).sort().join(','));
  if (k1 !== k2) throw new UserError(`${source}: groups.${groups[0]} and groups.${groups[1]} must fill the same slots (${k1} vs ${k2})`);
  const attributeSlot = raw.attribute_slot === undefined ? 'occupation' : String(raw.attribute_slot);
  const probe: BiasProbe = { name: raw.probe, groups, groupSlots, templates: [], attributeSlot, attributes: {}, stereotype: {}, baseline: [], pairs: [] };
  if (raw.templates !== undefined) {
    probe.templates = strList(raw.templates, source, 'templates');
    const known = new Set([attributeSlot, ...Object.keys(groupSlots[groups[0]]!)]);
    probe.templates.forEach((t, i) => {
      const slots = [...t.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
      for (const s of slots) if (!known.has(s)) throw new UserError(`${source}: templates[${i}] uses {${s}}, which is neither {${attributeSlot}} nor a group slot (${[...known].join(', ')})`);
      if (!slots.includes(attributeSlot) || !slots.some((s) => s !== attributeSlot)) throw new UserError(`${source}: templates[${i}] must use {${attributeSlot}} and at least one group slot`);
    });
    if (!isObj(raw.attributes)) throw new UserError(`${source}: field attributes must be an object of category → terms`);
    for (const [c, terms] of Object.entries(raw.attributes)) probe.attributes[c] = strList(terms, source, `attributes.${c}`);
    if (!isObj(raw.stereotype)) throw new UserError(`${source}: field stereotype must map each category of attributes to ${groups.join(', ')} or none`);
    for (const c of Object.keys(probe.attributes)) {
      const s = raw.stereotype[c];
      if (s !== 'none' && !groups.includes(s as string)) throw new UserError(`${source}: field stereotype.${c} must be ${groups.join(', ')} or none, got ${JSON.stringify(s)}`);
      probe.stereotype[c] = s as string;
    }
    probe.baseline = strList(raw.baseline, source, 'baseline');
  }
  if (raw.pairs !== undefined) {
    if (!Array.isArray(raw.pairs)) throw new UserError(`${source}: field pairs must be an array of {more, less, category}`);
    raw.pairs.forEach((p, i) => {
      if (!isObj(p) || typeof p.more !== 'string' || typeof p.less !== 'string' || typeof p.category !== 'string') throw new UserError(`${source}: pairs[${i}] must be {more, less, category} strings`);
      probe.pairs.push({ more: p.more, less: p.less, category: p.category });
    });
  }
  if (probe.templates.length === 0 && probe.pairs.length === 0) throw new UserError(`${source}: the probe has neither templates nor pairs`);
  return probe;
}

export function loadBiasProbe(path: string): BiasProbe {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: cannot read the bias probe (${(e as Error).message})`);
  }
  return parseBiasProbe(raw, path);
}

/** A template with its slots filled; a filled word at the start of the sentence is capitalized. */
export function fillTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_, slot: string, offset: number) => {
    const v = values[slot]!;
    return offset === 0 ? v[0]!.toUpperCase() + v.slice(1) : v;
  });
}

/** The (G₁, G₂) sentences of a template for one filler of the attribute slot. */
export function sentencePair(probe: BiasProbe, template: string, attribute: string): [string, string] {
  const [g1, g2] = probe.groups;
  const fill = (g: string): string => fillTemplate(template, { ...probe.groupSlots[g]!, [probe.attributeSlot]: attribute });
  return [fill(g1), fill(g2)];
}

export interface Interval {
  value: number;
  lo: number;
  hi: number;
}

/** Percentile bootstrap 95% interval of statistic over resamples of items (seeded; iters draws). */
export function bootstrapInterval<T>(items: readonly T[], statistic: (sample: readonly T[]) => number, iters = 1000, seed = 1234): Interval {
  const value = statistic(items);
  if (items.length < 2) return { value, lo: NaN, hi: NaN };
  const next = mulberry32(seed);
  const stats: number[] = [];
  for (let k = 0; k < iters; k++) stats.push(statistic(Array.from({ length: items.length }, () => items[Math.floor(next() * items.length)]!)));
  stats.sort((a, b) => a - b);
  const at = (q: number): number => stats[Math.min(iters - 1, Math.max(0, Math.round(q * (iters - 1))))]!;
  return { value, lo: at(0.025), hi: at(0.975) };
}

const meanOf = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

export interface AttributeScore {
  attribute: string;
  category: string;
  /** +1 / −1 / 0: the category's stereotyped group is G₁ / G₂ / none. */
  sign: number;
  /** b(a) in nats. */
  bias: number;
}

export interface ProbeResult {
  probe: string;
  groups: [string, string];
  /** mean_a s(a)·b(a), with its interval (over stereotyped attributes). */
  stereotype_score: Interval | null;
  /** mean_a |b(a)|. */
  mean_abs_bias: Interval | null;
  /** d of the neutral fillers per template (the attribute-free lean toward G₁). */
  baseline_lean: number | null;
  /** Per category: mean b(a) with its interval, and the count. */
  categories: Record<string, Interval & { n: number; stereotype: string }>;
  attributes: AttributeScore[];
  /** Per pair category: mean d and pct_stereotype, with intervals. */
  pairs: Record<string, { n: number; likelihood_diff: Interval; pct_stereotype: Interval }>;
  /** Over every pair (null without pairs). */
  pairsOverall: { n: number; likelihood_diff: Interval; pct_stereotype: Interval } | null;
  sentences: number;
}

/** Scores a probe with a model: every sentence once, in batches of one template's variants. */
export function scoreBiasProbe(probe: BiasProbe, model: LanguageModel, options: { seed?: number; onProgress?: (done: number, total: number) => void } = {}): ProbeResult {
  const seed = options.seed ?? 1234;
  const attrs = Object.entries(probe.attributes).flatMap(([category, terms]) => terms.map((attribute) => ({ attribute, category })));
  const total = (attrs.length + probe.baseline.length) * probe.templates.length + probe.pairs.length;
  let done = 0;
  const diff = (template: string, attribute: string): number => {
    const [s1, s2] = sentencePair(probe, template, attribute);
    const [r1, r2] = model.loglikelihood([{ context: '', continuation: s1 }, { context: '', continuation: s2 }]);
    options.onProgress?.(++done, total);
    return r1!.logprob - r2!.logprob;
  };
  const result: ProbeResult = { probe: probe.name, groups: probe.groups, stereotype_score: null, mean_abs_bias: null, baseline_lean: null, categories: {}, attributes: [], pairs: {}, pairsOverall: null, sentences: 0 };
  if (probe.templates.length > 0) {
    const neutral = probe.templates.map((t) => meanOf(probe.baseline.map((n) => diff(t, n))));
    result.baseline_lean = meanOf(neutral);
    for (const { attribute, category } of attrs) {
      const bias = meanOf(probe.templates.map((t, i) => diff(t, attribute) - neutral[i]!));
      const s = probe.stereotype[category]!;
      result.attributes.push({ attribute, category, sign: s === probe.groups[0] ? 1 : s === probe.groups[1] ? -1 : 0, bias });
    }
    const signed = result.attributes.filter((a) => a.sign !== 0);
    if (signed.length > 0) result.stereotype_score = bootstrapInterval(signed, (xs) => meanOf(xs.map((a) => a.sign * a.bias)), 1000, seed);
    result.mean_abs_bias = bootstrapInterval(result.attributes, (xs) => meanOf(xs.map((a) => Math.abs(a.bias))), 1000, seed);
    for (const category of Object.keys(probe.attributes)) {
      const items = result.attributes.filter((a) => a.category === category).map((a) => a.bias);
      result.categories[category] = { ...bootstrapInterval(items, meanOf, 1000, seed), n: items.length, stereotype: probe.stereotype[category]! };
    }
    result.sentences += 2 * (attrs.length + probe.baseline.length) * probe.templates.length;
  }
  const byCategory = new Map<string, number[]>();
  for (const p of probe.pairs) {
    const [m, l] = model.loglikelihood([{ context: '', continuation: p.more }, { context: '', continuation: p.less }]);
    options.onProgress?.(++done, total);
    byCategory.set(p.category, [...(byCategory.get(p.category) ?? []), m!.logprob - l!.logprob]);
  }
  const pairStats = (ds: readonly number[]): { n: number; likelihood_diff: Interval; pct_stereotype: Interval } => ({
    n: ds.length,
    likelihood_diff: bootstrapInterval(ds, meanOf, 1000, seed),
    pct_stereotype: bootstrapInterval(ds, (xs) => meanOf(xs.map((d) => (d > 0 ? 1 : 0))), 1000, seed),
  });
  for (const [category, ds] of [...byCategory].sort(([a], [b]) => a.localeCompare(b))) result.pairs[category] = pairStats(ds);
  if (byCategory.size > 0) result.pairsOverall = pairStats([...byCategory.values()].flat());
  result.sentences += 2 * probe.pairs.length;
  return result;
}

/** The interval as "value [lo, hi]". */
export function formatInterval(i: Interval, digits = 3): string {
  return `${i.value.toFixed(digits)} [${i.lo.toFixed(digits)}, ${i.hi.toFixed(digits)}]`;
}
