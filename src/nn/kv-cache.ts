// The key/value cache of incremental decoding, with a length per row so that a batch of prompts of different
// lengths decodes together: row b holds its own positions [0, lengths[b]) and nothing else. A pass feeds T tokens
// to every row of which row b uses counts[b] (the rest is padding: never written, never seen). Not the generator
// (serve/generate.ts) and not attention itself (attention.ts).
import * as lm from '../core/index.js';
import type { Tensor } from '../core/index.js';

export interface KVCacheShape {
  layers: number;
  /** Rows (sequences) decoded together. */
  batch: number;
  heads: number;
  headDim: number;
  /** Positions each row can hold (the model's block_size). */
  capacity: number;
}

/** Where one forward pass over a cache writes and what each of its queries may see. */
export interface CachePlan {
  /** Positions held by each row before the pass. */
  starts: number[];
  /** New tokens of each row in this pass (≤ T; the rest of the row is padding). */
  counts: number[];
  /** Every row starts at the same position and uses all T tokens: plain causal attention, no mask. */
  uniform: boolean;
  /** Keys every query ranges over: max over rows of starts + T (uniform) or starts + counts. */
  keyLength: number;
  /** (B, T) int32 position of each token (padding clamped into the table), for ragged passes. */
  positions: Tensor | null;
  /** (B, 1, T, keyLength) additive mask, 0 where a query may look and −∞ elsewhere, for ragged passes. */
  mask: Tensor | null;
  /** The sliding window of the pass's local layers (0 = none): uniform passes give it to the kernel. */
  window: number;
  /** With a window, for ragged passes: `mask` that also hides keys ≤ position − window (local layers' mask). */
  windowMask: Tensor | null;
}

export class KVCache {
  /** Per layer: (B, H, capacity, D). */
  readonly k: Tensor[];
  readonly v: Tensor[];
  readonly lengths: number[];
  /** Int32 side arrays by layer and name: what sparse attention keeps per cached position (LSH buckets, clusters). */
  private readonly sides = new Map<string, Int32Array>();

  /** A zeroed cache, or (storage given) one over another cache's tensors: see rows(). */
  constructor(readonly shape: KVCacheShape, storage?: { k: Tensor[]; v: Tensor[] }) {
    const dims = [shape.batch, shape.heads, shape.capacity, shape.headDim];
    this.k = storage ? storage.k : Array.from({ length: shape.layers }, () => lm.keep(lm.zeros(dims)));
    this.v = storage ? storage.v : Array.from({ length: shape.layers }, () => lm.keep(lm.zeros(dims)));
    this.lengths = new Array<number>(shape.batch).fill(0);
  }

  /**
   * A cache over rows [0, n) of this one that shares its storage: a pass over it writes into these rows, so a
   * continuous batcher decodes only its live rows (kept at the front) without copying them out. Its lengths start
   * as a copy of these rows' and are the caller's to copy back; side arrays are not shared (sparse layers cannot
   * use a row view). Dispose it to release its views; the storage stays with this cache.
   */
  rows(n: number): KVCache {
    if (!(Number.isInteger(n) && n >= 1 && n <= this.batch)) throw new RangeError(`KVCache.rows: n = ${n}, expected 1..${this.batch}`);
    const cut = (t: Tensor): Tensor => lm.keep(lm.slice(t, 0, 0, n)); // (n, H, capacity, D), offset 0
    const view = new KVCache({ ...this.shape, batch: n }, { k: this.k.map(cut), v: this.v.map(cut) });
    for (let b = 0; b < n; b++) view.lengths[b] = this.lengths[b]!;
    return view;
  }

  /** Copies row `from` of `src` (its first src.lengths[from] positions, every layer) into row `to` of this cache. */
  copyRow(src: KVCache, from: number, to: number): void {
    const n = src.lengths[from]!;
    const { heads: H, capacity, headDim: D } = this.shape;
    if (src.shape.heads !== H || src.shape.headDim !== D || src.shape.layers !== this.shape.layers || n > capacity) {
      throw new RangeError('KVCache.copyRow: the caches have different shapes');
    }
    for (let l = 0; l < this.shape.layers; l++) {
      for (const [s, d] of [[src.k[l]!, this.k[l]!], [src.v[l]!, this.v[l]!]] as const) {
        for (let h = 0; h < H; h++) {
          const at = s.offset + from * s.strides[0]! + h * s.strides[1]!; // positions of a head are contiguous (D each)
          d.data.set(s.data.subarray(at, at + n * D), d.offset + to * d.strides[0]! + h * d.strides[1]!);
        }
      }
    }
    this.lengths[to] = n;
  }

  get batch(): number {
    return this.shape.batch;
  }

  /** The length shared by every row (single-sequence use); throws when the rows differ. */
  get length(): number {
    const n = this.lengths[0]!;
    if (this.lengths.some((l) => l !== n)) throw new Error(`KVCache: rows hold different lengths (${this.lengths.join(', ')}); read lengths[]`);
    return n;
  }

  /** Sets every row's length (0 empties the cache; a shorter length forgets the positions after it). */
  set length(n: number) {
    this.lengths.fill(n);
  }

  /**
   * Plans a pass of T tokens per row, counts[b] of them real (default all). Checks capacity. window (0 = none) is
   * the sliding window of the model's local layers: ragged passes then also get their banded mask.
   */
  plan(T: number, counts?: readonly number[], window = 0): CachePlan {
    const B = this.batch;
    if (!(Number.isInteger(window) && window >= 0)) throw new RangeError(`KVCache.plan: window must be an integer ≥ 0, got ${window}`);
    const starts = [...this.lengths];
    const n = counts ? [...counts] : new Array<number>(B).fill(T);
    if (n.length !== B || n.some((c) => !Number.isInteger(c) || c < 0 || c > T)) {
      throw new RangeError(`KVCache.plan: counts ${JSON.stringify(counts)} must be ${B} integers in [0, ${T}]`);
    }
    for (let b = 0; b < B; b++) {
      if (starts[b]! + n[b]! > this.shape.capacity) {
        throw new RangeError(`KVCache: row ${b} would hold ${starts[b]! + n[b]!} positions, more than the capacity ${this.shape.capacity} (block_size)`);
      }
    }
    const uniform = starts.every((s) => s === starts[0]) && n.every((c) => c === T) && starts[0]! + T <= this.shape.capacity;
    if (uniform) return { starts, counts: n, uniform, keyLength: starts[0]! + T, positions: null, mask: null, window, windowMask: null };
    const keyLength = Math.max(1, ...starts.map((s, b) => s + n[b]!));
    const positions = new Int32Array(B * T);
    const mask = new Float32Array(B * T * keyLength).fill(-Infinity);
    const band = window > 0 ? new Float32Array(B * T * keyLength).fill(-Infinity) : null;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        positions[b * T + t] = Math.min(starts[b]! + t, this.shape.capacity - 1);
        // Query t of row b sees keys [0, start + t] of its own row; a padding query sees what the row's last
        // real token sees (at least key 0, so no row of the softmax is empty). With a window w, the local layers'
        // query sees keys (start + t − w, start + t]: never empty either, as it always holds its last key.
        const visible = Math.min(Math.max(1, starts[b]! + Math.min(t, n[b]! - 1) + 1), keyLength);
        const row = (b * T + t) * keyLength;
        mask.fill(0, row, row + visible);
        band?.fill(0, row + Math.max(0, visible - window), row + visible);
      }
    }
    return {
      starts, counts: n, uniform, keyLength, positions: lm.fromArray(positions, [B, T]), mask: lm.fromArray(mask, [B, 1, T, keyLength]),
      window, windowMask: band ? lm.fromArray(band, [B, 1, T, keyLength]) : null,
    };
  }

  /** Writes a layer's new keys and values, (B, T, H, D) each, at each row's own positions. */
  write(layer: number, k: Tensor, v: Tensor, plan: CachePlan): void {
    const kern = lm.kernelsFor('float32');
    for (const [src, dst] of [[k, this.k[layer]!], [v, this.v[layer]!]] as const) {
      const perm = lm.permute(src, [0, 2, 1, 3]); // (B, H, T, D)
      if (plan.uniform) {
        kern.copyStrided({ data: perm.data, offset: perm.offset, strides: perm.strides }, { data: dst.data, offset: plan.starts[0]! * dst.strides[2]!, strides: dst.strides }, perm.shape);
        continue;
      }
      const [, H, , D] = perm.shape as [number, number, number, number];
      plan.counts.forEach((n, b) => {
        if (n === 0) return;
        kern.copyStrided(
          { data: perm.data, offset: perm.offset + b * perm.strides[0]!, strides: perm.strides.slice(1) },
          { data: dst.data, offset: b * dst.strides[0]! + plan.starts[b]! * dst.strides[2]!, strides: dst.strides.slice(1) },
          [H, n, D],
        );
      });
    }
  }

  /** Keys and values a pass attends over: (B, H, keyLength, D) views. */
  view(layer: number, plan: CachePlan): { k: Tensor; v: Tensor } {
    return { k: lm.slice(this.k[layer]!, 2, 0, plan.keyLength), v: lm.slice(this.v[layer]!, 2, 0, plan.keyLength) };
  }

  /**
   * The int32 side array `name` of a layer (zeroed on first use, `size` entries), e.g. the hash bucket of every
   * cached position of an LSH layer. Its layout is the caller's; entries past a row's length are stale.
   */
  side(layer: number, name: string, size: number): Int32Array {
    const key = `${layer}/${name}`;
    let a = this.sides.get(key);
    if (!a) this.sides.set(key, (a = new Int32Array(size)));
    if (a.length !== size) throw new RangeError(`KVCache.side: ${key} holds ${a.length} entries, asked for ${size}`);
    return a;
  }

  /** Moves every row past the tokens the pass wrote. */
  advance(plan: CachePlan): void {
    plan.counts.forEach((n, b) => (this.lengths[b] = plan.starts[b]! + n));
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v]) t.dispose();
  }
}
