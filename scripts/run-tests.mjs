// Runs every compiled *.test.js under dist/ with node's built-in test runner.
// Usage: node scripts/run-tests.mjs [substring filter ...]
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function collect(dir, out) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) collect(path, out);
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = collect('dist', []).filter((f) => filters.length === 0 || filters.some((s) => f.includes(s))).sort();
if (files.length === 0) {
  console.error('run-tests: no test files found under dist/ (did `tsc -p .` run?)');
  process.exit(1);
}
// Runs that tests train through the CLI register themselves: into a throwaway registry, not the checkout's runs/.
const env = { ...process.env, LMFORGE_REGISTRY: process.env.LMFORGE_REGISTRY ?? join(mkdtempSync(join(tmpdir(), 'lmf-tests-')), 'registry.sqlite') };
const result = spawnSync(process.execPath, ['--test', ...files], { stdio: 'inherit', env });
process.exit(result.status ?? 1);
