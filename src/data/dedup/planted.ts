// Planted-duplicate generator for measuring dedup: copies of base documents with known word-level edit rates
// (substitutions, deletions, insertions), exact copies with only case/whitespace changes, and the true Jaccard of
// every planted pair's word 5-gram sets. Used by the benchmark and the tests; not part of a curation run.
import { MinHasher } from './minhash.js';

/** Applies word edits at `rate`: each edit is a substitution, deletion or insertion of a random vocabulary word. */
export function editWords(text: string, rate: number, vocab: string[], rand: () => number): string {
  const words = text.split(/\s+/).filter((w) => w !== '');
  const out: string[] = [];
  for (const w of words) {
    if (rand() >= rate) {
      out.push(w);
      continue;
    }
    const r = rand();
    if (r < 1 / 3) out.push(vocab[Math.floor(rand() * vocab.length)]!);
    else if (r < 2 / 3) continue;
    else out.push(w, vocab[Math.floor(rand() * vocab.length)]!);
  }
  return out.join(' ');
}

/** Case and whitespace changes only: identical after dedup normalisation. */
export function exactVariant(text: string, rand: () => number): string {
  const t = rand() < 0.5 ? text.toUpperCase() : text.toLowerCase();
  return t.replace(/ /g, () => (rand() < 0.1 ? '  ' : ' ')) + (rand() < 0.5 ? '\n' : '');
}

/** True Jaccard similarity of two texts' normalised word 5-gram sets (as strings, independent of hashing). */
export function trueJaccard(hasher: MinHasher, a: string, b: string): number {
  const grams = (t: string): Set<string> => {
    const w = hasher.words(t);
    const n = hasher.config.ngram;
    const s = new Set<string>();
    if (w.length === 0) return s;
    if (w.length < n) s.add(w.join(' '));
    for (let i = 0; i + n <= w.length; i++) s.add(w.slice(i, i + n).join(' '));
    return s;
  };
  const A = grams(a);
  const B = grams(b);
  let inter = 0;
  for (const g of A) if (B.has(g)) inter++;
  const union = A.size + B.size - inter;
  return union === 0 ? 1 : inter / union;
}
