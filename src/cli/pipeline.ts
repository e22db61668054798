// `lmforge pipeline run FILE [--dry-run] [--json]`: runs a model version's whole recipe (data and its curation →
// tokenizer → train → alignment → eval) as a graph of cached stages, registers the trained run as the next version
// with its parent and writes the comparison report and the recipe page. The file format: src/cli/pipeline-plan.ts;
// the examples: configs/pipeline/.
import type { Command } from 'commander';
import { DEFAULT_REGISTRY_PATH, REGISTRY_ENV, registryPath } from '../registry/registry.js';
import { readPipeline, STAGE_KINDS } from './pipeline-plan.js';
import { runPipeline } from './pipeline-run.js';

export function register(program: Command): void {
  const cmd = program.command('pipeline').description('run a model version\'s recipe as cached stages, register it with its parent, compare with the parent');
  cmd.command('run <file>')
    .description(`run the stages (${STAGE_KINDS.join(', ')}) whose inputs, config or code changed (the rest are cached), register the version, write the comparison report and recipe.md`)
    .option('--dry-run', 'say which stages would run; run nothing')
    .option('--registry <file>', `registry database (default: $${REGISTRY_ENV} or ${DEFAULT_REGISTRY_PATH})`)
    .option('--json', 'print the outcome as JSON at the end')
    .action(async (file: string, o: { dryRun?: boolean; registry?: string; json?: boolean }) => {
      const plan = readPipeline(file);
      const r = await runPipeline(plan, { registryPath: registryPath(o.registry), dryRun: o.dryRun ?? false, log: (l) => process.stderr.write(`pipeline: ${l}\n`) });
      const ran = r.stages.filter((s) => s.status === 'ran' || s.status === 'resumed').map((s) => s.stage);
      process.stdout.write(`${r.version ?? plan.name}: ${o.dryRun ? `would run ${r.stages.filter((s) => s.status === 'would run').map((s) => s.stage).join(', ') || 'nothing'}` : ran.length ? `ran ${ran.join(', ')}` : 'every stage cached'}; ${r.register === 'ran' ? `registered ${r.version}` : r.register === 'cached' ? 'version already registered' : 'not registered (dry run)'}${r.report ? `; report ${r.report.path}` : ''}\n`);
      if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    });
}
