// Continuous batching: sequences join and leave one running batch between decode steps. The live rows sit at the
// front of one batched KV cache (slot i = row i; a finished row's slot is refilled by the last row, so a step
// decodes exactly the live rows through a row view of the cache). A joining sequence is prefilled in its own ragged
// pass (over a second cache's row view, so the decoding rows pay no padding for its prompt) and copied into its slot.
// Each step returns the tokens it chose; the caller (serve/worker.ts) streams them. Same per-row semantics as
// generate.ts (own seeded RNG, processors in order, stop tokens and strings, the context slide at block_size), but a
// separate loop: generate.ts's batch is fixed, this one changes every step. Not the HTTP layer, not the thread.
import * as lm from '../core/index.js';
import { Rng } from '../core/index.js';
import type { GPT } from '../models/gpt.js';
import type { KVCache } from '../nn/kv-cache.js';
import { greedyWithLogprob, sampleWithLogprob, type LogitsProcessor } from './logits.js';

export type FinishReason = 'length' | 'stop' | 'context' | 'cancelled';

export interface SequenceRequest {
  /** The caller's id, echoed in every event. */
  id: string;
  /** Prompt ids (at least one; only the last block_size are fed). */
  prompt: readonly number[];
  maxNewTokens: number;
  greedy: boolean;
  processors?: readonly LogitsProcessor[];
  /** The row draws from Rng(seed). */
  seed: number;
  stopTokens?: readonly number[];
  /** Stop once the decoded continuation contains one of these (decode is the batcher's). */
  stopStrings?: readonly string[];
  onFull?: 'slide' | 'stop';
}

export interface TokenEvent {
  id: string;
  /** The chosen token (absent when the event only finishes a row: cancelled, or context full before a token). */
  token?: number;
  logprob?: number;
  /** Set on the row's last event. */
  finish?: FinishReason;
}

interface Row {
  req: SequenceRequest;
  rng: Rng;
  stops: Set<number>;
  /** Prompt and generated tokens. */
  tokens: number[];
  generated: number[];
  /** Tokens to feed next: the prompt (or a slid window) before its prefill, then the last chosen token. */
  feed: number[];
  /** Whether feed starts a fresh context (prefill from position 0). */
  fresh: boolean;
  cancelled: boolean;
}

export interface BatcherOptions {
  /** Rows decoded together at most (the KV cache's batch). */
  slots: number;
  /** Turns generated ids into text, for stop strings. */
  decode?: (ids: readonly number[]) => string;
}

export class ContinuousBatcher {
  private readonly cache: KVCache;
  /** The prefill pass's cache: rows [0, joining) are used each time. */
  private readonly prefillCache: KVCache;
  private readonly rows: Row[] = [];
  private readonly waiting: Row[] = [];
  private readonly finished: TokenEvent[] = [];
  private readonly block: number;
  private readonly V: number;

  constructor(private readonly model: GPT, private readonly options: BatcherOptions) {
    if (!(Number.isInteger(options.slots) && options.slots >= 1)) throw new RangeError(`ContinuousBatcher: slots = ${options.slots}, expected an integer ≥ 1`);
    if (model.config.attention !== 'dense') throw new RangeError(`ContinuousBatcher: models with '${model.config.attention}' attention keep per-row side arrays that a row view cannot share; serve dense-attention models`);
    model.eval();
    this.block = model.config.block_size;
    this.V = model.config.vocab_size;
    this.cache = model.newCache(options.slots);
    this.prefillCache = model.newCache(options.slots);
  }

  /** Rows decoding now. */
  get running(): number {
    return this.rows.length;
  }

  /** Sequences waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Whether step() has anything to do. */
  get busy(): boolean {
    return this.rows.length + this.waiting.length + this.finished.length > 0;
  }

  /** Queues a sequence; it joins the batch at the next step with a free slot. */
  add(req: SequenceRequest): void {
    if (req.prompt.length === 0) throw new RangeError(`sequence ${req.id}: empty prompt (it must hold at least one token)`);
    const row: Row = {
      req, rng: new Rng(req.seed), stops: new Set(req.stopTokens ?? []), tokens: [...req.prompt], generated: [],
      feed: req.prompt.slice(-this.block), fresh: true, cancelled: false,
    };
    if (req.maxNewTokens <= 0) this.finished.push({ id: req.id, finish: 'length' });
    else this.waiting.push(row);
  }

  /** Ends a sequence at the next step (its last event says 'cancelled'). Returns whether it was known. */
  cancel(id: string): boolean {
    const w = this.waiting.findIndex((r) => r.req.id === id);
    if (w >= 0) {
      this.waiting.splice(w, 1);
      this.finished.push({ id, finish: 'cancelled' });
      return true;
    }
    const row = this.rows.find((r) => r.req.id === id);
    if (row) row.cancelled = true;
    return row !== undefined;
  }

  /**
   * One step: cancelled rows leave; waiting sequences take free slots and are prefilled (their first token);
   * rows whose context is full slide (re-prefill of their last half block) or stop; then one decode pass gives
   * every other live row its next token. Returns the step's events in order.
   */
  step(): TokenEvent[] {
    const events: TokenEvent[] = this.finished.splice(0);
    for (let i = this.rows.length - 1; i >= 0; i--) {
      if (this.rows[i]!.cancelled) {
        events.push({ id: this.rows[i]!.req.id, finish: 'cancelled' });
        this.remove(i);
      }
    }
    while (this.rows.length < this.options.slots && this.waiting.length > 0) {
      const row = this.waiting.shift()!;
      this.rows.push(row);
      this.cache.lengths[this.rows.length - 1] = 0;
    }
    // Rows that cannot take another position: slide (fresh context from the last half block) or stop.
    for (let i = this.rows.length - 1; i >= 0; i--) {
      const row = this.rows[i]!;
      if (row.fresh || this.cache.lengths[i]! + row.feed.length <= this.block) continue;
      if (row.req.onFull === 'stop') {
        events.push({ id: row.req.id, finish: 'context' });
        this.remove(i);
      } else {
        row.feed = row.tokens.slice(-Math.max(1, Math.floor(this.block / 2)));
        row.fresh = true;
      }
    }
    // Prefill: fresh rows through the prefill cache, then into their slots.
    const fresh = this.rows.map((r, i) => (r.fresh ? i : -1)).filter((i) => i >= 0);
    if (fresh.length > 0) {
      const view = this.prefillCache.rows(fresh.length);
      try {
        view.lengths.fill(0);
        const logits = this.pass(view, fresh.map((i) => this.rows[i]!.feed));
        fresh.forEach((slot, j) => {
          this.cache.copyRow(view, j, slot);
          this.rows[slot]!.fresh = false;
        });
        this.choose(fresh, logits, events, true);
      } finally {
        view.dispose();
      }
    }
    // Decode: every live row that did not just prefill feeds its last token.
    const fed = new Set(fresh);
    const decoding = this.rows.map((_, i) => i).filter((i) => !fed.has(i));
    if (decoding.length > 0) {
      const n = this.rows.length;
      const view = this.cache.rows(n);
      try {
        const feeds = this.rows.map((r, i) => (fed.has(i) ? [] : r.feed));
        const logits = this.pass(view, feeds);
        for (let i = 0; i < n; i++) this.cache.lengths[i] = view.lengths[i]!;
        this.choose(decoding, logits, events, false);
      } finally {
        view.dispose();
      }
    }
    // Rows that ended leave (from the back, so the slots still to visit keep their rows).
    for (let i = this.rows.length - 1; i >= 0; i--) if (this.rows[i]!.feed.length === 0) this.remove(i);
    return events;
  }

  /** Frees the caches; pending sequences are dropped. */
  dispose(): void {
    this.cache.dispose();
    this.prefillCache.dispose();
    this.rows.length = 0;
    this.waiting.length = 0;
  }

  /** One forward pass of ragged feeds (an empty feed = a padding row) over a cache view; the last logits per row (B·V). */
  private pass(view: KVCache, feeds: readonly (readonly number[])[]): Float32Array {
    const B = feeds.length;
    const counts = feeds.map((f) => f.length);
    const T = Math.max(1, ...counts);
    const idx = new Int32Array(B * T);
    feeds.forEach((f, b) => idx.set(f, b * T));
    return lm.tidy(() => this.model.forward(lm.fromArray(idx, [B, T]), undefined, { cache: view, counts, last: 1 }).logits.toTypedArray() as Float32Array); // (B, 1, V)
  }

  /** Picks the next token of each listed slot from its row of logits (row j of a prefill pass, row `slot` of a decode pass). */
  private choose(slots: readonly number[], logits: Float32Array, events: TokenEvent[], prefill: boolean): void {
    const V = this.V;
    slots.forEach((slot, j) => {
      const row = this.rows[slot]!;
      const r = prefill ? j : slot;
      const raw = logits.subarray(r * V, (r + 1) * V);
      const processed = Float32Array.from(raw);
      const state = { tokens: row.tokens, promptLength: row.req.prompt.length };
      for (const p of row.req.processors ?? []) p(processed, state);
      const { token: next, logprob } = row.req.greedy ? greedyWithLogprob(processed, raw) : sampleWithLogprob(processed, raw, row.rng);
      row.tokens.push(next);
      row.generated.push(next);
      const event: TokenEvent = { id: row.req.id, token: next, logprob };
      const strings = row.req.stopStrings?.filter((s) => s !== '') ?? [];
      const decode = this.options.decode;
      if (row.stops.has(next) || (strings.length > 0 && decode && strings.some((s) => decode(row.generated).includes(s)))) event.finish = 'stop';
      else if (row.generated.length >= row.req.maxNewTokens) event.finish = 'length';
      row.feed = event.finish ? [] : [next];
      events.push(event);
    });
  }

  /** Takes slot i out of the batch: the last row moves into it (its cache row copied), so live rows stay in front. */
  private remove(i: number): void {
    const last = this.rows.length - 1;
    if (i !== last) {
      this.cache.copyRow(this.cache, last, i);
      this.rows[i] = this.rows[last]!;
    }
    this.rows.pop();
    this.cache.lengths[last] = 0;
  }
}
