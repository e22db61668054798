// worker_threads entry for EncoderPool: loads the tokenizer once, then encodes the text chunks it is sent.
// Not for direct use; see parallel.ts.
import { parentPort, workerData } from 'node:worker_threads';
import { loadAnyTokenizer } from './load-any.js';
import { encodeText } from './tokenizer.js';

interface Job {
  id: number;
  text: string;
}

const { tokenizerPath, allowSpecial } = workerData as { tokenizerPath: string; allowSpecial: boolean };
const tok = loadAnyTokenizer(tokenizerPath);
parentPort?.on('message', (job: Job) => {
  try {
    const ids = Uint32Array.from(encodeText(tok, job.text, allowSpecial));
    parentPort?.postMessage({ id: job.id, ids }, [ids.buffer]);
  } catch (e) {
    parentPort?.postMessage({ id: job.id, error: (e as Error).message });
  }
});
