// Builds the long-context code corpus (src/data/stdlib-code.ts): the Python standard library's source split by file,
// a BPE trained on the training files, train.bin / val.bin. Usage (after `npx tsc -p .`):
//   node scripts/stdlib-code.mjs [--out=data/stdlib-code] [--vocab-size=4096]
import { prepareStdlibCode } from '../dist/src/data/stdlib-code.js';

const flag = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const vocab = Number(flag('vocab-size', '4096'));
if (!Number.isInteger(vocab) || vocab < 300) {
  console.error(`stdlib-code: --vocab-size must be an integer ≥ 300, got ${flag('vocab-size', '')}`);
  process.exit(2);
}
await prepareStdlibCode(flag('out', 'data/stdlib-code'), vocab, (line) => console.log(line));
