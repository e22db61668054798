// Token-budget batching: a token file's documents (each ending at an end-of-text token) read as one stream in a
// per-epoch order — shuffled, or sorted / bucketed by a per-document difficulty score — and cut into rows with no
// padding: a row is T + 1 consecutive stream tokens (x its first T, y its last T) and the next row starts at the
// row's last token, so every token is a target exactly once per epoch. The stream's position and its RNG are its
// state, saved in checkpoints, so a resumed run reads the same rows. Not the random-window sampler (token-reader.ts).
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
  /** RNG state at the start of the current epoch (its order is drawn from it again on load) and the epoch. */
  epochRng: RngState;
  epoch: number;
  /** Position in the epoch's order, and the offset within that document. */
  pos: number;
  offset: number;
  /** The last token read: the first input of the next row. */
  carry: number;
}

/** A token file's documents as one stream in epoch order, cut into rows without padding. */
export class PackedStream {
  private rng: Rng;
  private order: Uint32Array;
  private s: PackedState;

  constructor(readonly file: TokenFile, readonly docs: Documents, readonly o: DocumentOrder, seed: number | PackedState) {
    if (typeof seed === 'number') {
      this.rng = new Rng(seed);
      const epochRng = this.rng.state();
      this.order = epochOrder(docs.count, o, this.rng);
      this.s = { epochRng, epoch: 0, pos: 0, offset: 0, carry: 0 };
      this.s.carry = this.readOne();
    } else {
      this.rng = new Rng(seed.epochRng);
      this.order = epochOrder(docs.count, o, this.rng);
      this.s = { ...seed };
    }
  }

  state(): PackedState {
    return { ...this.s, epochRng: [...this.s.epochRng] as RngState };
  }

  get epoch(): number {
    return this.s.epoch;
  }

  private readOne(): number {
    const out = new Int32Array(1);
    this.read(out, 0, 1);
    return out[0]!;
  }

  /** Copies the next n stream tokens into out[at, at + n), moving to the next document (and epoch) as needed. */
  private read(out: Int32Array, at: number, n: number): void {
    const ids = this.file.ids;
    while (n > 0) {
      if (this.s.pos >= this.order.length) {
        this.s.epoch++;
        this.s.pos = 0;
        this.s.epochRng = this.rng.state();
        this.order = epochOrder(this.docs.count, this.o, this.rng);
      }
      const d = this.order[this.s.pos]!;
      const start = this.docs.starts[d]! + this.s.offset;
      const take = Math.min(n, this.docs.starts[d + 1]! - start);
      for (let i = 0; i < take; i++) out[at + i] = ids[start + i]!;
      at += take;
      n -= take;
      this.s.offset += take;
      if (start + take >= this.docs.starts[d + 1]!) {
        this.s.pos++;
        this.s.offset = 0;
      }
    }
  }

  /** The next row of T inputs and T targets into x and y at row offset at. */
  nextRow(x: Int32Array, y: Int32Array, at: number, T: number): void {
    const row = new Int32Array(T + 1);
    row[0] = this.s.carry;
    this.read(row, 1, T);
    x.set(row.subarray(0, T), at);
    y.set(row.subarray(1, T + 1), at);
    this.s.carry = row[T]!;
  }
}
