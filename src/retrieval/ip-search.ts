// Exact maximum-inner-product search: the k passages whose vectors have the largest dot product with each query.
// The native kernel (native/src/retrieval.cc: AVX-512 register tiles + per-thread heaps) is used when the addon is
// built; the TypeScript loops here are the reference it is tested against and the fallback. Not an encoder and not
// an approximate index (at the corpus sizes measured here exact search is fast enough; see bench/retrieval.ts).
import { tryLoadAddon } from '../core/native/addon.js';
import { TopK } from './topk.js';

interface RetrievalAddon {
  ipTopK(P: Float32Array, N: number, D: number, Q: Float32Array, M: number, k: number, outIdx: Int32Array, outScore: Float32Array): void;
}

export interface TopKResult {
  /** (M, k) passage numbers, best first; −1 where there are fewer than k passages. */
  indices: Int32Array;
  /** (M, k) scores; −∞ where there are fewer than k passages. */
  scores: Float32Array;
}

function check(P: Float32Array, N: number, D: number, Q: Float32Array, M: number, k: number): void {
  if (P.length < N * D) throw new RangeError(`ipTopK: passages hold ${P.length} floats, N·D = ${N * D}`);
  if (Q.length < M * D) throw new RangeError(`ipTopK: queries hold ${Q.length} floats, M·D = ${M * D}`);
  if (!(Number.isInteger(k) && k >= 0)) throw new RangeError(`ipTopK: k must be a non-negative integer, got ${k}`);
}

/** The reference: one dot product per (query, passage) in float32 accumulation order d = 0..D−1, then a heap. */
export function ipTopKReference(P: Float32Array, N: number, D: number, Q: Float32Array, M: number, k: number): TopKResult {
  check(P, N, D, Q, M, k);
  const indices = new Int32Array(M * k).fill(-1);
  const scores = new Float32Array(M * k).fill(-Infinity);
  for (let m = 0; m < M; m++) {
    const h = new TopK(k);
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let d = 0; d < D; d++) acc = Math.fround(acc + Math.fround(P[n * D + d]! * Q[m * D + d]!));
      h.push(n, acc);
    }
    h.sorted().forEach((e, j) => {
      indices[m * k + j] = e.index;
      scores[m * k + j] = e.score;
    });
  }
  return { indices, scores };
}

let native: RetrievalAddon | null | undefined;

function nativeAddon(): RetrievalAddon | null {
  if (native === undefined) {
    const a = tryLoadAddon() as unknown as Partial<RetrievalAddon> | null;
    native = a && typeof a.ipTopK === 'function' ? (a as RetrievalAddon) : null;
  }
  return native;
}

/** Whether the native kernel is available (else ipTopK runs the reference). */
export function hasNativeIpTopK(): boolean {
  return nativeAddon() !== null;
}

/** P: (N, D) passage vectors, Q: (M, D) queries, both row-major; returns the k best passages per query. */
export function ipTopK(P: Float32Array, N: number, D: number, Q: Float32Array, M: number, k: number, backend: 'auto' | 'reference' = 'auto'): TopKResult {
  const a = backend === 'auto' ? nativeAddon() : null;
  if (!a) return ipTopKReference(P, N, D, Q, M, k);
  check(P, N, D, Q, M, k);
  const indices = new Int32Array(M * k);
  const scores = new Float32Array(M * k);
  a.ipTopK(P, N, D, Q, M, k, indices, scores);
  return { indices, scores };
}
