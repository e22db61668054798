// One study cell in its own process: reads the request the runner wrote (a resolved train config and whether to
// resume or replace a partial run), trains, and writes study-cell.json atomically with the figures the table needs
// (losses, tokens/s, this process's peak RSS). A process per cell gives each cell its own peak memory and lets a
// killed study leave only whole results behind. Started by study.ts; not a command of its own.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { writeFileAtomic } from '../util/atomic.js';
import { describeError } from '../util/errors.js';
import { train } from './trainer.js';
import type { TrainConfig } from './train-config.js';

export const CELL_REQUEST_FILE = 'study-cell-request.json';
export const CELL_RESULT_FILE = 'study-cell.json';

export interface CellRequest {
  config: TrainConfig;
  resume: boolean;
  overwrite: boolean;
}

export interface CellResult {
  config: TrainConfig;
  steps: number;
  train_loss: number | null;
  val_loss: number | null;
  val_loss_full: number | null;
  tokens_per_s: number;
  peak_rss_bytes: number;
  wall_s: number;
  resumed: boolean;
}

function main(requestPath: string): void {
  const request = JSON.parse(readFileSync(requestPath, 'utf8')) as CellRequest;
  useNativeBackendOrWarn();
  const t0 = performance.now();
  const r = train(request.config, { resume: request.resume, overwrite: request.overwrite });
  const result: CellResult = {
    config: request.config, steps: r.steps, train_loss: r.trainLoss, val_loss: r.valLoss, val_loss_full: r.valLossFull,
    tokens_per_s: r.tokensPerSecond, peak_rss_bytes: process.resourceUsage().maxRSS * 1024, wall_s: (performance.now() - t0) / 1000, resumed: request.resume,
  };
  writeFileAtomic(join(request.config.out_dir, CELL_RESULT_FILE), JSON.stringify(result, null, 2) + '\n');
}

const requestPath = process.argv[2];
if (requestPath && process.argv[1]?.endsWith('study-worker.js')) {
  try {
    main(requestPath);
  } catch (e) {
    process.stderr.write(`study cell failed: ${describeError(e)}\n`);
    process.exitCode = 1;
  }
}
