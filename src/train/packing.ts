// Token-budget batching: a token file's documents (each ending at an end-of-text token) read as one stream in a
// per-epoch order — shuffled, or sorted / bucketed by a per-document difficulty score — and cut into chunks with no
// padding, every token a target exactly once per epoch; the chunks are read in a (windowed) shuffled order so each
// batch mixes documents. The epoch's RNG state and the chunk count are the stream's state, saved in checkpoints, so a
// resumed run reads the same rows. Not the random-window sampler (token-reader.ts).
import { readFileSync } from 'node:fs';
import { Rng, type RngState } from '../core/random.js';
import { UserError } from '../util/errors.js';
import type { TokenFile } from './token-reader.js';

/** Documents of a token file: document d is ids[starts[d], starts[d + 1]), its end-of-text token included. */
export interface Documents {
  starts: Float64Array;
  count: number;
}

/** Splits ids after every `eot` token; tokens after the last one form a final document. */
export function documentsOf(file: TokenFile, eot: number): Documents {
  const ids = file.ids;
  const starts: number[] = [0];
  for (let i = 0; i < ids.length; i++) if (ids[i] === eot && i + 1 < ids.length) starts.push(i + 1);
  starts.push(ids.length);
  return { starts: Float64Array.from(starts), count: starts.length - 1 };
}

/** How documents are ordered in each epoch. */
export interface DocumentOrder {
  /** random: a fresh shuffle per epoch; ascending / descending: by score (easy first = ascending for perplexity-like scores). */
  order: 'random' | 'ascending' | 'descending';
  /** One score per document (null with order random). */
  scores: Float64Array | null;
  /** 0: a strict sort by score; k > 0: k equal buckets by score, in order, each shuffled per epoch. */
  buckets: number;
}

/**
 * Per-document scores for difficulty ordering: `field` of each line of a JSONL file (one line per document of the
 * token file, in its order — what the curation step wrote), or with file null and field 'tokens', each document's length.
 */
export function readScores(file: string | null, field: string, docs: Documents, what: string): Float64Array {
  if (file === null) {
    if (field !== 'tokens') throw new UserError(`curriculum.score_file: needed for score_field ${JSON.stringify(field)} (or set curriculum.score_field=tokens to order by document length)`);
    return Float64Array.from({ length: docs.count }, (_, d) => docs.starts[d + 1]! - docs.starts[d]!);
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`curriculum.score_file: cannot read ${file}: ${(e as Error).message}`);
  }
  const lines = text.split('\n').filter((l, i, all) => l.trim() !== '' || i < all.length - 1);
  if (lines.length !== docs.count) throw new UserError(`${file}: ${lines.length} lines, but ${what} holds ${docs.count} documents (one score line per document, in order)`);
  const out = new Float64Array(docs.count);
  lines.forEach((line, i) => {
    let v: unknown;
    try {
      v = (JSON.parse(line) as Record<string, unknown>)[field];
    } catch {
      throw new UserError(`${file}:${i + 1}: not a JSON object`);
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new UserError(`${file}:${i + 1}: field ${JSON.stringify(field)} is ${JSON.stringify(v)}, expected a finite number`);
    out[i] = v;
  });
  return out;
}

/** The document order of one epoch, drawn with rng (which it advances). */
export function epochOrder(count: number, o: DocumentOrder, rng: Rng): Uint32Array {
  const idx = Uint32Array.from({ length: count }, (_, i) => i);
  const shuffle = (lo: number, hi: number): void => {
    for (let i = hi - 1; i > lo; i--) {
      const j = lo + rng.int(i - lo + 1);
      const t = idx[i]!;
      idx[i] = idx[j]!;
      idx[j] = t;
    }
  };
  if (o.order === 'random' || !o.scores) {
    shuffle(0, count);
    return idx;
  }
  const s = o.scores;
  const sign = o.order === 'ascending' ? 1 : -1;
  idx.sort((a, b) => sign * (s[a]! - s[b]!) || a - b);
  if (o.buckets > 0) {
    for (let k = 0; k < o.buckets; k++) shuffle(Math.floor((k * count) / o.buckets), Math.floor(((k + 1) * count) / o.buckets));
  }
  return idx;
}

export interface PackedState {
  /** RNG state at the start of the current epoch (its document and chunk orders are drawn from it again on load). */
  epochRng: RngState;
  epoch: number;
  /** Chunks of the epoch already read. */
  next: number;
}

/**
 * A token file's documents as one stream in epoch order, cut into chunks of `chunk` + 1 tokens (chunk c covers stream
 * positions [c·chunk, (c + 1)·chunk], so consecutive chunks share one token and every token but the first is a target
 * exactly once per epoch; the stream's last partial chunk is left out). The chunks are read in an order shuffled
 * within windows of `shuffleWindow` consecutive chunks (0 = the whole epoch), so a batch mixes documents from across
 * the corpus while a difficulty order still holds window by window. No padding anywhere.
 */
export class PackedStream {
  private rng: Rng;
  private docOrder!: Uint32Array;
  /** cum[k] = tokens of the first k documents in epoch order. */
  private cum!: Float64Array;
  private chunkOrder!: Uint32Array;
  private s: PackedState;

  constructor(readonly file: TokenFile, readonly docs: Documents, readonly o: DocumentOrder, readonly chunk: number, readonly shuffleWindow: number, seed: number | PackedState) {
    if (docs.starts[docs.count]! < chunk + 1) throw new UserError(`${file.path}: ${docs.starts[docs.count]} tokens is too few for one packed row of ${chunk} (need ${chunk + 1})`);
    if (typeof seed === 'number') {
      this.rng = new Rng(seed);
      this.s = { epochRng: this.rng.state(), epoch: 0, next: 0 };
    } else {
      this.rng = new Rng(seed.epochRng);
      this.s = { ...seed, epochRng: [...seed.epochRng] as RngState };
    }
    this.drawEpoch();
  }

  /** The epoch's document order, its stream offsets and its chunk order, drawn from rng. */
  private drawEpoch(): void {
    this.docOrder = epochOrder(this.docs.count, this.o, this.rng);
    this.cum = new Float64Array(this.docs.count + 1);
    for (let k = 0; k < this.docs.count; k++) {
      const d = this.docOrder[k]!;
      this.cum[k + 1] = this.cum[k]! + this.docs.starts[d + 1]! - this.docs.starts[d]!;
    }
    const n = Math.floor((this.cum[this.docs.count]! - 1) / this.chunk);
    const order = Uint32Array.from({ length: n }, (_, i) => i);
    const W = this.shuffleWindow > 0 ? this.shuffleWindow : n;
    for (let lo = 0; lo < n; lo += W) {
      const hi = Math.min(n, lo + W);
      for (let i = hi - 1; i > lo; i--) {
        const j = lo + this.rng.int(i - lo + 1);
        const t = order[i]!;
        order[i] = order[j]!;
        order[j] = t;
      }
    }
    this.chunkOrder = order;
  }

  state(): PackedState {
    return { ...this.s, epochRng: [...this.s.epochRng] as RngState };
  }

  get epoch(): number {
    return this.s.epoch;
  }

  /** Stream tokens [p, p + n) of this epoch into out[at, at + n). */
  private read(out: Int32Array, at: number, p: number, n: number): void {
    const ids = this.file.ids;
    // The document holding stream position p: the last k with cum[k] ≤ p.
    let lo = 0, hi = this.docs.count - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.cum[mid]! <= p) lo = mid;
      else hi = mid - 1;
    }
    for (let k = lo; n > 0; k++) {
      const d = this.docOrder[k]!;
      const start = this.docs.starts[d]! + (p - this.cum[k]!);
      const take = Math.min(n, this.cum[k + 1]! - p);
      for (let i = 0; i < take; i++) out[at + i] = ids[start + i]!;
      at += take;
      p += take;
      n -= take;
    }
  }

  /** The next chunk's chunk + 1 tokens into out at offset at, moving to the next epoch after its last chunk. */
  nextChunk(out: Int32Array, at = 0): void {
    if (this.s.next >= this.chunkOrder.length) {
      this.s.epoch++;
      this.s.next = 0;
      this.s.epochRng = this.rng.state();
      this.drawEpoch();
    }
    const c = this.chunkOrder[this.s.next++]!;
    this.read(out, at, c * this.chunk, this.chunk + 1);
  }
}
