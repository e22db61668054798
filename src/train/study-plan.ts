// A study file read into its plan: a base train config, named variants (train-config overrides), seeds and optional
// compute budgets, expanded into cells `<out_dir>/<variant>[/<budget>]/seed-<s>/`, each with its resolved train
// config and analytic cost. Every mistake names the study file, the field and what was expected. Not the runner
// (study.ts). The format, with every key:
//
//   out_dir: runs/studies/NAME          # where the cells, table.md, results.json and plot.svg go
//   base: ../shakespeare-char-cpu.yaml  # optional train config file (relative to this file)
//   train: {...}                        # optional train-config keys over the base, for every cell
//   seeds: [1337, 1338]                 # each variant (and budget) runs once per seed
//   baseline: NAME                      # the variant the others are compared with (default: the first)
//   budgets: [1e11, 3e11]               # optional compute per cell; max_iters follows from it
//   budget_unit: flops                  # flops (training FLOPs, models/gpt-cost.ts) or tokens
//   schedule_to_budget: true            # with budgets: the cosine ends at each cell's last step, warmup ≤ 10% of it
//   fit: true                           # fit L(N) = a·N^(−α) + c and the compute-optimal frontier, draw plot.svg
//   variants:
//     - name: L2-C64
//       set: {model: {n_layer: 2, n_embd: 64}}   # train-config keys (sectioned or nanoGPT's flat names)
import { dirname, join, resolve } from 'node:path';
import { gptCost, type GPTCost } from '../models/gpt-cost.js';
import { validateGPTConfig } from '../models/gpt.js';
import { objectLayer, readConfigFile, resolveConfigWithAliases, type FlagLayer, type ObjectLayer } from '../util/config.js';
import { UserError } from '../util/errors.js';
import { readMeta } from './run-dir.js';
import { TRAIN_ALIASES, trainSpec, type TrainConfig } from './train-config.js';

export type BudgetUnit = 'flops' | 'tokens';

export interface StudyCell {
  variant: string;
  /** The cell's budget (in budget_unit), or null for a study without budgets. */
  budget: number | null;
  seed: number;
  /** The cell's run directory. */
  dir: string;
  config: TrainConfig;
  cost: GPTCost;
  tokensPerStep: number;
}

export interface StudyPlan {
  file: string;
  name: string;
  outDir: string;
  seeds: number[];
  baseline: string;
  variants: string[];
  budgets: number[] | null;
  budgetUnit: BudgetUnit;
  fit: boolean;
  cells: StudyCell[];
}

const STUDY_KEYS = ['out_dir', 'base', 'train', 'seeds', 'baseline', 'budgets', 'budget_unit', 'schedule_to_budget', 'fit', 'variants'];

/** A budget as a directory name and table label: 3e+11 → "3e11", 250000 → "2.5e5". */
export function budgetLabel(b: number): string {
  return b.toExponential().replace('+', '').replace(/\.?0+e/, 'e');
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads a study file and expands it into cells; `flags` (`--key=value` train overrides) apply to every cell. */
export function readStudyPlan(file: string, options: { flags?: FlagLayer; outDir?: string } = {}): StudyPlan {
  const layer = readConfigFile(file);
  const where = (path: string[]): string => {
    const line = layer.lineOf?.(path);
    return line === undefined ? file : `${file}: line ${line}`;
  };
  const fail = (path: string[], want: string, got?: unknown): never => {
    throw new UserError(`${where(path)}: ${path.join('.')}: expected ${want}${got === undefined ? '' : `, got ${JSON.stringify(got)}`}`);
  };
  const data = layer.data as Record<string, unknown>;
  for (const k of Object.keys(data)) if (!STUDY_KEYS.includes(k)) throw new UserError(`${where([k])}: unknown key "${k}" (known keys: ${STUDY_KEYS.join(', ')})`);
  const dir = dirname(file);
  const outDir = options.outDir ?? (typeof data.out_dir === 'string' ? data.out_dir : fail(['out_dir'], 'a directory path (string)', data.out_dir));
  const seeds = data.seeds ?? [1337];
  if (!Array.isArray(seeds) || seeds.length === 0 || !seeds.every((s) => Number.isInteger(s)) || new Set(seeds).size !== seeds.length) {
    fail(['seeds'], 'a non-empty list of distinct integers', seeds);
  }
  const budgets = data.budgets ?? null;
  if (budgets !== null && (!Array.isArray(budgets) || budgets.length === 0 || !budgets.every((b) => typeof b === 'number' && b > 0) || new Set(budgets).size !== budgets.length)) {
    fail(['budgets'], 'a non-empty list of distinct positive numbers (or leave it out)', budgets);
  }
  const budgetUnit = data.budget_unit ?? 'flops';
  if (budgetUnit !== 'flops' && budgetUnit !== 'tokens') fail(['budget_unit'], 'flops or tokens', budgetUnit);
  const scheduleToBudget = data.schedule_to_budget ?? true;
  if (typeof scheduleToBudget !== 'boolean') fail(['schedule_to_budget'], 'a boolean', scheduleToBudget);
  const fit = data.fit ?? false;
  if (typeof fit !== 'boolean') fail(['fit'], 'a boolean', fit);
  const rawVariants = data.variants;
  if (!Array.isArray(rawVariants) || rawVariants.length === 0) fail(['variants'], 'a non-empty list of {name, set} mappings', rawVariants);
  const variants = (rawVariants as unknown[]).map((v, i) => {
    if (!isMapping(v) || typeof v.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(v.name)) {
      return fail(['variants'], `entry ${i} to be a mapping with a name of letters, digits, '.', '_' or '-' (it names a directory)`, v);
    }
    for (const k of Object.keys(v)) if (k !== 'name' && k !== 'set') fail(['variants'], `entry ${i} (${v.name}) to have only name and set, not ${k}`);
    if (v.set !== undefined && !isMapping(v.set)) fail(['variants'], `entry ${i} (${v.name}): set to be a mapping of train-config keys`, v.set);
    return { name: v.name, set: (v.set ?? {}) as Record<string, unknown> };
  });
  const names = variants.map((v) => v.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) fail(['variants'], `distinct names (${dup} appears twice)`);
  const baseline = data.baseline ?? names[0]!;
  if (typeof baseline !== 'string' || !names.includes(baseline)) fail(['baseline'], `one of the variant names (${names.join(', ')})`, baseline);
  if (fit && names.length < 3) fail(['fit'], 'at least 3 variants (shapes) to fit L(N)');
  if (data.train !== undefined && !isMapping(data.train)) fail(['train'], 'a mapping of train-config keys', data.train);

  const baseLayer: ObjectLayer | undefined = typeof data.base === 'string' ? readConfigFile(resolve(dir, data.base)) : data.base === undefined ? undefined : fail(['base'], 'a train config file path', data.base);
  const trainLayer: ObjectLayer = { kind: 'object', source: `${file} (train)`, data: data.train ?? {}, lineOf: (p) => layer.lineOf?.(['train', ...p]) };
  const cells: StudyCell[] = [];
  const budgetList: (number | null)[] = budgets === null ? [null] : (budgets as number[]);
  for (const v of variants) {
    const variantLayer = objectLayer(v.set, `${file} (variant ${v.name})`);
    for (const budget of budgetList) {
      for (const seed of seeds as number[]) {
        const cellDir = join(outDir, v.name, ...(budget === null ? [] : [`${budgetUnit === 'flops' ? 'C' : 'D'}${budgetLabel(budget)}`]), `seed-${seed}`);
        const c = resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, baseLayer, trainLayer, variantLayer, options.flags);
        c.seed = seed;
        c.out_dir = cellDir;
        const vocab = c.model.vocab_size ?? readMeta(c.data.dir, `the study's data.dir; prepare it first (lmforge prepare)`).vocab_size;
        const model = { ...c.model, vocab_size: vocab };
        try {
          validateGPTConfig(model);
        } catch (e) {
          throw new UserError(`${file}: variant ${v.name}: ${(e as Error).message.replace(/^GPT config: /, 'model.')}`);
        }
        const cost = gptCost(model);
        const tokensPerStep = c.data.batch_size * c.model.block_size * c.gradient_accumulation_steps;
        if (budget !== null) {
          const perStep = budgetUnit === 'flops' ? cost.flopsPerToken * tokensPerStep : tokensPerStep;
          c.max_iters = Math.max(1, Math.round(budget / perStep));
          if (scheduleToBudget) {
            c.optim.lr_decay_iters = c.max_iters;
            c.optim.warmup_iters = Math.min(c.optim.warmup_iters, Math.floor(c.max_iters / 10));
          }
        }
        cells.push({ variant: v.name, budget, seed, dir: cellDir, config: c, cost, tokensPerStep });
      }
    }
  }
  const name = outDir.replace(/\/+$/, '').split('/').pop() ?? outDir;
  return { file, name, outDir, seeds: seeds as number[], baseline: baseline as string, variants: names, budgets: budgets as number[] | null, budgetUnit: budgetUnit as BudgetUnit, fit: fit as boolean, cells };
}
