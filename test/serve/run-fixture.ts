// Run directories for the server tests, built in the test's setup: the eval fixture model (2 layers, BPE-512,
// trained on Shakespeare) with its tokenizer, or a wider model with random weights whose steps take long enough
// to show where generation runs.
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GPT } from '../../src/models/gpt.js';
import { saveGPT } from '../../src/models/gpt-io.js';

export const root = fileURLToPath(new URL('../../../', import.meta.url));
export const fixtures = `${root}test/fixtures/eval`;
export const TOKENIZER = 'tokenizer-bpe512.json';

/** A run directory holding the trained fixture model (or a fresh GPT of the given shape) and the BPE-512 tokenizer. */
export function makeRun(shape?: { n_layer: number; n_embd: number; n_head: number; block_size: number }): string {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-serve-'));
  const run = join(dir, 'run');
  mkdirSync(run);
  if (shape) {
    const model = new GPT({ vocab_size: 512, ...shape }, 3);
    saveGPT(run, model);
    model.dispose();
  } else {
    for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(fixtures, 'model', f), join(run, f));
  }
  copyFileSync(join(fixtures, TOKENIZER), join(run, TOKENIZER));
  writeFileSync(join(run, 'meta.json'), JSON.stringify({ vocab_size: 512, tokenizer: { type: 'file', file: TOKENIZER } }));
  return run;
}
