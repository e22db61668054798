// `lmforge train --config FILE [--key=value ...] [--resume | --overwrite]`: pretrain a GPT (see src/train/train-config.ts for
// every key and its default).
import type { Command } from 'commander';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { TRAIN_ALIASES, trainSpec } from '../train/train-config.js';
import { UserError } from '../util/errors.js';
import { train } from '../train/trainer.js';
import { addConfigOptions, configFromCommand } from './config-options.js';
import { registerQuietly } from './register-hook.js';
import { configHelp, readConfigFile } from '../util/config.js';
import { VISION_TASKS, visionTrainSpec } from '../train/vision-config.js';
import { trainVision } from '../train/vision-trainer.js';

/** The task.kind a command line asks for (a `--task.kind=` flag, else the config file's task.kind), or null. */
function requestedTask(configPath: string | undefined, args: readonly string[]): string | null {
  for (let i = args.length - 1; i >= 0; i--) {
    const m = /^--task\.kind=(.*)$/.exec(args[i]!);
    if (m) return m[1]!;
  }
  if (!configPath) return null;
  const data = readConfigFile(configPath).data as { task?: { kind?: unknown } } | null;
  return typeof data?.task?.kind === 'string' ? data.task.kind : null;
}

export function register(program: Command): void {
  const cmd = program
    .command('train')
    .description('pretrain a GPT on token files (nanoGPT recipe: AdamW, warmup + cosine, eval, checkpoints)')
    .option('--resume', 'continue from the newest complete checkpoint in out_dir')
    .option('--overwrite', 'replace a run already in out_dir (its checkpoints, metrics and model are removed first)')
    .option('--registry <file>', 'record the finished run in this registry database (default: $LMFORGE_REGISTRY or runs/registry.sqlite)')
    .option('--no-register', 'do not record the run in the registry');
  addConfigOptions(cmd, trainSpec, TRAIN_ALIASES).addHelpText('after', `\nImage tasks (task.kind ${VISION_TASKS.join(', ')}) read these keys instead (configs/vision/*.yaml):\n${configHelp(visionTrainSpec)}\n`).action(() => {
    useNativeBackendOrWarn();
    const kind = requestedTask(cmd.opts<{ config?: string }>().config, cmd.args);
    if (kind !== null && (VISION_TASKS as readonly string[]).includes(kind)) {
      const config = configFromCommand(cmd, visionTrainSpec);
      const { resume, overwrite } = cmd.opts<{ resume?: boolean; overwrite?: boolean }>();
      if (resume && overwrite) throw new UserError('--resume and --overwrite exclude each other: continue the run, or replace it');
      const r = trainVision(config, { resume: resume ?? false, overwrite: overwrite ?? false });
      const figures = Object.entries(r.eval).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ');
      console.log(`done: ${r.steps} steps, ${figures}; model saved in ${r.runDir}`);
      console.log(`RESULT ${JSON.stringify({ task: config.task.kind, steps: r.steps, images_per_s: Math.round(r.imagesPerSecond), ...r.eval, ...r.usage })}`);
      return;
    }
    const config = configFromCommand(cmd, trainSpec, TRAIN_ALIASES);
    const { resume, overwrite, registry, register: doRegister } = cmd.opts<{ resume?: boolean; overwrite?: boolean; registry?: string; register: boolean }>();
    if (resume && overwrite) throw new UserError('--resume and --overwrite exclude each other: continue the run, or replace it');
    const r = train(config, { resume: resume ?? false, overwrite: overwrite ?? false });
    if (r.rank === 0) console.log(`done: ${r.steps} steps, train loss ${r.trainLoss?.toFixed(4)}, val loss ${r.valLoss?.toFixed(4)}; model (or, for a LoRA run, its adapter) saved in ${r.runDir}`);
    if (doRegister && r.rank === 0) registerQuietly(registry, `run ${r.runDir}`, (reg) => `recorded ${reg.registerRun(r.runDir).path} in ${reg.path}`);
  });
}
