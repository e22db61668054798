// The BPE merge loop over integer token ids: an open-addressing pair table and three merge strategies
// (array scan for short pieces, heap + linked list for long ones, and BPE-dropout). Not a tokenizer: no text here.

/** Maps a token pair (left, right) to a merge: its rank (lower merges first) and the resulting token id. */
export class PairTable {
  private keysLeft: Int32Array;
  private keysRight: Int32Array;
  private ranks: Int32Array;
  private results: Int32Array;
  private mask: number;
  size = 0;

  constructor(expected: number) {
    let capacity = 16;
    while (capacity < expected * 2) capacity *= 2;
    this.keysLeft = new Int32Array(capacity).fill(-1);
    this.keysRight = new Int32Array(capacity);
    this.ranks = new Int32Array(capacity);
    this.results = new Int32Array(capacity);
    this.mask = capacity - 1;
  }

  private slot(left: number, right: number): number {
    // Multiplicative hashing of both ids; Math.imul keeps it in 32-bit integer arithmetic.
    return (Math.imul(left, 0x9e3779b1) ^ Math.imul(right + 0x632be5ab, 0x85ebca77)) >>> 0;
  }

  /** Adds a merge unless the pair is already present (the first, lowest-ranked entry wins). */
  add(left: number, right: number, rank: number, result: number): void {
    if (this.size * 2 >= this.keysLeft.length) this.grow();
    let i = this.slot(left, right) & this.mask;
    while (this.keysLeft[i] !== -1) {
      if (this.keysLeft[i] === left && this.keysRight[i] === right) return;
      i = (i + 1) & this.mask;
    }
    this.keysLeft[i] = left;
    this.keysRight[i] = right;
    this.ranks[i] = rank;
    this.results[i] = result;
    this.size++;
  }

  /** Slot index of the pair, or -1. Read rank/result with rankAt/resultAt. */
  find(left: number, right: number): number {
    const keysLeft = this.keysLeft;
    let i = this.slot(left, right) & this.mask;
    for (;;) {
      const k = keysLeft[i] as number;
      if (k === -1) return -1;
      if (k === left && this.keysRight[i] === right) return i;
      i = (i + 1) & this.mask;
    }
  }

  /** Rank of the pair, or MAX when the pair never merges. */
  rank(left: number, right: number): number {
    const i = this.find(left, right);
    return i < 0 ? NO_MERGE : (this.ranks[i] as number);
  }

  resultAt(slot: number): number {
    return this.results[slot] as number;
  }

  rankAt(slot: number): number {
    return this.ranks[slot] as number;
  }

  private grow(): void {
    const oldLeft = this.keysLeft;
    const oldRight = this.keysRight;
    const oldRanks = this.ranks;
    const oldResults = this.results;
    const capacity = oldLeft.length * 2;
    this.keysLeft = new Int32Array(capacity).fill(-1);
    this.keysRight = new Int32Array(capacity);
    this.ranks = new Int32Array(capacity);
    this.results = new Int32Array(capacity);
    this.mask = capacity - 1;
    this.size = 0;
    for (let i = 0; i < oldLeft.length; i++) {
      const left = oldLeft[i] as number;
      if (left !== -1) this.add(left, oldRight[i] as number, oldRanks[i] as number, oldResults[i] as number);
    }
  }
}

export const NO_MERGE = 0x7fffffff;

/**
 * Merges `parts` (token ids, modified in place) and returns the new length. At each step the lowest-ranked adjacent
 * pair merges; among equal ranks the leftmost, as tiktoken does. O(n^2) but fastest for the short pieces of text.
 */
export function mergeShort(parts: Int32Array, length: number, table: PairTable, pairRanks: Int32Array): number {
  let n = length;
  for (let i = 0; i + 1 < n; i++) pairRanks[i] = table.rank(parts[i] as number, parts[i + 1] as number);
  while (n > 1) {
    let best = NO_MERGE;
    let at = -1;
    for (let i = 0; i + 1 < n; i++) {
      const r = pairRanks[i] as number;
      if (r < best) {
        best = r;
        at = i;
      }
    }
    if (at < 0) break;
    parts[at] = table.resultAt(table.find(parts[at] as number, parts[at + 1] as number));
    // Remove element at+1 and the pair rank that started there.
    for (let j = at + 1; j + 1 < n; j++) {
      parts[j] = parts[j + 1] as number;
      pairRanks[j] = pairRanks[j + 1] as number;
    }
    n--;
    if (at > 0) pairRanks[at - 1] = table.rank(parts[at - 1] as number, parts[at] as number);
    if (at + 1 < n) pairRanks[at] = table.rank(parts[at] as number, parts[at + 1] as number);
  }
  return n;
}

/**
 * Same result as mergeShort in O(n log n): a doubly linked list of parts and a binary heap of candidate pairs keyed
 * by (rank, position); stale heap entries are skipped by checking the pair is still the same.
 */
export function mergeLong(parts: Int32Array, length: number, table: PairTable): number {
  const n = length;
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  const alive = new Uint8Array(n).fill(1);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  // Heap entries: rank * n + position packed in a float64 (exact below 2^53).
  const heap: number[] = [];
  const push = (value: number): void => {
    heap.push(value);
    let i = heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((heap[p] as number) <= value) break;
      heap[i] = heap[p] as number;
      i = p;
    }
    heap[i] = value;
  };
  const pop = (): number => {
    const top = heap[0] as number;
    const last = heap.pop() as number;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= heap.length) break;
        const r = l + 1;
        const c = r < heap.length && (heap[r] as number) < (heap[l] as number) ? r : l;
        if ((heap[c] as number) >= last) break;
        heap[i] = heap[c] as number;
        i = c;
      }
      heap[i] = last;
    }
    return top;
  };
  const consider = (i: number): void => {
    const j = next[i] as number;
    if (j < 0) return;
    const r = table.rank(parts[i] as number, parts[j] as number);
    if (r !== NO_MERGE) push(r * n + i);
  };
  for (let i = 0; i + 1 < n; i++) consider(i);
  while (heap.length > 0) {
    const entry = pop();
    const i = entry % n;
    const rank = (entry - i) / n;
    const j = next[i] as number;
    if (!alive[i] || j < 0) continue;
    const slot = table.find(parts[i] as number, parts[j] as number);
    if (slot < 0 || table.rankAt(slot) !== rank) continue; // stale: the pair at i changed since it was pushed
    parts[i] = table.resultAt(slot);
    alive[j] = 0;
    const k = next[j] as number;
    next[i] = k;
    if (k >= 0) prev[k] = i;
    const p = prev[i] as number;
    if (p >= 0) consider(p);
    consider(i);
  }
  let m = 0;
  for (let i = 0; i >= 0 && i < n; i = next[i] as number) parts[m++] = parts[i] as number;
  return m;
}

/**
 * BPE-dropout (Provilkov et al. 2020): at every merge step each candidate pair is dropped with probability p and
 * the lowest-ranked surviving pair merges; the loop ends when every candidate was dropped. p = 0 is plain BPE.
 */
export function mergeDropout(parts: Int32Array, length: number, table: PairTable, p: number, random: () => number): number {
  let n = length;
  while (n > 1) {
    let best = NO_MERGE;
    let at = -1;
    for (let i = 0; i + 1 < n; i++) {
      const r = table.rank(parts[i] as number, parts[i + 1] as number);
      if (r === NO_MERGE || r >= best) continue;
      if (p > 0 && random() < p) continue;
      best = r;
      at = i;
    }
    if (at < 0) break;
    parts[at] = table.resultAt(table.find(parts[at] as number, parts[at + 1] as number));
    for (let j = at + 1; j + 1 < n; j++) parts[j] = parts[j + 1] as number;
    n--;
  }
  return n;
}
