// `lmforge ablate --base CONFIG --vary KEY=V1,V2 [--vary ...] [--seeds S1,S2] [--jobs N] [--key=value ...]`: an
// ablation grid from the command line — every combination of the varied keys' values × every seed, run resumably by
// the study runner, N cells at once — with the table of val loss mean ± std, the difference from the base with
// Welch's 95% interval and p-value, as Markdown and HTML with plots. The same as a study file with `grid:`
// (configs/studies/ablation-2x2.yaml); this command builds that study in memory.
import { basename, extname, resolve } from 'node:path';
import type { Command } from 'commander';
import { parse as parseYAML } from 'yaml';
import { studyPlanFromLayer } from '../train/study-plan.js';
import { trainSpec } from '../train/train-config.js';
import { configHelp, type ObjectLayer } from '../util/config.js';
import { UserError } from '../util/errors.js';
import { intFlag } from './flags.js';
import { cellFlags, runStudyCommand } from './study.js';

interface AblateOptions {
  base: string;
  vary: string[];
  seeds: string;
  out?: string;
  baseline?: string;
  jobs: number;
  dryRun?: boolean;
  redoChanged?: boolean;
}

/** `model.n_layer=2,4` → ['model.n_layer', [2, 4]]; each value read as a YAML scalar (numbers, booleans, words). */
export function parseVary(text: string): [string, unknown[]] {
  const m = /^([A-Za-z_][A-Za-z0-9_.]*)=(.+)$/.exec(text);
  if (!m) throw new UserError(`--vary ${JSON.stringify(text)}: expected KEY=V1,V2[,...] (like model.n_layer=2,4)`);
  const values = m[2]!.split(',').map((v) => {
    const t = v.trim();
    if (!t) throw new UserError(`--vary ${text}: an empty value`);
    const x: unknown = parseYAML(t);
    return typeof x === 'number' || typeof x === 'boolean' || typeof x === 'string' ? x : t;
  });
  return [m[1]!, values];
}

export function register(program: Command): void {
  const cmd = program
    .command('ablate')
    .description('ablation grid: a base config × every combination of the varied keys × seeds, run resumably (N at once); table with mean ± std and Δ vs base with Welch 95% CI and p (Markdown + HTML)')
    .requiredOption('--base <config>', 'the base train config (YAML or JSON)')
    .requiredOption('--vary <key=values...>', 'a key and its values, comma-separated (repeat for a grid), e.g. --vary model.n_layer=2,4 optim.lr=1e-3,3e-3')
    .option('--seeds <list>', 'comma-separated seeds; every cell runs once per seed', '1337,1338')
    .option('--out <dir>', 'where the cells and reports go (default: runs/ablations/<base config name>)')
    .option('--baseline <name>', "the variant the others are compared with (default: the base config's own combination)")
    .option('--jobs <n>', 'cells to run at once, each in its own process (at most the number of cores)', intFlag('--jobs', 1), 1)
    .option('--dry-run', 'print the cells and their steps without running anything')
    .option('--redo-changed', 'run again the finished cells whose config differs now (instead of refusing)')
    .allowUnknownOption()
    .allowExcessArguments()
    .addHelpText('after', `\nTrailing --key=value flags override the train config of every cell (e.g. --max_iters=300 --threads=1). Train keys:\n${configHelp(trainSpec)}\n`);
  cmd.action(async () => {
    const o = cmd.opts<AblateOptions>();
    const seeds = o.seeds.split(',').map((s) => {
      const n = Number(s.trim());
      if (!Number.isSafeInteger(n)) throw new UserError(`--seeds ${o.seeds}: expected comma-separated integers`);
      return n;
    });
    const grid: Record<string, unknown[]> = {};
    for (const v of o.vary) {
      const [key, values] = parseVary(v);
      if (key in grid) throw new UserError(`--vary ${key}: given twice`);
      grid[key] = values;
    }
    const outDir = o.out ?? `runs/ablations/${basename(o.base, extname(o.base))}`;
    const layer: ObjectLayer = { kind: 'object', source: 'lmforge ablate', data: { out_dir: outDir, base: resolve(o.base), seeds, grid, ...(o.baseline ? { baseline: o.baseline } : {}) } };
    const plan = studyPlanFromLayer(layer, { flags: cellFlags(cmd.args) });
    await runStudyCommand(plan, { dryRun: o.dryRun ?? false, redoChanged: o.redoChanged ?? false, jobs: o.jobs });
  });
}
