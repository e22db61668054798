// `lmforge train --config FILE [--key=value ...] [--resume | --overwrite]`: pretrain a GPT (see src/train/train-config.ts for
// every key and its default).
import type { Command } from 'commander';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { TRAIN_ALIASES, trainSpec } from '../train/train-config.js';
import { UserError } from '../util/errors.js';
import { train } from '../train/trainer.js';
import { addConfigOptions, configFromCommand } from './config-options.js';
import { registerQuietly } from './register-hook.js';

export function register(program: Command): void {
  const cmd = program
    .command('train')
    .description('pretrain a GPT on token files (nanoGPT recipe: AdamW, warmup + cosine, eval, checkpoints)')
    .option('--resume', 'continue from the newest complete checkpoint in out_dir')
    .option('--overwrite', 'replace a run already in out_dir (its checkpoints, metrics and model are removed first)')
    .option('--registry <file>', 'record the finished run in this registry database (default: $LMFORGE_REGISTRY or runs/registry.sqlite)')
    .option('--no-register', 'do not record the run in the registry');
  addConfigOptions(cmd, trainSpec, TRAIN_ALIASES).action(() => {
    useNativeBackendOrWarn();
    const config = configFromCommand(cmd, trainSpec, TRAIN_ALIASES);
    const { resume, overwrite, registry, register: doRegister } = cmd.opts<{ resume?: boolean; overwrite?: boolean; registry?: string; register: boolean }>();
    if (resume && overwrite) throw new UserError('--resume and --overwrite exclude each other: continue the run, or replace it');
    const r = train(config, { resume: resume ?? false, overwrite: overwrite ?? false });
    console.log(`done: ${r.steps} steps, train loss ${r.trainLoss?.toFixed(4)}, val loss ${r.valLoss?.toFixed(4)}; model (or, for a LoRA run, its adapter) saved in ${r.runDir}`);
    if (doRegister) registerQuietly(registry, `run ${r.runDir}`, (reg) => `recorded ${reg.registerRun(r.runDir).path} in ${reg.path}`);
  });
}
