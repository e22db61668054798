// Counterfactual data augmentation (Lu et al. 2018; Zmigrod et al. 2019): every gendered word of a text swapped for
// its counterpart (he ↔ she, his ↔ her, man ↔ woman, king ↔ queen, …), case preserved, so that a corpus says each
// thing about both groups. As a curation step it either adds the swapped copy beside each document (duplicate) or
// replaces a document by its swap with a probability (replace), seeded. Not a tokenizer; words are ASCII letter runs.
import { readFileSync } from 'node:fs';
import type { Document, DocumentTransform } from './document.js';
import { UserError } from '../util/errors.js';
import { mulberry32 } from '../util/mulberry32.js';

/**
 * Pairs of (male, female) words. The pronouns him, his, her and hers are not here: they are swapped by fixed rules
 * (swapGender): him → her, hers → his, "her" → "him" or "his" from the word after it (herCounterpart), and "his"
 * → "her" before a word and "hers" at the end of a phrase.
 */
export const DEFAULT_GENDER_PAIRS: readonly (readonly [string, string])[] = [
  ['he', 'she'], ['himself', 'herself'],
  ['man', 'woman'], ['men', 'women'], ['boy', 'girl'], ['boys', 'girls'], ['male', 'female'], ['males', 'females'],
  ['gentleman', 'lady'], ['gentlemen', 'ladies'], ['sir', 'madam'], ['mr', 'mrs'], ['lord', 'lady'],
  ['father', 'mother'], ['fathers', 'mothers'], ['dad', 'mom'], ['son', 'daughter'], ['sons', 'daughters'],
  ['brother', 'sister'], ['brothers', 'sisters'], ['husband', 'wife'], ['husbands', 'wives'],
  ['uncle', 'aunt'], ['uncles', 'aunts'], ['nephew', 'niece'], ['nephews', 'nieces'], ['grandfather', 'grandmother'],
  ['king', 'queen'], ['kings', 'queens'], ['prince', 'princess'], ['princes', 'princesses'], ['duke', 'duchess'],
  ['emperor', 'empress'], ['god', 'goddess'], ['monk', 'nun'], ['monks', 'nuns'], ['widower', 'widow'],
  ['bridegroom', 'bride'], ['actor', 'actress'], ['actors', 'actresses'], ['waiter', 'waitress'],
  ['masculine', 'feminine'], ['manhood', 'womanhood'], ['fraternity', 'sorority'],
];

/**
 * Words after which "her" is an object pronoun (→ "him"): prepositions, determiners, conjunctions, auxiliaries and
 * other words that do not start a noun phrase she owns. Anything else after "her" (a noun or adjective) makes it
 * possessive (→ "his"). A heuristic: "her" before an adjective used predicatively ("made her happy") comes out "his".
 */
const AFTER_OBJECT_HER = new Set([
  'a', 'an', 'the', 'this', 'that', 'these', 'those', 'to', 'and', 'or', 'but', 'nor', 'so', 'yet', 'for', 'of', 'in', 'on',
  'at', 'by', 'with', 'from', 'up', 'down', 'out', 'off', 'over', 'into', 'onto', 'about', 'as', 'if', 'when', 'while',
  'than', 'then', 'again', 'back', 'away', 'too', 'very', 'not', 'is', 'was', 'be', 'been', 'are', 'were', 'will',
  'would', 'should', 'could', 'can', 'may', 'might', 'must', 'shall', 'do', 'did', 'does', 'had', 'has', 'have', 'how',
  'what', 'who', 'why', 'where', 'which', 'some', 'any', 'no', 'all', 'one', 'i', 'you', 'he', 'she', 'we', 'they',
  'it', 'me', 'him', 'us', 'them', 'my', 'your', 'our', 'their', 'there', 'here', 'now', 'well', 'still', 'yesterday', 'today',
]);

/** The pronouns swapped by rule, not by the table. */
const PRONOUN_RULES = new Set(['him', 'his', 'her', 'hers']);

export interface SwapTable {
  /** lower-case word → lower-case counterpart, both directions. */
  readonly map: ReadonlyMap<string, string>;
}

/** A swap table from (male, female) pairs; a word listed twice is refused, naming where. */
export function swapTable(pairs: readonly (readonly [string, string])[] = DEFAULT_GENDER_PAIRS, source = 'gender pairs'): SwapTable {
  const map = new Map<string, string>();
  pairs.forEach(([a, b], i) => {
    const x = a.toLowerCase(), y = b.toLowerCase();
    if (!/^[a-z]+$/.test(x) || !/^[a-z]+$/.test(y)) throw new UserError(`${source}: pair ${i + 1} (${a}, ${b}): words must be ASCII letters`);
    if (PRONOUN_RULES.has(x) || PRONOUN_RULES.has(y)) throw new UserError(`${source}: pair ${i + 1} (${a}, ${b}): him, his, her and hers are swapped by built-in rules ("her" is resolved from context); leave them out of the list`);
    // A word that maps two ways (lady: gentleman and lord) keeps its first pair, so a swap is deterministic.
    if (!map.has(x)) map.set(x, y);
    if (!map.has(y)) map.set(y, x);
  });
  return { map };
}

/** Reads "male female" pairs, one per line; # comments and blank lines are skipped. */
export function readSwapPairs(path: string): [string, string][] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`${path}: cannot read the swap list (${(e as Error).message})`);
  }
  const out: [string, string][] = [];
  text.split('\n').forEach((line, i) => {
    const t = line.replace(/#.*/, '').trim();
    if (t === '') return;
    const words = t.split(/\s+/);
    if (words.length !== 2) throw new UserError(`${path}:${i + 1}: expected two words "male female", got ${JSON.stringify(t)}`);
    out.push([words[0]!, words[1]!]);
  });
  if (out.length === 0) throw new UserError(`${path}: no pairs`);
  return out;
}

/** `to` written in the case pattern of `from`: UPPER, Capitalized or lower. */
function matchCase(from: string, to: string): string {
  if (from.length > 1 && from === from.toUpperCase()) return to.toUpperCase();
  if (from[0] !== from[0]!.toLowerCase()) return to[0]!.toUpperCase() + to.slice(1);
  return to;
}

const WORD = /[A-Za-z]+/g;

/** "her" → "him" or "his" from the next word in the same clause (none, punctuation, or a function word: "him"). */
function herCounterpart(text: string, end: number): string {
  const rest = /^(\s*)([A-Za-z]+)?/.exec(text.slice(end, end + 40))!;
  const gap = rest[1]!;
  const next = rest[2];
  if (next === undefined || gap.includes('\n')) return 'him';
  return AFTER_OBJECT_HER.has(next.toLowerCase()) ? 'him' : 'his';
}

/** "his" → "hers" when no word follows it in the clause ("the book is his."), else "her". */
function hisCounterpart(text: string, end: number): string {
  const rest = /^[ \t]*([A-Za-z]+)?/.exec(text.slice(end, end + 40))!;
  return rest[1] === undefined ? 'hers' : 'her';
}

/** The text with every listed word swapped; also how many words changed. */
export function swapGender(text: string, table: SwapTable = swapTable()): { text: string; swaps: number } {
  let swaps = 0;
  const out = text.replace(WORD, (word: string, offset: number) => {
    const lower = word.toLowerCase();
    const end = offset + word.length;
    // A contraction's tail (he's, she'll) is part of the same word for swapping purposes; the letters after ' stay.
    if (offset > 0 && text[offset - 1] === "'" && /[A-Za-z]/.test(text[offset - 2] ?? '')) return word;
    let to: string | undefined;
    if (lower === 'her') to = herCounterpart(text, end);
    else if (lower === 'him') to = 'her';
    else if (lower === 'hers') to = 'his';
    else if (lower === 'his') to = hisCounterpart(text, end);
    else to = table.map.get(lower);
    if (to === undefined) return word;
    swaps++;
    return matchCase(word, to);
  });
  return { text: out, swaps };
}

export type CdaMode = 'duplicate' | 'replace';

export interface CdaConfig {
  /** duplicate: keep each document and add its swapped copy; replace: swap the document itself. */
  mode: CdaMode;
  /** Chance that a document is augmented (duplicate: gets a copy; replace: is swapped). */
  probability: number;
  seed: number;
  /** File of "male female" pairs; null = DEFAULT_GENDER_PAIRS. */
  pairsFile: string | null;
}

export const DEFAULT_CDA: CdaConfig = { mode: 'duplicate', probability: 1, seed: 1234, pairsFile: null };

/** FNV-1a of a document id: the decision for a document depends on (seed, id), not on the order documents arrive in. */
function idHash(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The augmentation as a pipeline step: documents in, one or two documents out each. */
export class CounterfactualAugmenter {
  readonly name = 'cda';
  readonly table: SwapTable;
  /** Documents seen, augmented (copy added or replaced), and words swapped. */
  readonly counts = { docs: 0, augmented: 0, swaps: 0 };

  constructor(readonly config: CdaConfig = DEFAULT_CDA) {
    if (!(config.probability >= 0 && config.probability <= 1)) throw new UserError(`cda.probability: expected a number in [0, 1], got ${config.probability}`);
    if (config.mode !== 'duplicate' && config.mode !== 'replace') throw new UserError(`cda.mode: expected duplicate or replace, got ${JSON.stringify(config.mode)}`);
    this.table = swapTable(config.pairsFile === null ? DEFAULT_GENDER_PAIRS : readSwapPairs(config.pairsFile), config.pairsFile ?? 'gender pairs');
  }

  /** Whether this document is augmented: a seeded draw per (seed, id). */
  private chosen(doc: Document): boolean {
    if (this.config.probability >= 1) return true;
    return mulberry32((this.config.seed ^ idHash(doc.id)) >>> 0)() < this.config.probability;
  }

  /** What the document becomes: itself, its swap, or both (the copy's id ends in #cda). Unchanged text adds no copy. */
  augment(doc: Document): Document[] {
    this.counts.docs++;
    if (!this.chosen(doc)) return [doc];
    const { text, swaps } = swapGender(doc.text, this.table);
    if (swaps === 0) return [doc];
    this.counts.augmented++;
    this.counts.swaps += swaps;
    const swapped: Document = { ...doc, text, metadata: { ...doc.metadata, cda: this.config.mode === 'duplicate' ? 'copy' : 'swapped' } };
    return this.config.mode === 'duplicate' ? [doc, { ...swapped, id: `${doc.id}#cda` }] : [swapped];
  }
}

/** A replace-mode augmenter as a one-document transform (for chains that cannot add documents). */
export function cdaTransform(config: Omit<CdaConfig, 'mode'>): DocumentTransform {
  const a = new CounterfactualAugmenter({ ...config, mode: 'replace' });
  return { name: 'cda', apply: (doc) => a.augment(doc)[0]! };
}

/** Augments plain text line by line (a line is a document, named by its number): the `lmforge cda` command's core. */
export function augmentLines(lines: readonly string[], augmenter: CounterfactualAugmenter): string[] {
  const out: string[] = [];
  lines.forEach((line, i) => {
    for (const d of augmenter.augment({ id: String(i + 1), text: line, metadata: {} })) out.push(d.text);
  });
  return out;
}
