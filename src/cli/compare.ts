// `lmforge compare A B [--out DIR]`: the version report between two runs — config and data diffs, loss curves
// overlaid, evaluation deltas with 95% intervals, samples side by side from the same prompts and seed — written as
// Markdown, self-contained HTML (Chart.js inlined) and JSON. The report itself: src/report/compare.ts.
import { existsSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { Registry, registryPath } from '../registry/registry.js';
import { DEFAULT_SAMPLES, writeComparisonReport } from '../report/compare.js';
import { UserError } from '../util/errors.js';
import { intFlag, numberFlag } from './flags.js';

interface CompareCliOptions {
  out?: string;
  prompt?: string[];
  maxNewTokens: number;
  temperature: number;
  topK: number;
  seed: number;
  samples: boolean;
  evalA?: string[];
  evalB?: string[];
  registry?: string;
}

/** A version argument: a run directory, or what the registry resolves (name@vN, a run name, a tag). */
function resolveVersion(arg: string, registryFlag?: string): { dir: string; label: string } {
  if (existsSync(arg)) return { dir: arg, label: basename(resolve(arg)) };
  const db = registryPath(registryFlag);
  if (!existsSync(db)) throw new UserError(`${arg}: no such run directory, and no registry at ${db} to look it up in (give a run directory, or name@vN with --registry)`);
  const reg = Registry.open(db);
  try {
    const { run, version } = reg.resolve(arg);
    return { dir: run.path, label: version?.id ?? run.name };
  } finally {
    reg.close();
  }
}

export function register(program: Command): void {
  program
    .command('compare')
    .description('version report between two runs: config and data diffs, loss curves, eval deltas with intervals, samples side by side (Markdown + HTML)')
    .argument('<A>', 'the earlier version: a run directory, or name@vN / a run name / a tag from the registry')
    .argument('<B>', 'the later version (the same forms)')
    .option('--registry <file>', 'the registry database for name@vN arguments (default: $LMFORGE_REGISTRY or runs/registry.sqlite)')
    .option('--out <dir>', 'write compare.md, compare.html and compare.json here (default: runs/compare/A-vs-B)')
    .option('--prompt <text...>', `prompts for the side-by-side samples (default: ${DEFAULT_SAMPLES.prompts.map((p) => JSON.stringify(p)).join(', ')})`)
    .option('--max-new-tokens <n>', 'tokens per sample', intFlag('--max-new-tokens', 0), DEFAULT_SAMPLES.maxNewTokens)
    .option('--temperature <t>', 'sampling temperature (0 = greedy)', numberFlag('--temperature', 0, Infinity), DEFAULT_SAMPLES.temperature)
    .option('--top-k <k>', 'sample among the k most likely tokens (0 = all)', intFlag('--top-k', 0), DEFAULT_SAMPLES.topK)
    .option('--seed <n>', 'sampling seed, the same for both models', intFlag('--seed', -(2 ** 31), 2 ** 31 - 1), DEFAULT_SAMPLES.seed)
    .option('--no-samples', 'skip the side-by-side samples (no models are loaded)')
    .option('--eval-a <files...>', "evaluation reports (lmforge eval --output) for A besides those in A's run directory and its eval/")
    .option('--eval-b <files...>', 'the same for B')
    .action((A: string, B: string, o: CompareCliOptions) => {
      const a = resolveVersion(A, o.registry);
      const b = resolveVersion(B, o.registry);
      const out = o.out ?? `runs/compare/${a.label}-vs-${b.label}`;
      if (o.samples) useNativeBackendOrWarn();
      const r = writeComparisonReport(a.dir, b.dir, out, {
        labels: [a.label, b.label], evalsA: o.evalA ?? [], evalsB: o.evalB ?? [],
        samples: o.samples ? { prompts: o.prompt ?? DEFAULT_SAMPLES.prompts, maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, seed: o.seed } : null,
      });
      const c = r.comparison;
      console.log(`${c.a.label} → ${c.b.label}: ${c.config.length} config keys differ, ${c.data.length} data differences, ${c.evals.length} eval metrics compared (${c.evals.filter((e) => e.significant).length} significant at 95%)`);
      for (const f of c.final) console.log(`  ${f.metric}: ${f.a?.toFixed(4) ?? 'n/a'} → ${f.b?.toFixed(4) ?? 'n/a'}`);
      console.log(`wrote ${r.markdown}, ${r.html}, ${r.json}`);
    });
}
