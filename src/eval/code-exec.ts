// The code_exec task type: functional correctness of generated code, HumanEval's way. Problems are HumanEval JSONL
// rows (task_id, prompt, canonical_solution, test, entry_point); each gets n completions (sampled by the model, read
// from a samples file, or the canonical solutions as a check of the problems themselves), each completion runs as
// prompt + completion + test + check(entry_point) in the sandbox, and pass@k is the unbiased estimator of Chen et
// al. (2021). Not the sandbox (sandbox.ts) and not the problem-set builder (src/data/code-problems.ts).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { readText } from './datasets.js';
import type { RunOptions, TaskResult } from './harness.js';
import { meanMetric } from './metrics.js';
import type { LanguageModel } from './model.js';
import { networkIsolation, runPythonMany, type SandboxStatus } from './sandbox.js';
import { CODE_DEFAULTS, type CodeSpec, type TaskSpec } from './task-spec.js';
import { UserError } from '../util/errors.js';

export interface CodeProblem {
  task_id: string;
  prompt: string;
  canonical_solution: string;
  test: string;
  entry_point: string;
  /** "file:line", for messages. */
  where: string;
}

export const PROBLEM_FIELDS = ['task_id', 'prompt', 'canonical_solution', 'test', 'entry_point'] as const;

function jsonlRows(path: string): { row: Record<string, unknown>; where: string }[] {
  const out: { row: Record<string, unknown>; where: string }[] = [];
  readText(path).split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${path}:${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new UserError(`${where}: malformed JSON line (${(e as Error).message})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UserError(`${where}: expected a JSON object per line`);
    out.push({ row: v as Record<string, unknown>, where });
  });
  return out;
}

/** Reads a HumanEval-format JSONL file (.gz too); a missing or non-string field names its line. */
export function readProblems(path: string): CodeProblem[] {
  const seen = new Set<string>();
  const problems = jsonlRows(path).map(({ row, where }) => {
    for (const f of PROBLEM_FIELDS) {
      if (!(f in row)) throw new UserError(`${where}: missing field ${f} (a HumanEval problem has ${PROBLEM_FIELDS.join(', ')})`);
      if (typeof row[f] !== 'string') throw new UserError(`${where}: field ${f} must be a string, got ${JSON.stringify(row[f])?.slice(0, 80)}`);
    }
    const p = { ...(row as Record<(typeof PROBLEM_FIELDS)[number], string>), where };
    if (!/^[A-Za-z_]\w*$/.test(p.entry_point)) throw new UserError(`${where}: field entry_point must be a Python identifier, got ${JSON.stringify(p.entry_point)}`);
    if (seen.has(p.task_id)) throw new UserError(`${where}: task_id ${JSON.stringify(p.task_id)} appears twice`);
    seen.add(p.task_id);
    return { task_id: p.task_id, prompt: p.prompt, canonical_solution: p.canonical_solution, test: p.test, entry_point: p.entry_point, where };
  });
  if (problems.length === 0) throw new UserError(`${path}: no problems (expected HumanEval JSONL: one object per line)`);
  return problems;
}

/** Samples in human-eval's format ({task_id, completion} per line), grouped by task_id in file order. */
export function readCompletions(path: string, problems: readonly CodeProblem[]): Map<string, string[]> {
  const known = new Set(problems.map((p) => p.task_id));
  const out = new Map<string, string[]>();
  for (const { row, where } of jsonlRows(path)) {
    for (const f of ['task_id', 'completion']) if (typeof row[f] !== 'string') throw new UserError(`${where}: field ${f} must be a string, got ${JSON.stringify(row[f])?.slice(0, 80)}`);
    const id = row.task_id as string;
    if (!known.has(id)) continue; // a sample of a problem outside --limit (or another problem file)
    out.set(id, [...(out.get(id) ?? []), row.completion as string]);
  }
  return out;
}

/**
 * Unbiased pass@k of one problem from n samples with c correct: 1 − C(n−c, k)/C(n, k), as the product
 * ∏_{i=n−c+1}^{n} (1 − k/i), which never forms the huge binomials. When n − c < k every k-subset holds a pass.
 */
export function passAtK(n: number, c: number, k: number): number {
  if (!(Number.isInteger(n) && Number.isInteger(c) && Number.isInteger(k)) || n < 1 || c < 0 || c > n || k < 1 || k > n) {
    throw new RangeError(`pass@k: expected integers 0 ≤ c ≤ n and 1 ≤ k ≤ n, got n=${n} c=${c} k=${k}`);
  }
  if (n - c < k) return 1;
  let fail = 1;
  for (let i = n - c + 1; i <= n; i++) fail *= 1 - k / i;
  return 1 - fail;
}

/** The program HumanEval runs for one completion. */
export function programOf(problem: CodeProblem, completion: string): string {
  return `${problem.prompt}${completion}\n\n${problem.test}\n\ncheck(${problem.entry_point})\n`;
}

/** Where completions come from: the model's sampling, a samples file, or the problems' canonical solutions. */
export type CompletionSource = { kind: 'model'; model: LanguageModel } | { kind: 'file'; path: string } | { kind: 'canonical' };

export interface CodeRunOptions extends RunOptions {
  completions: CompletionSource;
  /** Replaces the task's data path (a HumanEval JSONL file, relative to the working directory). */
  dataFile?: string;
  /** Overrides of the task's code section. */
  code?: Partial<CodeSpec>;
}

export interface ProblemResult {
  task_id: string;
  where: string;
  n: number;
  passed: number;
  results: { completion: string; status: SandboxStatus; reason: string }[];
}

/** Runs a code_exec task: completions, sandboxed execution, pass@k for each pass@k metric with k ≤ n. */
export async function runCodeExec(spec: TaskSpec, options: CodeRunOptions): Promise<TaskResult> {
  const started = performance.now();
  const code: CodeSpec = { ...CODE_DEFAULTS, ...spec.code, ...options.code };
  const path = options.dataFile ?? join(options.dataDir, spec.data.path);
  const problems = readProblems(path).slice(0, options.limit ?? Infinity);
  const src = options.completions;
  let completions: string[][];
  if (src.kind === 'canonical') completions = problems.map((p) => [p.canonical_solution]);
  else if (src.kind === 'file') {
    const byId = readCompletions(src.path, problems);
    completions = problems.map((p) => {
      const c = byId.get(p.task_id);
      if (!c) throw new UserError(`${src.path}: no completion for task_id ${JSON.stringify(p.task_id)} (${p.where})`);
      return c;
    });
  } else {
    completions = problems.map((p, i) => {
      const [rows] = src.model.sampleUntil([{ context: p.prompt, stop: code.stop, maxTokens: code.max_tokens, n: code.samples, temperature: code.temperature, topP: code.top_p, seed: code.seed + i * code.samples }]);
      options.onProgress?.(i + 1, problems.length);
      return rows!;
    });
  }
  // A missing interpreter would fail every program alike: say so once instead.
  const probe = spawnSync(code.python, ['-c', 'import resource'], { stdio: 'ignore', timeout: 30_000 });
  if (probe.status !== 0) throw new UserError(`task ${spec.task}: field code.python = ${code.python} does not run (${probe.error?.message ?? `exit status ${probe.status}`}); expected a Python 3 interpreter`);
  const programs = problems.flatMap((p, i) => completions[i]!.map((c) => programOf(p, c)));
  const sandbox = { python: code.python, timeoutS: code.timeout_s, memoryMb: code.memory_mb, concurrency: code.concurrency };
  const outcomes = await runPythonMany(programs, { ...sandbox, ...(src.kind !== 'model' && options.onProgress ? { onDone: options.onProgress } : {}) });
  let at = 0;
  const perProblem: ProblemResult[] = problems.map((p, i) => {
    const results = completions[i]!.map((completion) => {
      const o = outcomes[at++]!;
      return { completion, status: o.status, reason: o.reason };
    });
    return { task_id: p.task_id, where: p.where, n: results.length, passed: results.filter((r) => r.status === 'passed').length, results };
  });
  const nMin = Math.min(...perProblem.map((r) => r.n));
  const metrics: TaskResult['metrics'] = {};
  // As in human-eval: pass@k is reported only where every problem has at least k samples.
  for (const m of spec.metrics) {
    const k = Number(m.slice('pass@'.length));
    if (k <= nMin) metrics[m] = meanMetric(perProblem.map((r) => passAtK(r.n, r.passed, k)));
  }
  const statuses: Record<string, number> = {};
  for (const o of outcomes) statuses[o.status] = (statuses[o.status] ?? 0) + 1;
  const skipped = spec.metrics.filter((m) => !(m in metrics));
  return {
    task: spec.task, version: spec.version, nShot: 0, n: problems.length, metrics,
    details: {
      problems: path, completions: src.kind === 'file' ? src.path : src.kind, samples_per_problem: nMin === Math.max(...perProblem.map((r) => r.n)) ? nMin : `${nMin}..${Math.max(...perProblem.map((r) => r.n))}`,
      ...(src.kind === 'model' ? { temperature: code.temperature, top_p: code.top_p, max_tokens: code.max_tokens, stop: code.stop, seed: code.seed } : {}),
      sandbox: { python: code.python, timeout_s: code.timeout_s, memory_mb: code.memory_mb, concurrency: code.concurrency, network: networkIsolation(code.python) },
      statuses, ...(skipped.length > 0 ? { not_reported: `${skipped.join(', ')}: fewer than k samples per problem` } : {}),
    },
    samples: perProblem.map((r, i) => ({ doc_id: i, ...r, ...Object.fromEntries(Object.keys(metrics).map((m) => [m, passAtK(r.n, r.passed, Number(m.slice(5)))])) })),
    seconds: (performance.now() - started) / 1000,
  };
}
