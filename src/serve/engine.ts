// The HTTP thread's handle on the generation worker: spawns it, waits until its model is loaded, routes each
// step's deltas to the sequence that asked, and closes it (cancelling what still runs). The worker's entry module
// is the caller's (it loads the model; see src/cli/serve-worker.ts), so this file needs no run-directory code.
import { Worker } from 'node:worker_threads';
import type { FromWorker, SamplingParams, SequenceDelta, ToWorker, WorkerInfo } from './protocol.js';

export type DeltaHandler = (delta: SequenceDelta) => void;

/** What the server needs from a generator: start a sequence (its deltas arrive on the handler) and cancel it. */
export interface Generator {
  readonly info: WorkerInfo;
  start(prompt: number[], params: SamplingParams, onDelta: DeltaHandler): { id: string; cancel(): void };
  close(): Promise<void>;
}

export class WorkerGenerator implements Generator {
  private readonly handlers = new Map<string, DeltaHandler>();
  private next = 0;
  private closed: Promise<void> | null = null;
  private dead = false;

  private constructor(private readonly worker: Worker, readonly info: WorkerInfo) {
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'deltas') {
        for (const d of m.deltas) {
          const h = this.handlers.get(d.id);
          if (d.finish) this.handlers.delete(d.id);
          h?.(d);
        }
      } else if (m.type === 'failed') {
        const h = this.handlers.get(m.id);
        this.handlers.delete(m.id);
        h?.({ id: m.id, text: '', tokens: 0, finish: 'cancelled' });
        process.stderr.write(`serve: sequence ${m.id} failed: ${m.message}\n`);
      }
    });
  }

  /** Starts the worker module with workerData and resolves once it has loaded the model (rejects on its error). */
  static start(module: URL, workerData: unknown): Promise<WorkerGenerator> {
    const worker = new Worker(module, { workerData });
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      const onExit = (code: number): void => reject(new Error(`generation worker exited with code ${code} before it was ready`));
      worker.once('error', onError);
      worker.once('exit', onExit);
      worker.once('message', (m: FromWorker) => {
        worker.off('error', onError);
        worker.off('exit', onExit);
        if (m.type !== 'ready') return reject(new Error(`generation worker: expected 'ready', got '${m.type}'`));
        const generator = new WorkerGenerator(worker, m.info);
        worker.on('error', (e) => process.stderr.write(`serve: generation worker failed: ${e.stack ?? e.message}\n`));
        worker.on('exit', () => generator.lost());
        resolve(generator);
      });
    });
  }

  /** The thread ended (closed, or died): every live sequence ends as cancelled, and no new one starts. */
  private lost(): void {
    this.dead = true;
    for (const [id, h] of [...this.handlers]) {
      this.handlers.delete(id);
      h({ id, text: '', tokens: 0, finish: 'cancelled' });
    }
  }

  /** Sequences started and not yet finished. */
  get live(): number {
    return this.handlers.size;
  }

  start(prompt: number[], params: SamplingParams, onDelta: DeltaHandler): { id: string; cancel(): void } {
    if (this.closed || this.dead) throw new Error('the generation worker is not running');
    const id = `s${this.next++}`;
    this.handlers.set(id, onDelta);
    this.post({ type: 'submit', id, prompt, params });
    return { id, cancel: () => { if (this.handlers.has(id)) this.post({ type: 'cancel', id }); } };
  }

  /** Cancels live sequences (their handlers get 'cancelled'), frees the model and ends the thread. */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      const done = (): void => resolve();
      this.worker.once('exit', done);
      this.worker.on('message', (m: FromWorker) => { if (m.type === 'closed') void this.worker.terminate(); });
      this.post({ type: 'shutdown' });
    });
    return this.closed;
  }

  private post(m: ToWorker): void {
    this.worker.postMessage(m);
  }
}
