// The recipe page of a pipeline's version (recipe.md beside the comparison report): every stage with its kind, what
// it reads, its key and output, then what the curate, sft and eval stages found, read from their own output files.
// The comparison report (report/compare.ts) compares the registered runs; this page is the rest of the recipe.
// Written by pipeline-run.ts; it reads finished stage outputs only and runs nothing.
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { PipelinePlan } from './pipeline-plan.js';

export const RECIPE_MD = 'recipe.md';

/** A finished (or cached) stage as the page needs it. */
export interface RecipeStage {
  stage: string;
  kind: string;
  key: string;
  out: string;
}

function readJson(path: string): unknown {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch {
    return null; // a damaged file: the page says nothing about it rather than failing the pipeline
  }
}

const int = (n: unknown): string => (typeof n === 'number' ? n.toLocaleString('en-US') : '?');
const shown = (p: string): string => {
  const r = relative(process.cwd(), p);
  return r.startsWith('..') ? p : r;
};

interface CurateReport {
  documents?: { in?: number; out?: number };
  bytes?: { in?: number; out?: number };
  reports?: Record<string, { steps?: Record<string, { removed?: Record<string, { docs?: number }> }> }>;
}

interface EvalReport {
  results?: { task?: string; metrics?: Record<string, { value?: number | null }> }[];
}

/** The page's Markdown. `version` is name@vN (null before registration); `parent` its parent version. */
export function recipeMarkdown(plan: PipelinePlan, stages: RecipeStage[], version: string | null, parent: string | null): string {
  const byName = new Map(stages.map((s) => [s.stage, s]));
  const lines = [`# ${version ?? plan.name}: the recipe (${plan.file})`, ''];
  lines.push(`Parent: ${parent ?? 'none'}. The version is the run of stage ${plan.register}${byName.get(plan.register) ? ` (${shown(byName.get(plan.register)!.out)})` : ''}.`, '');
  lines.push('| stage | kind | reads | key | output |', '|---|---|---|---|---|');
  for (const s of plan.stages) {
    const o = byName.get(s.name);
    lines.push(`| ${s.name} | ${s.kind} | ${s.needs.join(', ') || '-'} | ${o ? o.key.slice(0, 12) : '-'} | ${o ? shown(o.out) : '-'} |`);
  }
  const curates = stages.filter((s) => s.kind === 'curate');
  if (curates.length) {
    lines.push('', '## Curation', '');
    for (const s of curates) {
      const r = readJson(join(s.out, 'curate-report.json')) as CurateReport | null;
      if (!r) continue;
      const removed = new Map<string, number>();
      for (const rep of Object.values(r.reports ?? {})) {
        for (const step of Object.values(rep.steps ?? {})) for (const [why, c] of Object.entries(step.removed ?? {})) removed.set(why, (removed.get(why) ?? 0) + (c.docs ?? 0));
      }
      const why = [...removed].map(([k, n]) => `${k} ${int(n)}`).join(', ') || 'nothing';
      lines.push(`- ${s.stage}: kept ${int(r.documents?.out)} of ${int(r.documents?.in)} documents (${int(r.bytes?.out)} of ${int(r.bytes?.in)} bytes); removed: ${why}. Per filter: ${shown(join(s.out, 'curate-report.txt'))}`);
    }
  }
  const sfts = stages.filter((s) => s.kind === 'sft');
  if (sfts.length) {
    lines.push('', '## Alignment', '');
    for (const s of sfts) {
      const r = readJson(join(s.out, 'report.json')) as Record<string, unknown> | null;
      const from = plan.stages.find((x) => x.name === s.stage)?.needs.join(', ') ?? '?';
      const loss = (x: unknown): string => (typeof x === 'number' ? x.toFixed(3) : 'n/a');
      lines.push(`- ${s.stage} (sft from ${from}): ${int(r?.steps)} steps on ${int(r?.conversations)} conversations; validation loss on assistant tokens ${loss(r?.val_loss_before)} → ${loss(r?.val_loss_after)}; chat model ${shown(s.out)}`);
    }
  }
  const evals = stages.filter((s) => s.kind === 'eval');
  if (evals.length) {
    lines.push('', '## Evaluations', '', '| stage | model of stage | task | metric | value |', '|---|---|---|---|---|');
    for (const s of evals) {
      const r = readJson(join(s.out, 'report.json')) as EvalReport | null;
      const model = plan.stages.find((x) => x.name === s.stage)?.fields.model;
      const of = typeof model === 'string' ? (/^\$\{([^}]+)\}/.exec(model)?.[1] ?? model) : '?';
      for (const res of r?.results ?? []) {
        for (const [metric, v] of Object.entries(res.metrics ?? {})) {
          lines.push(`| ${s.stage} | ${of} | ${res.task ?? '?'} | ${metric} | ${typeof v.value === 'number' ? v.value.toFixed(4) : 'n/a'} |`);
        }
      }
    }
  }
  return lines.join('\n') + '\n';
}
