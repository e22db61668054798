// Top-k selection over scores with a binary min-heap (the reference for the native kernel's selection, and BM25's).
// Ties go to the lower index, so every backend returns the same order. Not a sort of all n scores: O(n log k).

export interface Hit {
  /** Row / document number in the searched collection. */
  index: number;
  score: number;
}

/** true when hit a ranks below hit b (lower score, or equal score and higher index). */
function worse(sa: number, ia: number, sb: number, ib: number): boolean {
  return sa < sb || (sa === sb && ia > ib);
}

/** A bounded heap that keeps the k best (score, index) pairs pushed into it. */
export class TopK {
  readonly k: number;
  private readonly s: Float64Array;
  private readonly i: Int32Array;
  private n = 0;

  constructor(k: number) {
    this.k = k;
    this.s = new Float64Array(Math.max(1, k));
    this.i = new Int32Array(Math.max(1, k));
  }

  /** The score a new entry must beat to enter (−∞ until the heap is full). */
  get threshold(): number {
    return this.n < this.k ? -Infinity : this.s[0]!;
  }

  push(index: number, score: number): void {
    if (this.k === 0 || Number.isNaN(score)) return;
    const { s, i } = this;
    if (this.n < this.k) {
      let c = this.n++;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (!worse(score, index, s[p]!, i[p]!)) break;
        s[c] = s[p]!;
        i[c] = i[p]!;
        c = p;
      }
      s[c] = score;
      i[c] = index;
      return;
    }
    if (!worse(s[0]!, i[0]!, score, index)) return;
    // Replace the root (the worst kept) and sift down.
    let c = 0;
    for (;;) {
      const l = 2 * c + 1;
      if (l >= this.n) break;
      const r = l + 1;
      const m = r < this.n && worse(s[r]!, i[r]!, s[l]!, i[l]!) ? r : l;
      if (!worse(s[m]!, i[m]!, score, index)) break;
      s[c] = s[m]!;
      i[c] = i[m]!;
      c = m;
    }
    s[c] = score;
    i[c] = index;
  }

  /** The kept entries, best first. */
  sorted(): Hit[] {
    const out: Hit[] = [];
    for (let j = 0; j < this.n; j++) out.push({ index: this.i[j]!, score: this.s[j]! });
    return out.sort((a, b) => b.score - a.score || a.index - b.index);
  }
}

/** The k best of `scores`, best first. */
export function topK(scores: ArrayLike<number>, k: number): Hit[] {
  const h = new TopK(k);
  for (let j = 0; j < scores.length; j++) h.push(j, scores[j]!);
  return h.sorted();
}
