// Node step of scripts/code-corpus.sh: checks each listed package's license and version, then writes the JSONL
// documents, the held-out file and manifest.json (src/data/code-corpus.ts). Usage (after `npx tsc -p .`):
//   node scripts/code-corpus.mjs [--packages=scripts/code-packages.txt] [--out=data/code-corpus]
import { buildCodeCorpus } from '../dist/src/data/code-corpus.js';
import { isUserError } from '../dist/src/util/errors.js';

const flag = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
try {
  buildCodeCorpus(flag('packages', 'scripts/code-packages.txt'), flag('out', 'data/code-corpus'), (line) => console.log(line));
} catch (e) {
  if (!isUserError(e)) throw e;
  console.error(`code-corpus: ${e.message}`);
  process.exit(1);
}
