// CheckList-style input perturbations (Ribeiro et al. 2020) for robustness evaluation: keyboard typos (swap, drop,
// insert or substitute a QWERTY neighbour), case flips, whitespace noise, Unicode homoglyphs and appended distractor
// sentences. Text in, text out, deterministic for (seed, text); not the harness hook (perturb-task.ts).
import { UserError } from '../util/errors.js';
import { mulberry32 } from '../util/mulberry32.js';

export type PerturbationKind = 'typo' | 'case' | 'whitespace' | 'homoglyph' | 'distractor';
export const PERTURBATION_KINDS: readonly PerturbationKind[] = ['typo', 'case', 'whitespace', 'homoglyph', 'distractor'];

/** Rate when a spec names a kind without one: per letter (typo, case, homoglyph), per space, or per text (distractor). */
export const DEFAULT_RATES: Readonly<Record<PerturbationKind, number>> = { typo: 0.05, case: 0.1, whitespace: 0.1, homoglyph: 0.02, distractor: 1 };

export interface Perturbation {
  kind: PerturbationKind;
  /** Probability per eligible unit (see DEFAULT_RATES for the unit of each kind). */
  rate: number;
}

/** Parses "typo:0.05,case:0.1,whitespace,homoglyph:0.02,distractor"; errors name the bad entry. */
export function parsePerturbSpec(spec: string, flag = '--perturb'): Perturbation[] {
  const out: Perturbation[] = [];
  const entries = spec.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (entries.length === 0) throw new UserError(`${flag}: empty (expected e.g. typo:0.05,case:0.1,whitespace,homoglyph:0.02,distractor)`);
  for (const entry of entries) {
    const [name, rateText, extra] = entry.split(':');
    if (extra !== undefined) throw new UserError(`${flag}: ${JSON.stringify(entry)}: expected kind or kind:rate`);
    const kind = name as PerturbationKind;
    if (!PERTURBATION_KINDS.includes(kind)) throw new UserError(`${flag}: unknown perturbation ${JSON.stringify(name)} (expected one of ${PERTURBATION_KINDS.join(', ')})`);
    if (out.some((p) => p.kind === kind)) throw new UserError(`${flag}: ${kind} given twice`);
    let rate = DEFAULT_RATES[kind];
    if (rateText !== undefined) {
      rate = Number(rateText);
      if (rateText.trim() === '' || !Number.isFinite(rate) || rate < 0 || rate > 1) throw new UserError(`${flag}: ${kind}:${rateText}: the rate must be a number in [0, 1]`);
    }
    out.push({ kind, rate });
  }
  return out;
}

/** The spec back in canonical form (every rate written), for reports. */
export function formatPerturbSpec(perturbations: readonly Perturbation[]): string {
  return perturbations.map((p) => `${p.kind}:${p.rate}`).join(',');
}

// QWERTY neighbours, lower case; each row sits half a key right of the one above, so the keys touching column c are
// c and c+1 above, c±1 beside, c−1 and c below. Typos keep the case of the letter they replace.
const KEYBOARD_ROWS = ['qwertyuiop', 'asdfghjkl', 'zxcvbnm'];
const NEIGHBOURS: Record<string, string> = (() => {
  const at = new Map<string, [number, number]>();
  KEYBOARD_ROWS.forEach((row, r) => [...row].forEach((ch, c) => at.set(ch, [r, c])));
  const out: Record<string, string> = {};
  for (const [ch, [r, c]] of at) {
    let n = '';
    for (const [other, [r2, c2]] of at) {
      const touches = r2 === r - 1 ? c2 === c || c2 === c + 1 : r2 === r ? Math.abs(c2 - c) === 1 : r2 === r + 1 ? c2 === c || c2 === c - 1 : false;
      if (touches) n += other;
    }
    out[ch] = n;
  }
  return out;
})();

/** Latin letters and a visually identical Cyrillic or Greek letter (Unicode confusables). */
export const HOMOGLYPHS: Readonly<Record<string, string>> = {
  a: 'а', c: 'с', e: 'е', i: 'і', j: 'ј', o: 'о', p: 'р', s: 'ѕ', x: 'х', y: 'у',
  A: 'А', B: 'В', C: 'С', E: 'Е', H: 'Н', I: 'І', K: 'К', M: 'М', O: 'О', P: 'Р', T: 'Т', X: 'Х', Y: 'Υ', Z: 'Ζ',
};

/** Sentences that are true or neutral and unrelated to any benchmark item, as CheckList's irrelevant additions. */
export const DISTRACTORS: readonly string[] = [
  'The weather was mild for the time of year.',
  'Many people enjoy a cup of tea in the afternoon.',
  'The library closes early on public holidays.',
  'Bicycles are a common sight in the city centre.',
  'Some rivers freeze over during a cold winter.',
  'The train was a few minutes late this morning.',
  'Fresh bread is sold at the market on Saturdays.',
  'A small bird was singing outside the window.',
];

const isAsciiLetter = (ch: string): boolean => (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');

function pick(s: string, random: () => number): string {
  return s[Math.floor(random() * s.length)]!;
}

function sameCase(like: string, ch: string): string {
  return like === like.toUpperCase() ? ch.toUpperCase() : ch;
}

/**
 * Keyboard typos: each ASCII letter, with probability `rate`, is swapped with the next letter, dropped, followed by an
 * inserted neighbour key or replaced by one (each of the four equally likely). A swapped pair is not touched again.
 */
export function typos(text: string, rate: number, random: () => number): string {
  const chars = [...text];
  let out = '';
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (!isAsciiLetter(ch) || random() >= rate) {
      out += ch;
      continue;
    }
    const near = NEIGHBOURS[ch.toLowerCase()]!;
    const op = Math.floor(random() * 4);
    const next = chars[i + 1];
    if (op === 0 && next !== undefined && isAsciiLetter(next) && next !== ch) {
      out += next + ch;
      i++;
    } else if (op === 1) {
      // drop
    } else if (op === 2) out += ch + sameCase(ch, pick(near, random));
    else out += sameCase(ch, pick(near, random)); // substitute (also the fallback of a swap with no letter after)
  }
  return out;
}

/** Each cased letter flips case with probability `rate`. */
export function caseFlips(text: string, rate: number, random: () => number): string {
  let out = '';
  for (const ch of text) {
    const up = ch.toUpperCase();
    const low = ch.toLowerCase();
    if (up === low || random() >= rate) out += ch;
    else out += ch === up ? low : up;
  }
  return out;
}

/**
 * Whitespace noise: each space, with probability `rate`, is removed (joining two words), doubled, or turned into a
 * newline or a tab (equally likely). Other whitespace is kept, so line structure the prompt relies on survives.
 */
export function whitespaceNoise(text: string, rate: number, random: () => number): string {
  let out = '';
  for (const ch of text) {
    if (ch !== ' ' || random() >= rate) {
      out += ch;
      continue;
    }
    out += ['', '  ', '\n', '\t'][Math.floor(random() * 4)]!;
  }
  return out;
}

/** Each letter that has a confusable look-alike becomes it with probability `rate`. */
export function homoglyphs(text: string, rate: number, random: () => number): string {
  let out = '';
  for (const ch of text) {
    const glyph = HOMOGLYPHS[ch];
    out += glyph !== undefined && random() < rate ? glyph : ch;
  }
  return out;
}

/** With probability `rate`, one distractor sentence appended after the text (with a space). */
export function distractor(text: string, rate: number, random: () => number): string {
  if (random() >= rate) return text;
  const sentence = DISTRACTORS[Math.floor(random() * DISTRACTORS.length)]!;
  const trimmed = text.trimEnd();
  return trimmed + (trimmed === '' ? '' : ' ') + sentence + text.slice(trimmed.length);
}

const APPLY: Readonly<Record<PerturbationKind, (text: string, rate: number, random: () => number) => string>> = {
  typo: typos,
  case: caseFlips,
  whitespace: whitespaceNoise,
  homoglyph: homoglyphs,
  distractor,
};

/** FNV-1a over the UTF-16 code units, mixed with the seed: the per-text stream does not depend on the order of texts. */
function textSeed(seed: number, key: string): number {
  let h = (0x811c9dc5 ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The random stream of (seed, key, text). */
export function textRandom(seed: number, key: string, text: string): () => number {
  return mulberry32(textSeed(seed, `${key}\u0000${text}`));
}

/**
 * Applies the perturbations in the order given. The random stream is seeded by (seed, key, text), so a text gets
 * the same perturbation wherever it appears in a run and across runs; `key` separates fields of one row.
 */
export function perturbText(text: string, perturbations: readonly Perturbation[], seed: number, key = ''): string {
  const random = textRandom(seed, key, text);
  let out = text;
  for (const p of perturbations) if (p.rate > 0) out = APPLY[p.kind](out, p.rate, random);
  return out;
}
