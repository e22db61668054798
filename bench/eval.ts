// Evaluation throughput: MMLU 5-shot items/s on the Shakespeare-size GPT (4 layers, 128 wide, block 128, GPT-2
// BPE) and on a GPT-2-small shape (12 layers, 768 wide, block 1024), with prefix reuse (the shared 5-shot context
// encoded once per item through the KV cache, each choice scored from it) and without (encoded once per choice),
// both from the same run on the same items. Weights are seeded random unless --model DIR is given: speed does not
// depend on them. Usage: npm run bench -- eval [small] [gpt2] [--items N] [--threads N] [--model DIR]
import { cpuName } from './_cpu.js';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setThreads } from '../src/core/index.js';
import { loadNativeBackend } from '../src/core/native/index.js';
import { GPTAdapter } from '../src/eval/gpt-adapter.js';
import { argmax } from '../src/eval/metrics.js';
import { builtinTaskDir, buildInstances, loadTask, type MCInstance } from '../src/eval/tasks.js';
import { wrapTokenizer } from '../src/eval/tokenizer.js';
import { loadGPT } from '../src/models/gpt-io.js';
import { GPT, type GPTConfig } from '../src/models/gpt.js';
import { loadGpt2Files } from '../src/tokenizers/loaders.js';

const root = join(fileURLToPath(import.meta.url), '../../..');
const shared = join(root, '../shared/data');

const SHAPES: Record<string, { what: string; config: Partial<GPTConfig>; items: number }> = {
  small: { what: 'Shakespeare-size: 4 layers, 4 heads, 128 wide, block 128, vocab 50304', config: { n_layer: 4, n_head: 4, n_embd: 128, block_size: 128, vocab_size: 50304 }, items: 58 },
  gpt2: { what: 'GPT-2-small shape: 12 layers, 12 heads, 768 wide, block 1024, vocab 50304', config: { n_layer: 12, n_head: 12, n_embd: 768, block_size: 1024, vocab_size: 50304 }, items: 6 },
};

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

export async function run(args: string[]): Promise<void> {
  loadNativeBackend();
  const threads = Number(flag(args, '--threads') ?? availableParallelism());
  setThreads(threads);
  const itemsFlag = flag(args, '--items');
  const modelDir = flag(args, '--model');
  const flagValues = new Set(['--items', '--threads', '--model'].map((f) => flag(args, f)));
  const names = args.filter((a) => !a.startsWith('--') && !flagValues.has(a));
  const shapes = Object.keys(SHAPES).filter((n) => names.length === 0 || names.includes(n));
  const tokenizer = wrapTokenizer(loadGpt2Files(join(shared, 'gpt2-tokenizer/encoder.json'), join(shared, 'gpt2-tokenizer/vocab.bpe')));
  const spec = loadTask('mmlu', [builtinTaskDir()]);
  // One item per subject in turn (subjects sorted), so every figure covers a mix of prompt lengths.
  const pool = buildInstances(spec, { dataDir: shared, numFewshot: 5, limit: 2, source: 'mmlu' }) as MCInstance[];
  const bySubject = [...pool.filter((_, i) => i % 2 === 0), ...pool.filter((_, i) => i % 2 === 1)];
  console.log(`MMLU 5-shot scoring, ${threads} kernel thread(s); items/s over the same items with and without prefix reuse (after 1 warm-up item)`);
  console.log('model  | items | ctx tokens (mean, after truncation) | reuse items/s | no-reuse items/s | speedup | same answers');
  const result: Record<string, { items: number; reuse_items_per_s: number; no_reuse_items_per_s: number; same_answers: number }> = {};
  for (const name of shapes) {
    const shape = SHAPES[name]!;
    const model = modelDir ? loadGPT(modelDir) : new GPT(shape.config, 1234);
    const n = Math.min(Number(itemsFlag ?? shape.items), bySubject.length);
    const items = bySubject.slice(0, n);
    const L = model.config.block_size;
    const ctxTokens = items.reduce((a, it) => a + Math.min(L, tokenizer.encode(it.context).length), 0) / n;
    const figures: { perS: number; preds: number[] }[] = [];
    for (const prefixReuse of [true, false]) {
      const adapter = new GPTAdapter(model, tokenizer, { prefixReuse });
      const score = (it: MCInstance): number => argmax(adapter.loglikelihood(it.continuations.map((c) => ({ context: it.context, continuation: c }))).map((r) => r.logprob));
      score(items[0]!);
      const started = performance.now();
      const preds = items.map(score);
      figures.push({ perS: n / ((performance.now() - started) / 1000), preds });
      adapter.dispose();
    }
    const [reuse, whole] = figures as [(typeof figures)[number], (typeof figures)[number]];
    const same = reuse.preds.filter((p, i) => p === whole.preds[i]).length;
    console.log(
      `${name.padEnd(6)} | ${String(n).padStart(5)} | ${ctxTokens.toFixed(0).padStart(35)} | ${reuse.perS.toFixed(2).padStart(13)} | ${whole.perS.toFixed(2).padStart(16)} | ${(reuse.perS / whole.perS).toFixed(2).padStart(6)}× | ${same}/${n}`,
    );
    result[name] = { items: n, reuse_items_per_s: reuse.perS, no_reuse_items_per_s: whole.perS, same_answers: same };
    model.dispose();
  }
  for (const name of shapes) console.log(`  ${name}: ${SHAPES[name]!.what}${modelDir ? ` (weights from ${modelDir})` : ''}`);
  console.log(`RESULT ${JSON.stringify({ cpu: cpuName(), threads, cases: result })}`);
}
