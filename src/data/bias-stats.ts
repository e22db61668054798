// Co-occurrence of group terms (he/his/him vs she/her) with attribute terms (occupations) in a corpus: the data side
// of a bias probe, as a curation report. Counts are per sentence (a run of text ended by . ! ? ; or a blank line):
// n(a, g) = sentences holding attribute a and some word of group g. From them, per attribute:
//   P(g | a)   = n(a, g) / Σ_g' n(a, g')                     (the conditional rate among sentences naming a group)
//   PMI(a, g)  = log [ n(a, g) · N / (n(a) · n(g)) ]         (N sentences; null when n(a, g) = 0)
//   lean(a)    = log[(n(a, G₁) + ½) / (n(a, G₂) + ½)] − log[n(G₁) / n(G₂)]
//                                                           (the attribute's G₁ : G₂ odds against the corpus's own)
//   stereotype_lean = mean_a s(a)·lean(a), s = +1 / −1 for attributes stereotyped toward G₁ / G₂ (attributes seen
//                     with some group word)
// — the corpus counterpart of the model probe's stereotype_score (eval/bias-probe.ts). Not a tokenizer: words are
// ASCII letter runs, compared lower-cased.

export interface CooccurrenceSpec {
  /** Exactly two groups: name → words (lower-case). */
  groups: Record<string, readonly string[]>;
  /** Category → attribute terms (one word each, lower-case). */
  attributes: Record<string, readonly string[]>;
  /** Category → stereotyped group (or "none"). */
  stereotype: Record<string, string>;
}

export interface AttributeStats {
  attribute: string;
  category: string;
  /** Sentences holding the attribute. */
  n: number;
  /** Per group: sentences holding the attribute and a group word. */
  with: Record<string, number>;
  rate: Record<string, number | null>;
  pmi: Record<string, number | null>;
  /** null when no sentence holds the attribute with a group word. */
  lean: number | null;
}

export interface CooccurrenceReport {
  sentences: number;
  words: number;
  groups: string[];
  /** Per group: sentences holding one of its words, and its words' occurrences. */
  groupSentences: Record<string, number>;
  groupWords: Record<string, number>;
  attributes: AttributeStats[];
  /** Per category: sentences with the attribute and each group, pooled, and the pooled rate of the first group. */
  categories: Record<string, { n: number; with: Record<string, number>; rate: number | null; stereotype: string }>;
  stereotype_lean: number | null;
}

/** Accumulates counts over any number of texts (a corpus streamed document by document). */
export class CooccurrenceCounter {
  private readonly groupOf = new Map<string, string>();
  private readonly attrOf = new Map<string, string>();
  private readonly groupNames: string[];
  private sentences = 0;
  private words = 0;
  private readonly groupSentences: Record<string, number> = {};
  private readonly groupWords: Record<string, number> = {};
  private readonly attrN = new Map<string, number>();
  private readonly pairN = new Map<string, number>();

  constructor(readonly spec: CooccurrenceSpec) {
    this.groupNames = Object.keys(spec.groups);
    if (this.groupNames.length !== 2) throw new RangeError(`co-occurrence: expected two groups, got ${this.groupNames.length}`);
    for (const g of this.groupNames) {
      this.groupSentences[g] = 0;
      this.groupWords[g] = 0;
      for (const w of spec.groups[g]!) this.groupOf.set(w.toLowerCase(), g);
    }
    for (const terms of Object.values(spec.attributes)) for (const a of terms) this.attrOf.set(a.toLowerCase(), a);
  }

  add(text: string): void {
    for (const sentence of text.split(/[.!?;]+|\n\s*\n/)) {
      const words = sentence.match(/[A-Za-z]+/g);
      if (!words) continue;
      this.sentences++;
      this.words += words.length;
      const groups = new Set<string>();
      const attrs = new Set<string>();
      for (const w of words) {
        const lower = w.toLowerCase();
        const g = this.groupOf.get(lower);
        if (g !== undefined) {
          groups.add(g);
          this.groupWords[g]!++;
        }
        const a = this.attrOf.get(lower);
        if (a !== undefined) attrs.add(a);
      }
      for (const g of groups) this.groupSentences[g]!++;
      for (const a of attrs) {
        this.attrN.set(a, (this.attrN.get(a) ?? 0) + 1);
        for (const g of groups) this.pairN.set(`${a}\u0000${g}`, (this.pairN.get(`${a}\u0000${g}`) ?? 0) + 1);
      }
    }
  }

  report(): CooccurrenceReport {
    const [g1, g2] = this.groupNames as [string, string];
    const N = this.sentences;
    const corpusOdds = Math.log(Math.max(this.groupSentences[g1]!, 0.5) / Math.max(this.groupSentences[g2]!, 0.5));
    const attributes: AttributeStats[] = [];
    const categories: CooccurrenceReport['categories'] = {};
    for (const [category, terms] of Object.entries(this.spec.attributes)) {
      const pooled: Record<string, number> = { [g1]: 0, [g2]: 0 };
      let catN = 0;
      for (const attribute of terms) {
        const n = this.attrN.get(attribute) ?? 0;
        const withG: Record<string, number> = {};
        const rate: Record<string, number | null> = {};
        const pmi: Record<string, number | null> = {};
        for (const g of this.groupNames) withG[g] = this.pairN.get(`${attribute}\u0000${g}`) ?? 0;
        const named = withG[g1]! + withG[g2]!;
        for (const g of this.groupNames) {
          rate[g] = named === 0 ? null : withG[g]! / named;
          pmi[g] = withG[g] === 0 ? null : Math.log((withG[g]! * N) / (n * this.groupSentences[g]!));
          pooled[g]! += withG[g]!;
        }
        catN += n;
        attributes.push({ attribute, category, n, with: withG, rate, pmi, lean: named === 0 ? null : Math.log((withG[g1]! + 0.5) / (withG[g2]! + 0.5)) - corpusOdds });
      }
      const named = pooled[g1]! + pooled[g2]!;
      categories[category] = { n: catN, with: pooled, rate: named === 0 ? null : pooled[g1]! / named, stereotype: this.spec.stereotype[category] ?? 'none' };
    }
    const signed = attributes.map((a) => ({ a, s: this.spec.stereotype[a.category] === g1 ? 1 : this.spec.stereotype[a.category] === g2 ? -1 : 0 })).filter((x) => x.s !== 0 && x.a.lean !== null);
    return {
      sentences: N, words: this.words, groups: [g1, g2], groupSentences: { ...this.groupSentences }, groupWords: { ...this.groupWords }, attributes, categories,
      stereotype_lean: signed.length === 0 ? null : signed.reduce((t, x) => t + x.s * x.a.lean!, 0) / signed.length,
    };
  }
}

/** The report as a text table: per category, then per attribute (counts, the first group's rate, PMI, lean). */
export function formatCooccurrence(r: CooccurrenceReport): string {
  const [g1, g2] = r.groups as [string, string];
  const pct = (x: number | null): string => (x === null ? '—' : `${(100 * x).toFixed(1)}%`);
  const num = (x: number | null): string => (x === null ? '—' : x.toFixed(2));
  const lines = [
    `${r.sentences} sentences, ${r.words} words; sentences with ${g1} words ${r.groupSentences[g1]}, with ${g2} words ${r.groupSentences[g2]}`,
    `| category | stereotype | sentences | with ${g1} | with ${g2} | P(${g1} | category) |`,
    '| --- | --- | ---: | ---: | ---: | ---: |',
  ];
  for (const [c, v] of Object.entries(r.categories)) lines.push(`| ${c} | ${v.stereotype} | ${v.n} | ${v.with[g1]} | ${v.with[g2]} | ${pct(v.rate)} |`);
  lines.push('', `| attribute | category | sentences | with ${g1} | with ${g2} | P(${g1} | a) | PMI(a, ${g1}) | PMI(a, ${g2}) | lean |`, '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const a of r.attributes) lines.push(`| ${a.attribute} | ${a.category} | ${a.n} | ${a.with[g1]} | ${a.with[g2]} | ${pct(a.rate[g1]!)} | ${num(a.pmi[g1]!)} | ${num(a.pmi[g2]!)} | ${num(a.lean)} |`);
  lines.push('', `stereotype_lean (mean over stereotyped attributes of ±lean, nats): ${r.stereotype_lean === null ? '—' : r.stereotype_lean.toFixed(3)}`);
  return lines.join('\n');
}
