// Worker thread for bench/curation.ts: runs one rank of one curation stage so two ranks use two cores.
import { parentPort, workerData } from 'node:worker_threads';
import { validateConfig } from '../src/data/config.js';
import { runStages } from '../src/data/pipeline.js';
import { bucketStage, dedupFilterStage, signatureStage } from '../src/data/dedup/stages.js';
import type { DedupConfig } from '../src/data/dedup/stages.js';
import type { StageName } from '../src/data/config.js';

export type WorkerTask =
  | { kind: 'pipeline'; config: unknown; baseDir: string; stage: StageName; rank: number; worldSize: number }
  | { kind: 'signature' | 'bucket' | 'dedup-filter'; dedup: DedupConfig; inputs: string[]; work: string; outDir: string; rank: number; worldSize: number };

const t = workerData as WorkerTask;
const so = { rank: t.rank, worldSize: t.worldSize };
switch (t.kind) {
  case 'pipeline':
    await runStages(validateConfig(t.config, t.baseDir), [t.stage], { ...so, limit: null, dryRun: false, log: () => {} });
    break;
  case 'signature':
    await signatureStage(t.dedup, t.inputs, t.work, so);
    break;
  case 'bucket':
    bucketStage(t.dedup, t.inputs.length, t.work, so);
    break;
  case 'dedup-filter':
    await dedupFilterStage(t.inputs, t.work, (i) => `${t.outDir}/kept-${i}.jsonl.gz`, (i) => `${t.outDir}/removed-${i}.jsonl.gz`, so);
    break;
  default: {
    const never: never = t;
    throw new Error(`unknown task ${JSON.stringify(never)}`);
  }
}
parentPort?.postMessage('done');
