// `lmforge study --config FILE [--out DIR] [--dry-run] [--key=value ...]`: runs a grid of train-config variants ×
// seeds (× compute budgets) from one study file, resumably, and prints and saves the comparison table, the L(N)
// fit, the compute-optimal frontier and its plot, ending with `RESULT {json}`. The format: src/train/study-plan.ts.
import type { Command } from 'commander';
import { readStudyPlan } from '../train/study-plan.js';
import { resultLine, runStudy } from '../train/study.js';
import { TRAIN_ALIASES, trainSpec } from '../train/train-config.js';
import { configHelp, parseFlagArgs } from '../util/config.js';
import { UserError } from '../util/errors.js';

export function register(program: Command): void {
  const cmd = program
    .command('study')
    .description('run a grid of model variants × seeds (× compute budgets) resumably; print and save the table, L(N) fit and frontier plot')
    .requiredOption('--config <path>', 'study file (YAML or JSON; see configs/studies/)')
    .option('--out <dir>', "write the study here instead of the file's out_dir")
    .option('--dry-run', 'print the cells and their steps without running anything')
    .option('--redo-changed', 'run again the finished cells whose config differs from the study file now (instead of refusing)')
    .allowUnknownOption()
    .allowExcessArguments()
    .addHelpText('after', `\nTrailing --key=value flags override the train config of every cell (e.g. --threads=1). Train keys:\n${configHelp(trainSpec)}\n`);
  cmd.action(() => {
    const o = cmd.opts<{ config: string; out?: string; dryRun?: boolean; redoChanged?: boolean }>();
    const flags = parseFlagArgs(cmd.args);
    for (const f of flags.flags) {
      const key = TRAIN_ALIASES[f.key] ?? f.key;
      if (['seed', 'out_dir'].includes(key)) throw new UserError(`flag ${f.text}: ${key} is set per cell by the study (use the study file's seeds and out_dir, or --out)`);
    }
    const plan = readStudyPlan(o.config, { flags, ...(o.out ? { outDir: o.out } : {}) });
    const report = runStudy(plan, { dryRun: o.dryRun ?? false, redoChanged: o.redoChanged ?? false });
    if (report) console.log(resultLine(plan, report));
  });
}
