// Token shards for the code model (src/data/code-tokens.ts): a code-aware BPE trained on the curated training files,
// train.bin from them, val.bin from the held-out files, split.json for the bits-per-byte eval. Run after
// scripts/code-corpus.sh and `lmforge curate --config configs/curate-code.yaml`; then `npx tsc -p .` built dist/.
//   node scripts/code-tokens.mjs [--corpus=data/code-corpus] [--out=data/code-tokens] [--vocab-size=8192]
import { prepareCodeTokens } from '../dist/src/data/code-tokens.js';
import { isUserError } from '../dist/src/util/errors.js';

const flag = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const vocab = Number(flag('vocab-size', '8192'));
if (!Number.isInteger(vocab) || vocab < 258) {
  console.error(`code-tokens: --vocab-size must be an integer ≥ 258, got ${flag('vocab-size', '')}`);
  process.exit(2);
}
try {
  await prepareCodeTokens(flag('corpus', 'data/code-corpus'), flag('out', 'data/code-tokens'), vocab, (line) => console.log(line));
} catch (e) {
  if (!isUserError(e)) throw e;
  console.error(`code-tokens: ${e.message}`);
  process.exit(1);
}
