// `lmforge train --config FILE [--key=value ...] [--resume | --overwrite]`: pretrain a GPT (see src/train/train-config.ts for
// every key and its default).
import type { Command } from 'commander';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { TRAIN_ALIASES, trainSpec } from '../train/train-config.js';
import { UserError } from '../util/errors.js';
import { train } from '../train/trainer.js';
import { addConfigOptions, configFromCommand } from './config-options.js';

export function register(program: Command): void {
  const cmd = program
    .command('train')
    .description('pretrain a GPT on token files (nanoGPT recipe: AdamW, warmup + cosine, eval, checkpoints)')
    .option('--resume', 'continue from the newest complete checkpoint in out_dir')
    .option('--overwrite', 'replace a run already in out_dir (its checkpoints, metrics and model are removed first)');
  addConfigOptions(cmd, trainSpec, TRAIN_ALIASES).action(() => {
    useNativeBackendOrWarn();
    const config = configFromCommand(cmd, trainSpec, TRAIN_ALIASES);
    const { resume, overwrite } = cmd.opts<{ resume?: boolean; overwrite?: boolean }>();
    if (resume && overwrite) throw new UserError('--resume and --overwrite exclude each other: continue the run, or replace it');
    const r = train(config, { resume: resume ?? false, overwrite: overwrite ?? false });
    if (r.rank === 0) console.log(`done: ${r.steps} steps, train loss ${r.trainLoss?.toFixed(4)}, val loss ${r.valLoss?.toFixed(4)}; model (or, for a LoRA run, its adapter) saved in ${r.runDir}`);
  });
}
