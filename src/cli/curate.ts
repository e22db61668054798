// `lmforge curate`: runs the data curation pipeline of one config file (YAML or JSON) for one rank of a job array.
// Wiring only: parsing flags, resolving rank/world size (flags, then Slurm / Kubernetes indexed-job variables),
// and printing; the stages live in src/data/pipeline.ts. Bad input surfaces as UserError (one clean line).
import { Command, InvalidArgumentError, Option } from 'commander';
import { STAGES, loadConfig } from '../data/config.js';
import type { StageName } from '../data/config.js';
import { collectReports, runStages } from '../data/pipeline.js';
import { formatReport } from '../data/report.js';
import { UserError } from '../util/errors.js';
import { intFlag } from './flags.js';

/** Non-negative integers only: "", "0x10", "1.5" and "Infinity" are refused (Number() would take several). */
const nonNegativeInt = (name: string): ((v: string) => number) => intFlag(name, 0);

function stageList(v: string): StageName[] {
  const list = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const s of list) {
    if (!(STAGES as readonly string[]).includes(s)) throw new InvalidArgumentError(`unknown stage "${s}" (stages: ${STAGES.join(', ')})`);
  }
  return list as StageName[];
}

export interface CurateFlags {
  config: string;
  rank?: number;
  worldSize?: number;
  limit?: number;
  dryRun?: boolean;
  stages?: StageName[];
  report?: boolean;
  json?: boolean;
}

/** Rank and world size: flags win; else SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX (+ LMFORGE_WORLD_SIZE). */
export function resolveRank(flags: CurateFlags, env: NodeJS.ProcessEnv = process.env): { rank: number; worldSize: number } {
  const envRank = env.SLURM_ARRAY_TASK_ID ?? env.JOB_COMPLETION_INDEX;
  const envWorld = env.SLURM_ARRAY_TASK_COUNT ?? env.LMFORGE_WORLD_SIZE;
  const rank = flags.rank ?? (envRank !== undefined ? Number(envRank) - Number(env.SLURM_ARRAY_TASK_MIN ?? 0) : 0);
  const worldSize = flags.worldSize ?? (envWorld !== undefined ? Number(envWorld) : 1);
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new UserError(`--world-size must be a positive integer, got ${worldSize}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new UserError(`--rank must be in [0, ${worldSize - 1}], got ${rank}`);
  return { rank, worldSize };
}

export async function curate(flags: CurateFlags, log: (line: string) => void = (l) => console.log(l)): Promise<void> {
  const cfg = loadConfig(flags.config);
  if (flags.report) {
    const all: Record<string, unknown> = {};
    for (const s of STAGES) {
      const r = collectReports(cfg, s);
      if (!r) continue;
      all[s] = r;
      if (!flags.json) log(formatReport(r));
    }
    if (flags.json) log(JSON.stringify(all, null, 2));
    return;
  }
  const { rank, worldSize } = resolveRank(flags);
  const stages = flags.stages ?? cfg.stages;
  const reports = await runStages(cfg, stages, { rank, worldSize, limit: flags.limit ?? null, dryRun: flags.dryRun ?? false, log: flags.json ? () => {} : log });
  if (flags.json) log(JSON.stringify(reports, null, 2));
}

export function register(program: Command): void {
  program
    .command('curate')
    .description(
      'Curate training data: read text/JSONL(.gz)/CSV/Parquet sources, clean, filter (Gopher, C4, FineWeb, language, ' +
        'harmful terms), score with a Kneser-Ney LM, scrub PII, deduplicate (exact + MinHash-LSH) and mix sources ' +
        'by temperature, writing JSONL.gz shards and per-stage reports under the config\'s output directory.',
    )
    .requiredOption('-c, --config <file>', 'curation config (YAML or JSON); see configs/curate-*.yaml')
    .addOption(new Option('--rank <n>', 'this task\'s index in a job array (default: $SLURM_ARRAY_TASK_ID, $JOB_COMPLETION_INDEX or 0)').argParser(nonNegativeInt('--rank')))
    .addOption(new Option('--world-size <n>', 'number of tasks (default: $SLURM_ARRAY_TASK_COUNT, $LMFORGE_WORLD_SIZE or 1)').argParser(nonNegativeInt('--world-size')))
    .addOption(new Option('--limit <n>', 'read at most n documents per input file (try a config on a sample)').argParser(nonNegativeInt('--limit')))
    .option('--dry-run', 'run the filter chain on a sample (1000 documents per file unless --limit) and print the report; write nothing')
    .addOption(new Option('--stages <list>', `comma-separated stages to run (default: the config's stages); any of ${STAGES.join(', ')}`).argParser(stageList))
    .option('--report', 'print the merged reports of every stage run so far and exit')
    .option('--json', 'print reports as JSON instead of tables')
    .addHelpText(
      'after',
      '\nStages run in order; map stages (filter, dedup-signature, dedup-bucket, dedup-filter, mix) split their shards\n' +
        'by rank, so run each stage for every rank (e.g. a Slurm array) before the next. dedup-cluster and\n' +
        'train-scorer run on rank 0. Finished shards are skipped on a re-run (completion markers).\n\n' +
        'Example:\n  lmforge curate --config configs/curate-example.yaml --dry-run\n' +
        '  lmforge curate --config my.yaml --stages train-scorer\n' +
        '  for s in filter dedup-signature dedup-bucket dedup-cluster dedup-filter mix; do\n' +
        '    sbatch --wait --array=0-7 --wrap "lmforge curate -c my.yaml --stages $s"; done   # rank/size from Slurm',
    )
    .action(async (opts: Omit<CurateFlags, 'config'> & { config: string }) => {
      await curate(opts);
    });
}
