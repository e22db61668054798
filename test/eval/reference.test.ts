// Correctness proof: lmforge's harness on a small trained model (2 layers, 48 wide, block 128, a 512-token BPE
// trained on Tiny Shakespeare) gives the same per-item log-likelihoods and chosen answers as the independent
// PyTorch scorer test/reference/eval_reference.py on the same weights (fixture test/fixtures/eval/reference.json,
// made once with `lmforge eval --dump-requests` + `/usr/bin/python3 test/reference/eval_reference.py`). Contexts
// are longer than the block, so left truncation is exercised, with and without prefix reuse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setThreads } from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { GPTAdapter } from '../../src/eval/gpt-adapter.js';
import { runTask } from '../../src/eval/harness.js';
import { builtinTaskDir, loadTask } from '../../src/eval/tasks.js';
import { loadEvalTokenizer } from '../../src/eval/tokenizer.js';
import { loadGPT } from '../../src/models/gpt-io.js';

const root = join(fileURLToPath(import.meta.url), '../../../..');
const fixtures = join(root, 'test/fixtures/eval');
const dataDir = join(root, '../shared/data');

interface RefItem {
  task: string;
  where: string;
  loglikelihoods: number[];
  pred: number;
  pred_norm: number;
}

loadNativeBackend();
// One kernel thread: these models are tiny, and spinning worker threads cost far more than they save on a busy machine.
setThreads(1);
const reference = JSON.parse(readFileSync(join(fixtures, 'reference.json'), 'utf8')) as { items: RefItem[] };
// The runs the fixture was made from: MMLU 5-shot (1 item per subject), then five tasks 0-shot (4 items each).
const runs = [
  { tasks: ['mmlu'], numFewshot: 5, limit: 1 },
  { tasks: ['arc_easy', 'hellaswag', 'truthfulqa_mc1', 'truthfulqa_mc2', 'boolq'], numFewshot: 0, limit: 4 },
];

for (const prefixReuse of [true, false]) {
  test(`per-item log-likelihoods and answers match the PyTorch scorer (prefix reuse ${prefixReuse ? 'on' : 'off'})`, () => {
    const model = loadGPT(join(fixtures, 'model'));
    const tokenizer = loadEvalTokenizer(join(fixtures, 'tokenizer-bpe512.json'), null);
    const adapter = new GPTAdapter(model, tokenizer, { prefixReuse });
    const samples: Record<string, unknown>[] = [];
    for (const run of runs) {
      for (const task of run.tasks) {
        const r = runTask(loadTask(task, [builtinTaskDir()]), adapter, { dataDir, numFewshot: run.numFewshot, limit: run.limit, logSamples: true, source: task });
        samples.push(...(r.samples ?? []).map((s) => ({ ...s, task })));
      }
    }
    adapter.dispose();
    model.dispose();
    assert.equal(samples.length, reference.items.length);
    let maxDiff = 0;
    samples.forEach((s, i) => {
      const ref = reference.items[i]!;
      assert.equal(s.task, ref.task);
      assert.equal(String(s.where).split('/shared/data/')[1], ref.where.split('/shared/data/')[1], `item ${i}`);
      const lls = s.loglikelihoods as number[];
      assert.equal(lls.length, ref.loglikelihoods.length);
      lls.forEach((ll, k) => {
        maxDiff = Math.max(maxDiff, Math.abs(ll - ref.loglikelihoods[k]!));
        assert.ok(Math.abs(ll - ref.loglikelihoods[k]!) < 2e-3 + 1e-4 * Math.abs(ref.loglikelihoods[k]!), `${ref.where} choice ${k}: ${ll} vs ${ref.loglikelihoods[k]}`);
      });
      assert.equal(s.pred, ref.pred, `${ref.where}: acc answer`);
      assert.equal(s.pred_norm, ref.pred_norm, `${ref.where}: acc_norm answer`);
    });
    assert.ok(maxDiff < 1e-3, `max |Δ loglik| ${maxDiff}`);
  });
}
