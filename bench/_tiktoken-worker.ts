// worker_threads entry for the tokenizers bench: encodes chunks with the tiktoken npm package (the reference side).
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

interface Encoding {
  encode_ordinary(text: string): Uint32Array;
}
const require = createRequire(import.meta.url);
const { get_encoding } = require('tiktoken') as { get_encoding(name: string): Encoding };
const enc = get_encoding((workerData as { encoding: string }).encoding);
parentPort?.on('message', (job: { id: number; text: string }) => {
  const ids = enc.encode_ordinary(job.text);
  parentPort?.postMessage({ id: job.id, ids }, [ids.buffer as ArrayBuffer]);
});
