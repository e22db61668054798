// The generation thread: owns the model and the continuous batcher, steps it while any sequence is live, and
// posts each step's text deltas to the HTTP thread in one message. Between steps it yields to its event loop, so
// submits and cancels that arrived during a step join the very next one. The model is loaded by the caller (the
// CLI's worker entry, which knows run directories); this file knows only the port protocol.
import type { MessagePort } from 'node:worker_threads';
import type { GPT } from '../models/gpt.js';
import type { TextCodec } from '../tokenizers/codec.js';
import { frequencyPresencePenalty, samplingProcessors } from './logits.js';
import type { FromWorker, SequenceDelta, ToWorker } from './protocol.js';
import { ContinuousBatcher } from './scheduler.js';
import { TextStream } from './text-stream.js';

export function runGenerationWorker(port: MessagePort, model: GPT, codec: TextCodec, options: { slots: number; name: string }): void {
  const decode = (ids: readonly number[]): string => codec.decode(ids);
  let batcher = new ContinuousBatcher(model, { slots: options.slots, decode });
  const streams = new Map<string, TextStream>();
  const post = (m: FromWorker): void => port.postMessage(m);
  let scheduled = false;
  let closing = false;

  const loop = (): void => {
    scheduled = false;
    if (!batcher.busy) {
      if (closing) finishClose();
      return;
    }
    const deltas = new Map<string, SequenceDelta>();
    let events;
    try {
      events = batcher.step();
    } catch (e) {
      // A failed step leaves the batch in an unknown state: every live sequence fails, the batcher starts afresh.
      for (const id of streams.keys()) post({ type: 'failed', id, message: (e as Error).message });
      streams.clear();
      batcher.dispose();
      batcher = new ContinuousBatcher(model, { slots: options.slots, decode });
      schedule();
      return;
    }
    for (const e of events) {
      const stream = streams.get(e.id);
      if (!stream) continue;
      const d = deltas.get(e.id) ?? { id: e.id, text: '', tokens: 0 };
      if (e.token !== undefined) {
        d.tokens++;
        d.text += stream.push(e.token);
      }
      if (e.finish) {
        d.text += stream.finish();
        d.finish = e.finish;
        streams.delete(e.id);
      }
      deltas.set(e.id, d);
    }
    if (deltas.size > 0) post({ type: 'deltas', deltas: [...deltas.values()] });
    schedule();
  };
  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(loop);
  };
  const finishClose = (): void => {
    batcher.dispose();
    model.dispose();
    post({ type: 'closed' });
    port.close();
  };

  port.on('message', (m: ToWorker) => {
    switch (m.type) {
      case 'submit': {
        const p = m.params;
        try {
          streams.set(m.id, new TextStream(decode, p.stop, p.stopTokens));
          batcher.add({
            id: m.id, prompt: m.prompt, maxNewTokens: p.maxTokens, greedy: p.temperature === 0, seed: p.seed,
            processors: [
              ...(p.frequencyPenalty || p.presencePenalty ? [frequencyPresencePenalty(p.frequencyPenalty ?? 0, p.presencePenalty ?? 0)] : []),
              ...samplingProcessors({ temperature: p.temperature, topK: p.topK, topP: p.topP }),
            ],
            stopStrings: p.stop,
            stopTokens: p.stopTokens ?? [],
          });
        } catch (e) {
          streams.delete(m.id);
          post({ type: 'failed', id: m.id, message: (e as Error).message });
        }
        break;
      }
      case 'cancel':
        batcher.cancel(m.id);
        break;
      case 'shutdown':
        closing = true;
        for (const id of streams.keys()) batcher.cancel(id);
        break;
      default: {
        const never: never = m;
        throw new Error(`worker: unknown message ${JSON.stringify(never)}`);
      }
    }
    schedule();
  });
  post({
    type: 'ready',
    info: { model: options.name, blockSize: model.config.block_size, vocabSize: model.config.vocab_size, parameters: model.numParameters(), slots: options.slots },
  });
}
