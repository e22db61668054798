// Benchmark entry point: `npm run bench -- <suite> [args...]` runs bench/<suite>.ts, whose `run(args)` prints
// lmforge's figures beside the reference tool's from the same run. With no suite it lists them.
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Suite {
  run(args: string[]): Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));
const suites = readdirSync(here)
  .filter((f) => f.endsWith('.js') && f !== 'main.js' && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort();

const [name, ...rest] = process.argv.slice(2);
if (!name || !suites.includes(name)) {
  console.log(`usage: npm run bench -- <suite> [args]\nsuites: ${suites.join(', ') || '(none yet)'}`);
  process.exit(name ? 1 : 0);
}
const suite = (await import(`./${name}.js`)) as Suite;
await suite.run(rest);
