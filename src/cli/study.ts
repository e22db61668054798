// `lmforge study --config FILE [--out DIR] [--jobs N] [--dry-run] [--key=value ...]`: runs a grid of train-config
// variants × seeds (× compute budgets) from one study file, resumably, N cells at once, and prints and saves the
// comparison table (Markdown and HTML with plots), the L(N) fit, the compute-optimal frontier and its plot, ending
// with `RESULT {json}`. The format: src/train/study-plan.ts.
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { writeStudyHTML } from '../report/study-html.js';
import { readStudyPlan, type StudyPlan } from '../train/study-plan.js';
import { resultLine, runStudy } from '../train/study.js';
import { TRAIN_ALIASES, trainSpec } from '../train/train-config.js';
import { configHelp, parseFlagArgs, type FlagLayer } from '../util/config.js';
import { UserError } from '../util/errors.js';
import { intFlag } from './flags.js';

export interface StudyRunOptions {
  dryRun: boolean;
  redoChanged: boolean;
  jobs: number;
}

/** Trailing `--key=value` train overrides, refusing the keys a study sets per cell. */
export function cellFlags(args: readonly string[]): FlagLayer {
  const flags = parseFlagArgs([...args]);
  for (const f of flags.flags) {
    const key = TRAIN_ALIASES[f.key] ?? f.key;
    if (['seed', 'out_dir'].includes(key)) throw new UserError(`flag ${f.text}: ${key} is set per cell by the study (use the study's seeds and out_dir, or --out)`);
  }
  return flags;
}

/** Runs a plan (study or ablation), writes its HTML report beside table.md and prints the RESULT line. */
export async function runStudyCommand(plan: StudyPlan, o: StudyRunOptions): Promise<void> {
  const cores = availableParallelism();
  let jobs = o.jobs;
  if (jobs > cores) {
    console.log(`--jobs ${jobs}: this machine has ${cores} cores; running ${cores} cells at a time`);
    jobs = cores;
  }
  if (jobs > 1 && plan.cells.some((c) => c.config.threads === 0 || c.config.threads > Math.floor(cores / jobs))) {
    console.log(`note: ${jobs} cells at once with threads=${plan.cells[0]!.config.threads} each oversubscribe ${cores} cores (set --threads=${Math.max(1, Math.floor(cores / jobs))})`);
  }
  const report = await runStudy(plan, { dryRun: o.dryRun, redoChanged: o.redoChanged, jobs });
  if (!report) return;
  console.log(`wrote ${writeStudyHTML(plan, report)}`);
  console.log(resultLine(plan, report));
}

export function register(program: Command): void {
  const cmd = program
    .command('study')
    .description('run a grid of model variants × seeds (× compute budgets) resumably; print and save the table (Markdown, HTML with plots), L(N) fit and frontier plot')
    .requiredOption('--config <path>', 'study file (YAML or JSON; see configs/studies/)')
    .option('--out <dir>', "write the study here instead of the file's out_dir")
    .option('--jobs <n>', 'cells to run at once, each in its own process (at most the number of cores)', intFlag('--jobs', 1), 1)
    .option('--dry-run', 'print the cells and their steps without running anything')
    .option('--redo-changed', 'run again the finished cells whose config differs from the study file now (instead of refusing)')
    .allowUnknownOption()
    .allowExcessArguments()
    .addHelpText('after', `\nTrailing --key=value flags override the train config of every cell (e.g. --threads=1). Train keys:\n${configHelp(trainSpec)}\n`);
  cmd.action(async () => {
    const o = cmd.opts<{ config: string; out?: string; jobs: number; dryRun?: boolean; redoChanged?: boolean }>();
    const plan = readStudyPlan(o.config, { flags: cellFlags(cmd.args), ...(o.out ? { outDir: o.out } : {}) });
    await runStudyCommand(plan, { dryRun: o.dryRun ?? false, redoChanged: o.redoChanged ?? false, jobs: o.jobs });
  });
}
