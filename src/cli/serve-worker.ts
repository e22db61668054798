// The generation thread's entry for `lmforge serve`: loads the run's model and tokenizer through RunDir (which the
// serve layer may not import) and hands them to serve/worker.ts. Started by WorkerGenerator with workerData
// { run, slots, name, threads }.
import { parentPort, workerData } from 'node:worker_threads';
import { setThreads } from '../core/index.js';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { runGenerationWorker } from '../serve/worker.js';
import { RunDir } from '../train/run-dir.js';

export interface ServeWorkerData {
  run: string;
  slots: number;
  name: string;
  /** Kernel threads of this thread's native calls (0 = the native default). */
  threads: number;
}

const data = workerData as ServeWorkerData;
useNativeBackendOrWarn();
if (data.threads > 0) setThreads(data.threads); // the worker's own OpenMP setting: set here, not by the HTTP thread
const run = RunDir.open(data.run);
runGenerationWorker(parentPort!, run.loadModel(), run.codec(), { slots: data.slots, name: data.name });
