// Evaluation reports: the JSON document (every metric with its stderr, per subset and group, the run's config,
// the model's identity) and the readable table in lm-eval's layout (task, version, n-shot, metric, value, ± stderr).
// Not scoring (harness.ts).
import type { TaskResult } from './harness.js';
import type { ModelIdentity } from './model.js';

export interface EvalReport {
  lmforge_eval: 1;
  created: string;
  model: ModelIdentity;
  config: Record<string, unknown>;
  results: Omit<TaskResult, 'samples'>[];
}

export function makeReport(model: ModelIdentity, config: Record<string, unknown>, results: readonly TaskResult[]): EvalReport {
  return {
    lmforge_eval: 1,
    created: new Date().toISOString(),
    model,
    config,
    results: results.map((r) => {
      const { samples: _samples, ...rest } = r;
      return rest;
    }),
  };
}

function fmt(x: number | null): string {
  if (x === null || Number.isNaN(x)) return 'N/A';
  return Math.abs(x) >= 1000 ? x.toFixed(2) : x.toFixed(4);
}

/** A Markdown table like lm-eval's: one row per (task, metric); subsets and groups indented under their task. */
export function formatTable(results: readonly TaskResult[]): string {
  const rows: string[][] = [];
  const add = (name: string, version: string, shots: string, metrics: TaskResult['metrics']): void => {
    let first = true;
    for (const [m, v] of Object.entries(metrics)) {
      rows.push([first ? name : '', first ? version : '', first ? shots : '', m, fmt(v.value), '±', fmt(v.stderr)]);
      first = false;
    }
  };
  for (const r of results) {
    add(r.task, String(r.version), String(r.nShot), r.metrics);
    for (const [g, m] of Object.entries(r.groups ?? {})) add(` - ${g}`, '', String(r.nShot), m);
    for (const [s, m] of Object.entries(r.subsets ?? {})) add(`  - ${s}`, String(r.version), String(r.nShot), m);
  }
  const header = ['Tasks', 'Version', 'n-shot', 'Metric', 'Value', '', 'Stderr'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => '|' + cells.map((c, i) => (i === 4 || i === 6 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('|') + '|';
  const rule = '|' + widths.map((w, i) => (i === 4 || i === 6 ? '-'.repeat(Math.max(1, w - 1)) + ':' : '-'.repeat(w))).join('|') + '|';
  return [line(header), rule, ...rows.map(line)].join('\n') + '\n';
}
