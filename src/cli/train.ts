// `lmforge train --config FILE [--key=value ...] [--resume]`: pretrain a GPT (see src/train/train-config.ts for
// every key and its default).
import type { Command } from 'commander';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { trainSpec } from '../train/train-config.js';
import { train } from '../train/trainer.js';
import { addConfigOptions, configFromCommand } from './config-options.js';

export function register(program: Command): void {
  const cmd = program
    .command('train')
    .description('pretrain a GPT on token files (nanoGPT recipe: AdamW, warmup + cosine, eval, checkpoints)')
    .option('--resume', 'continue from the newest complete checkpoint in out_dir');
  addConfigOptions(cmd, trainSpec).action(() => {
    useNativeBackendOrWarn();
    const config = configFromCommand(cmd, trainSpec);
    const { resume } = cmd.opts<{ resume?: boolean }>();
    const r = train(config, { resume: resume ?? false });
    console.log(`done: ${r.steps} steps, train loss ${r.trainLoss?.toFixed(4)}, val loss ${r.valLoss?.toFixed(4)}; model saved in ${r.runDir}`);
  });
}
