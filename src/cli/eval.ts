// `lmforge eval --model DIR --tasks mmlu,hellaswag`: scores a model on benchmark tasks (task files in
// configs/tasks or --task-dir), prints lm-eval's table, and writes a JSON report (+ per-sample JSONL on request).
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { setThreads } from '../core/index.js';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { GPTAdapter } from '../eval/gpt-adapter.js';
import { runTask, type TaskResult } from '../eval/harness.js';
import { tokenRequests, type RequestItem } from '../eval/requests.js';
import { formatTable, makeReport } from '../eval/report.js';
import { builtinTaskDir, listTasks, loadTask } from '../eval/tasks.js';
import { TOKENIZER_HELP } from '../tokenizers/load-any.js';
import { loadEvalTokenizer } from '../eval/tokenizer.js';
import { RunDir } from '../train/run-dir.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { intFlag } from './flags.js';
import { progressBar } from './progress.js';

interface EvalOptions {
  model?: string;
  tokenizer?: string;
  tasks?: string;
  numFewshot?: number;
  limit?: number;
  dataDir: string;
  taskDir?: string[];
  output?: string;
  logSamples?: boolean;
  prefixReuse: boolean;
  threads?: number;
  dumpRequests?: string;
  listTasks?: boolean;
}

/** A file the command will write at the end: its folder must exist and be writable, and it must not be a folder. */
function checkOutputFile(flag: string, file: string): void {
  const dir = dirname(resolve(file));
  if (existsSync(file) && statSync(file).isDirectory()) throw new UserError(`${flag} ${file}: is a directory, expected a file path`);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`${flag} ${file}: folder ${dir} does not exist`);
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new UserError(`${flag} ${file}: folder ${dir} is not writable`);
  }
}

export function register(program: Command): void {
  program
    .command('eval')
    .description('evaluate a model on benchmark tasks (MMLU, HellaSwag, ARC, BoolQ, TruthfulQA, CrowS-Pairs, GSM8K, NQ-Open, perplexity)')
    .option('--model <dir>', 'model directory (model.safetensors + config.json), or a LoRA run (adapter_config.json: its base with the adapter merged in)')
    .option('--tokenizer <path>', `${TOKENIZER_HELP} (default: the tokenizer named by the run's meta.json)`)
    .option('--tasks <names>', 'comma-separated task names or task .json files')
    .option('--num-fewshot <n>', "few-shot examples per prompt (default: each task's default)", intFlag('--num-fewshot', 0))
    .option('--limit <n>', 'score only the first n items of each task (of each subset, e.g. MMLU subject)', intFlag('--limit', 1))
    .option('--data-dir <dir>', 'root of the datasets that task files point into', process.env.LMFORGE_DATA ?? '../shared/data')
    .option('--task-dir <dirs...>', 'extra directories of task .json files (searched before the built-in ones)')
    .option('--output <file>', 'write the JSON report here')
    .option('--log-samples', 'also write per-sample logs (JSONL) beside the report')
    .option('--no-prefix-reuse', "encode the shared context once per choice instead of once per item (slower; for comparison)")
    .option('--threads <n>', 'native kernel threads (0 = all cores)', intFlag('--threads', 0, 1024))
    .option('--dump-requests <file>', 'write the token ids of every multiple-choice request (input of test/reference/eval_reference.py)')
    .option('--list-tasks', 'list the known tasks and exit')
    .action((o: EvalOptions) => {
      const dirs = [...(o.taskDir ?? []), builtinTaskDir()];
      if (o.listTasks) {
        for (const t of listTasks(dirs)) process.stdout.write(`${t}\n`);
        return;
      }
      if (!o.model) throw new UserError('--model <dir> is required');
      if (!o.tasks) throw new UserError(`--tasks is required (known tasks: ${listTasks(dirs).join(', ')})`);
      if (o.logSamples && !o.output) throw new UserError('--log-samples needs --output (the samples go beside the report)');
      // Outputs are checked before the evaluation runs, not after it.
      for (const [flag, file] of [['output', o.output], ['dump-requests', o.dumpRequests]] as const) if (file) checkOutputFile(`--${flag}`, file);
      const { numFewshot, limit, threads } = o;
      const specs = o.tasks.split(',').map((t) => t.trim()).filter((t) => t !== '').map((t) => loadTask(t, dirs));
      useNativeBackendOrWarn();
      if (threads !== undefined) setThreads(threads);
      const run = RunDir.open(o.model);
      const meta = existsSync(run.metaPath) ? { tokenizer: run.meta().tokenizer, dir: run.path, source: run.metaPath } : null;
      const tokenizer = loadEvalTokenizer(o.tokenizer, meta);
      const model = run.loadModel();
      const weightsSha256 = createHash('sha256').update(readFileSync(run.resultWeightsPath)).digest('hex');
      const adapter = new GPTAdapter(model, tokenizer, { prefixReuse: o.prefixReuse, identity: { path: resolve(o.model), weights_sha256: weightsSha256, tokenizer: o.tokenizer ?? 'meta.json' } });
      const results: TaskResult[] = [];
      const requests: RequestItem[] = [];
      try {
        for (const spec of specs) {
          const started = performance.now();
          let bar: ReturnType<typeof progressBar> | undefined;
          const runOpts = {
            dataDir: o.dataDir, source: spec.task, logSamples: o.logSamples ?? false,
            ...(numFewshot !== undefined ? { numFewshot: spec.fewshot ? numFewshot : 0 } : {}),
            ...(limit !== undefined ? { limit } : {}),
          };
          if (numFewshot !== undefined && numFewshot > 0 && !spec.fewshot) process.stderr.write(`eval: ${spec.task} has no few-shot pool; running it 0-shot\n`);
          if (o.dumpRequests) requests.push(...tokenRequests(spec, tokenizer, runOpts));
          const result = runTask(spec, adapter, {
            ...runOpts,
            onProgress: (done, total) => {
              bar ??= progressBar(spec.task, total, 'items');
              const s = (performance.now() - started) / 1000;
              const rate = `${(done / Math.max(s, 1e-9)).toFixed(1)} items/s`;
              bar.update(done, { rate });
              // Without a terminal there is no bar: a line per tenth of the task instead.
              if (!process.stderr.isTTY && total >= 100 && done % Math.ceil(total / 10) === 0) process.stderr.write(`eval: ${spec.task} ${done}/${total} items (${rate})\n`);
            },
          });
          bar?.stop();
          process.stderr.write(`eval: ${spec.task}: ${result.n} items in ${result.seconds.toFixed(1)} s (${(result.n / Math.max(result.seconds, 1e-9)).toFixed(2)} items/s)\n`);
          results.push(result);
        }
      } finally {
        adapter.dispose();
        model.dispose();
      }
      const config = { tasks: specs.map((s) => s.task), num_fewshot: numFewshot ?? null, limit: limit ?? null, data_dir: resolve(o.dataDir), prefix_reuse: o.prefixReuse, model_dir: resolve(o.model) };
      process.stdout.write(formatTable(results));
      if (o.dumpRequests) {
        writeFileAtomic(o.dumpRequests, JSON.stringify({ block_size: model.config.block_size, items: requests }) + '\n');
        process.stderr.write(`eval: ${requests.length} multiple-choice requests written to ${o.dumpRequests}\n`);
      }
      if (o.output) {
        writeFileAtomic(o.output, JSON.stringify(makeReport(adapter.identity(), config, results), null, 2) + '\n');
        if (o.logSamples) {
          const lines = results.flatMap((r) => (r.samples ?? []).map((s) => JSON.stringify({ task: r.task, ...s })));
          writeFileAtomic(o.output.replace(/\.json$/, '') + '.samples.jsonl', lines.join('\n') + '\n');
        }
        process.stderr.write(`eval: report written to ${o.output}\n`);
      }
    });
}
