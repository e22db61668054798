// Builds the HumanEval-format problem set of held-out Python code (src/data/code-problems.ts) and keeps only the
// problems whose canonical solution passes in the sandbox and whose stub body (raise NotImplementedError) fails, so
// every test really calls the function. Usage (after `npx tsc -p .`):
//   node scripts/code-problems.mjs [--out=data/code-problems] [--timeout=20] [--concurrency=2]
// Writes OUT/problems.jsonl (task_id, prompt, canonical_solution, test, entry_point, source) and OUT/report.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultRoots, extractProblems, HELD_OUT_RULE, verifyProblems } from '../dist/src/data/code-problems.js';
import { networkIsolation, runPythonMany } from '../dist/src/eval/sandbox.js';
import { programOf } from '../dist/src/eval/code-exec.js';

const flag = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const out = flag('out', 'data/code-problems');
const timeoutS = Number(flag('timeout', '20'));
const concurrency = Number(flag('concurrency', '2'));
const roots = defaultRoots();
const { problems, drops, files } = extractProblems(roots);
console.log(`code-problems: ${files} held-out files (${Object.entries(roots).map(([k, v]) => `${k} ${v.length}`).join(', ')}); ${problems.length} functions with doctest examples; left out before running: ${JSON.stringify(drops)}`);
let last = 0;
const { kept, dropped } = await verifyProblems(problems, async (pairs) => {
  const results = await runPythonMany(pairs.map((x) => programOf(x.problem, x.completion)), {
    timeoutS, memoryMb: 4096, concurrency,
    onDone: (done, total) => {
      if (done - last >= 50 || done === total) console.log(`code-problems: verified ${(last = done)}/${total} programs`);
    },
  });
  return results.map((r) => r.status);
});
const why = dropped;
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'problems.jsonl'), kept.map((p) => JSON.stringify({ task_id: p.task_id, prompt: p.prompt, canonical_solution: p.canonical_solution, test: p.test, entry_point: p.entry_point, source: p.source })).join('\n') + '\n');
const bySource = {};
for (const p of kept) bySource[p.task_id.split('/')[0]] = (bySource[p.task_id.split('/')[0]] ?? 0) + 1;
const report = {
  rule: HELD_OUT_RULE, held_out_files: files, candidates: problems.length, kept: kept.length, kept_by_source: bySource,
  left_out_before_running: drops, left_out_after_running: why, sandbox: { timeout_s: timeoutS, memory_mb: 4096, network: networkIsolation() },
};
writeFileSync(join(out, 'report.json'), JSON.stringify(report, null, 2) + '\n');
console.log(`code-problems: kept ${kept.length} of ${problems.length} (${JSON.stringify(why)}) → ${join(out, 'problems.jsonl')}`);
