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
//   grid:                               # an ablation grid (with or instead of variants): every combination of
//     model.position: [learned, rope]   #   these values is a variant, named like position-rope_mlp-gelu; the
//     model.mlp: [gelu, swiglu]         #   baseline is the combination the base config itself has (else a
//                                       #   variant "base" with no changes is added)
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
  /** The ablation grid's keys and values (null without a grid). */
  grid: { key: string; values: GridValue[] }[] | null;
  /** Each variant's train-config changes over the base, as dotted keys (for tables and reports). */
  changes: Record<string, Record<string, unknown>>;
  cells: StudyCell[];
}

export type GridValue = string | number | boolean;

const STUDY_KEYS = ['out_dir', 'base', 'train', 'seeds', 'baseline', 'budgets', 'budget_unit', 'schedule_to_budget', 'fit', 'variants', 'grid'];

/** A budget as a directory name and table label: 3e+11 → "3e11", 250000 → "2.5e5". */
export function budgetLabel(b: number): string {
  return b.toExponential().replace('+', '').replace(/\.?0+e/, 'e');
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A dotted key path ("model.n_layer", or a flat alias like "learning_rate") as a nested mapping holding `value`. */
function nestedSet(key: string, value: unknown): Record<string, unknown> {
  const path = (TRAIN_ALIASES[key] ?? key).split('.');
  return path.reduceRight<Record<string, unknown>>((inner, k, i) => ({ [k]: i === path.length - 1 ? value : inner }), {});
}

function lookupPath(o: unknown, key: string): unknown {
  return (TRAIN_ALIASES[key] ?? key).split('.').reduce<unknown>((v, k) => (isMapping(v) ? v[k] : undefined), o);
}

/** Nested mappings flattened to dotted keys. */
function flatten(o: Record<string, unknown>, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    const key = prefix ? `${prefix}.${k}` : (TRAIN_ALIASES[k] ?? k);
    if (isMapping(v)) Object.assign(out, flatten(v, key));
    else out[key] = v;
  }
  return out;
}

/** A grid value as part of a variant (directory) name: 0.003 → "0.003", "rope" → "rope", other characters → "-". */
const valueLabel = (v: GridValue): string => String(v).replace(/[^A-Za-z0-9.]/g, '-');

/** Reads a study file and expands it into cells; `flags` (`--key=value` train overrides) apply to every cell. */
export function readStudyPlan(file: string, options: { flags?: FlagLayer; outDir?: string } = {}): StudyPlan {
  return studyPlanFromLayer(readConfigFile(file), options);
}

/**
 * Expands a study (a file's layer, or one built in memory by `lmforge ablate`, whose source names it and whose
 * `base` is relative to the source's folder) into cells.
 */
export function studyPlanFromLayer(layer: ObjectLayer, options: { flags?: FlagLayer; outDir?: string } = {}): StudyPlan {
  const file = layer.source;
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
  const rawVariants = data.variants ?? (data.grid === undefined ? undefined : []);
  if (!Array.isArray(rawVariants) || (rawVariants.length === 0 && data.grid === undefined)) fail(['variants'], 'a non-empty list of {name, set} mappings (or a grid)', rawVariants);
  const variants = (rawVariants as unknown[]).map((v, i) => {
    if (!isMapping(v) || typeof v.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(v.name)) {
      return fail(['variants'], `entry ${i} to be a mapping with a name of letters, digits, '.', '_' or '-' (it names a directory)`, v);
    }
    for (const k of Object.keys(v)) if (k !== 'name' && k !== 'set') fail(['variants'], `entry ${i} (${v.name}) to have only name and set, not ${k}`);
    if (v.set !== undefined && !isMapping(v.set)) fail(['variants'], `entry ${i} (${v.name}): set to be a mapping of train-config keys`, v.set);
    return { name: v.name, set: (v.set ?? {}) as Record<string, unknown> };
  });
  if (data.train !== undefined && !isMapping(data.train)) fail(['train'], 'a mapping of train-config keys', data.train);
  const baseLayer: ObjectLayer | undefined = typeof data.base === 'string' ? readConfigFile(resolve(dir, data.base)) : data.base === undefined ? undefined : fail(['base'], 'a train config file path', data.base);
  const trainLayer: ObjectLayer = { kind: 'object', source: `${file} (train)`, data: data.train ?? {}, lineOf: (p) => layer.lineOf?.(['train', ...p]) };

  // The grid: every combination of its values is a variant; the baseline is the base config's own combination.
  let grid: StudyPlan['grid'] = null;
  let gridBaseline: string | null = null;
  if (data.grid !== undefined) {
    if (!isMapping(data.grid) || Object.keys(data.grid).length === 0) fail(['grid'], 'a mapping of train-config keys (like model.n_layer) to lists of values', data.grid);
    grid = Object.entries(data.grid as Record<string, unknown>).map(([key, values]) => {
      if (!Array.isArray(values) || values.length === 0 || !values.every((x) => ['string', 'number', 'boolean'].includes(typeof x)) || new Set(values).size !== values.length) {
        return fail(['grid', key], 'a non-empty list of distinct values (numbers, strings or booleans)', values);
      }
      return { key, values: values as GridValue[] };
    });
    const base = resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, baseLayer, trainLayer, options.flags);
    for (const g of grid) if (lookupPath(base, g.key) === undefined) fail(['grid', g.key], `a train-config key (see lmforge train --help)`, g.key);
    const combos = grid.reduce<{ values: GridValue[] }[]>((acc, g) => acc.flatMap((c) => g.values.map((v) => ({ values: [...c.values, v] }))), [{ values: [] }]);
    const baseValues = grid.map((g) => lookupPath(base, g.key));
    const leaf = (key: string): string => (TRAIN_ALIASES[key] ?? key).split('.').pop()!;
    const gridVariants = combos.map((c) => ({
      name: c.values.map((v, i) => `${leaf(grid![i]!.key)}-${valueLabel(v)}`).join('_'),
      set: c.values.reduce<Record<string, unknown>>((set, v, i) => mergeDeep(set, nestedSet(grid![i]!.key, v)), {}),
      isBase: c.values.every((v, i) => v === baseValues[i]),
    }));
    gridBaseline = gridVariants.find((v) => v.isBase)?.name ?? null;
    if (gridBaseline === null) {
      variants.push({ name: 'base', set: {} });
      gridBaseline = 'base';
    }
    variants.push(...gridVariants.map(({ name, set }) => ({ name, set })));
  }
  const names = variants.map((v) => v.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) fail(['variants'], `distinct names (${dup} appears twice)`);
  const baseline = data.baseline ?? gridBaseline ?? names[0]!;
  if (typeof baseline !== 'string' || !names.includes(baseline)) fail(['baseline'], `one of the variant names (${names.join(', ')})`, baseline);
  if (fit && names.length < 3) fail(['fit'], 'at least 3 variants (shapes) to fit L(N)');
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
  const changes = Object.fromEntries(variants.map((v) => [v.name, flatten(v.set)]));
  return { file, name, outDir, seeds: seeds as number[], baseline: baseline as string, variants: names, budgets: budgets as number[] | null, budgetUnit: budgetUnit as BudgetUnit, fit: fit as boolean, grid, changes, cells };
}

function mergeDeep(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = isMapping(v) && isMapping(out[k]) ? mergeDeep(out[k], v) : v;
  return out;
}
