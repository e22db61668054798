// Hybrid retrieval: fusing ranked lists from BM25 and the dense encoder. Reciprocal rank fusion (Cormack et al.
// 2009: Σ_lists 1/(k + rank), k = 60) needs no score calibration; interpolation mixes min–max normalised scores,
// α·bm25 + (1 − α)·dense, where a passage missing from one list gets that list's 0. Not a retriever itself.
import type { Hit } from './topk.js';

export const RRF_K = 60;

function ordered(m: Map<number, number>, k: number): Hit[] {
  return [...m].map(([index, score]) => ({ index, score })).sort((a, b) => b.score - a.score || a.index - b.index).slice(0, k);
}

/** Reciprocal rank fusion of ranked lists (rank 1 = first), the k best fused. */
export function rrf(lists: Hit[][], k: number, rrfK = RRF_K): Hit[] {
  const m = new Map<number, number>();
  for (const list of lists) list.forEach((h, r) => m.set(h.index, (m.get(h.index) ?? 0) + 1 / (rrfK + r + 1)));
  return ordered(m, k);
}

function minMax(list: Hit[]): Map<number, number> {
  const out = new Map<number, number>();
  if (list.length === 0) return out;
  let lo = Infinity;
  let hi = -Infinity;
  for (const h of list) {
    lo = Math.min(lo, h.score);
    hi = Math.max(hi, h.score);
  }
  for (const h of list) out.set(h.index, hi > lo ? (h.score - lo) / (hi - lo) : 1);
  return out;
}

/** α·norm(a) + (1 − α)·norm(b) over the union of both lists, the k best. */
export function interpolate(a: Hit[], b: Hit[], alpha: number, k: number): Hit[] {
  const na = minMax(a);
  const nb = minMax(b);
  const m = new Map<number, number>();
  for (const i of new Set([...na.keys(), ...nb.keys()])) m.set(i, alpha * (na.get(i) ?? 0) + (1 - alpha) * (nb.get(i) ?? 0));
  return ordered(m, k);
}
