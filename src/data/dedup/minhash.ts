// MinHash signatures with datatrove's settings: word 5-grams of normalised text, 14 bands x 8 rows = 112 hashes,
// 64-bit values (each computed as two 32-bit lanes so it stays in fast integer arithmetic). Also the exact-dedup
// hash and the band keys that LSH buckets on. Pure functions; the sharded stages live in stages.ts.
import { createHash } from 'node:crypto';
import { normaliseForDedup } from '../text.js';

export interface MinHashConfig {
  ngram: number;
  bands: number;
  rows: number;
  seed: number;
}

export const DEFAULT_MINHASH: MinHashConfig = { ngram: 5, bands: 14, rows: 8, seed: 1 };

/** lowbias32 finaliser: a bijective 32-bit mix with full avalanche. */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

function splitmix32(seed: number, n: number): Uint32Array {
  const out = new Uint32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s + 0x9e3779b9) >>> 0;
    out[i] = mix32(s);
  }
  return out;
}

/** Two independent 32-bit string hashes (FNV-1a style with different offsets, then mixed). */
function hashWord(w: string, out: Uint32Array, i: number, out2: Uint32Array): void {
  let a = 0x811c9dc5;
  let b = 0x27d4eb2f;
  for (let j = 0; j < w.length; j++) {
    const c = w.charCodeAt(j);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x85ebca6b);
  }
  out[i] = mix32(a);
  out2[i] = mix32(b ^ 0x5bd1e995);
}

export class MinHasher {
  readonly numHashes: number;
  private readonly seedHi: Uint32Array;
  private readonly seedLo: Uint32Array;
  private readonly bandSeeds: Uint32Array;

  constructor(readonly config: MinHashConfig = DEFAULT_MINHASH) {
    this.numHashes = config.bands * config.rows;
    this.seedHi = splitmix32(config.seed * 2 + 1, this.numHashes);
    this.seedLo = splitmix32(config.seed * 2 + 2, this.numHashes);
    this.bandSeeds = splitmix32(config.seed * 2 + 3, 2 * config.bands);
  }

  /** Words of the normalised text (the unit of shingling). */
  words(text: string): string[] {
    const t = normaliseForDedup(text);
    return t === '' ? [] : t.split(' ');
  }

  /** 64-bit hashes (hi, lo lanes) of every word n-gram; a text shorter than n words is one shingle. */
  shingles(text: string): { hi: Uint32Array; lo: Uint32Array } {
    return this.shinglesOfNormalised(normaliseForDedup(text));
  }

  /** The same from text already passed through normaliseForDedup (saves a second normalisation). */
  shinglesOfNormalised(norm: string): { hi: Uint32Array; lo: Uint32Array } {
    const words = norm === '' ? [] : norm.split(' ');
    const W = words.length;
    const n = this.config.ngram;
    const wa = new Uint32Array(W);
    const wb = new Uint32Array(W);
    for (let i = 0; i < W; i++) hashWord(words[i]!, wa, i, wb);
    const S = W === 0 ? 0 : Math.max(W - n + 1, 1);
    const hi = new Uint32Array(S);
    const lo = new Uint32Array(S);
    for (let s = 0; s < S; s++) {
      let a = 0x9e3779b1;
      let b = 0x85ebca77;
      const end = Math.min(s + n, W);
      for (let j = s; j < end; j++) {
        a = Math.imul(a ^ wa[j]!, 0x01000193) + 0x7f4a7c15;
        b = Math.imul(b ^ wb[j]!, 0xc2b2ae35) + 0x165667b1;
      }
      hi[s] = mix32(a);
      lo[s] = mix32(b);
    }
    return { hi, lo };
  }

  /**
   * The signature: for each of the 112 hash functions h_k(x) = (mix(x_hi ^ a_k), mix(x_lo ^ b_k)) compared as one
   * 64-bit number, the minimum over the shingles. Layout: [hi_0, lo_0, hi_1, lo_1, ...].
   * An empty text gets all-ones (and is never bucketed; see bandKeys).
   */
  signature(text: string): Uint32Array {
    return this.signatureOfNormalised(normaliseForDedup(text));
  }

  signatureOfNormalised(norm: string): Uint32Array {
    const { hi, lo } = this.shinglesOfNormalised(norm);
    const K = this.numHashes;
    const sig = new Uint32Array(2 * K).fill(0xffffffff);
    const SA = this.seedHi;
    const SB = this.seedLo;
    for (let s = 0; s < hi.length; s++) {
      const x = hi[s]!;
      const y = lo[s]!;
      for (let k = 0; k < K; k++) {
        const h = mix32(x ^ SA[k]!);
        const cur = sig[2 * k]!;
        // The low lane is only needed when the high lane ties or wins, which is rare after the first few shingles.
        if (h < cur) {
          sig[2 * k] = h;
          sig[2 * k + 1] = mix32(y ^ SB[k]!);
        } else if (h === cur) {
          const l = mix32(y ^ SB[k]!);
          if (l < sig[2 * k + 1]!) sig[2 * k + 1] = l;
        }
      }
    }
    return sig;
  }

  /** One 64-bit key (two lanes) per band: a hash of that band's 8 rows. Returns [k0_b0, k1_b0, k0_b1, ...]. */
  bandKeys(sig: Uint32Array): Uint32Array {
    const { bands, rows } = this.config;
    const keys = new Uint32Array(2 * bands);
    for (let b = 0; b < bands; b++) {
      let a = this.bandSeeds[2 * b]!;
      let c = this.bandSeeds[2 * b + 1]!;
      for (let r = 0; r < rows; r++) {
        const k = b * rows + r;
        a = mix32(Math.imul(a ^ sig[2 * k]!, 0x01000193) ^ sig[2 * k + 1]!);
        c = mix32(Math.imul(c ^ sig[2 * k + 1]!, 0x85ebca6b) ^ sig[2 * k]!);
      }
      keys[2 * b] = a;
      keys[2 * b + 1] = c;
    }
    return keys;
  }
}

/** Fraction of equal 64-bit minhashes: an unbiased estimate of the Jaccard similarity of the shingle sets. */
export function estimatedJaccard(a: Uint32Array, b: Uint32Array): number {
  const K = a.length / 2;
  let eq = 0;
  for (let k = 0; k < K; k++) if (a[2 * k] === b[2 * k] && a[2 * k + 1] === b[2 * k + 1]) eq++;
  return eq / K;
}

/** 128-bit hash (four lanes) of the normalised text, for exact dedup. */
export function exactKey(text: string): Uint32Array {
  return exactKeyOfNormalised(normaliseForDedup(text));
}

export function exactKeyOfNormalised(norm: string): Uint32Array {
  const d = createHash('sha1').update(norm).digest();
  return new Uint32Array([d.readUInt32BE(0), d.readUInt32BE(4), d.readUInt32BE(8), d.readUInt32BE(12)]);
}

/** Probability that a pair with Jaccard s becomes an LSH candidate: 1 - (1 - s^r)^b. */
export function candidateProbability(s: number, bands = 14, rows = 8): number {
  return 1 - Math.pow(1 - Math.pow(s, rows), bands);
}
