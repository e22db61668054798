// Parallel encoding over worker_threads (one tokenizer per worker) and the chunking that keeps results identical to
// encoding the whole text at once. Not a tokenizer itself.
import { Worker } from 'node:worker_threads';

interface Pending {
  resolve: (ids: Uint32Array) => void;
  reject: (e: Error) => void;
}

export class EncoderPool {
  private readonly workers: Worker[] = [];
  private readonly load: number[] = [];
  private readonly pending = new Map<number, Pending & { worker: number }>();
  private nextId = 0;

  constructor(tokenizerPath: string, size: number, allowSpecial = false) {
    for (let w = 0; w < Math.max(1, size); w++) {
      const worker = new Worker(new URL('./encode-worker.js', import.meta.url), { workerData: { tokenizerPath, allowSpecial } });
      worker.on('message', (msg: { id: number; ids?: Uint32Array; error?: string }) => {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        this.load[p.worker] = (this.load[p.worker] as number) - 1;
        if (msg.error !== undefined || !msg.ids) p.reject(new Error(msg.error ?? 'encode worker returned nothing'));
        else p.resolve(msg.ids);
      });
      worker.on('error', (e) => {
        for (const [id, p] of this.pending) {
          if (p.worker !== w) continue;
          this.pending.delete(id);
          p.reject(e);
        }
      });
      this.workers.push(worker);
      this.load.push(0);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /** Encodes one chunk on the least-loaded worker. */
  encode(text: string): Promise<Uint32Array> {
    let best = 0;
    for (let w = 1; w < this.load.length; w++) if ((this.load[w] as number) < (this.load[best] as number)) best = w;
    const id = this.nextId++;
    this.load[best] = (this.load[best] as number) + 1;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker: best });
      (this.workers[best] as Worker).postMessage({ id, text });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Whitespace in the split patterns' sense (Unicode White_Space), plus U+FEFF to stay on the safe side. */
function isSpace(c: number): boolean {
  return (c >= 9 && c <= 13) || c === 32 || c === 0x85 || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

/**
 * Where to cut `text` at or before `limit` so that encoding the parts separately equals encoding the whole: right
 * after a lone newline — preceded and followed by non-whitespace — so the whitespace run at the cut is that one
 * character in both cases (a longer run would split differently at the end of a chunk: `\s+(?!\S)`), and no split
 * pattern joins across it; unigram normalisation treats lines alike. Returns 0 when no such point exists.
 */
export function safeCut(text: string, limit: number): number {
  for (let i = Math.min(limit, text.length - 1); i > 1; i--) {
    if (text.charCodeAt(i - 1) !== 10) continue;
    const before = text.charCodeAt(i - 2);
    const after = text.charCodeAt(i);
    // "/" is excluded because o200k's `[^\s\p{L}\p{N}]+[\r\n/]*` continues through "\n/"; lone surrogates too.
    if (isSpace(before) || isSpace(after) || after === 0x2f || (after >= 0xdc00 && after <= 0xdfff)) continue;
    return i;
  }
  return 0;
}
