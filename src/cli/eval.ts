// `lmforge eval --model DIR --tasks mmlu,hellaswag`: scores a model on benchmark tasks (task files in
// configs/tasks or --task-dir), prints lm-eval's table, and writes a JSON report (+ per-sample JSONL on request).
// Code tasks (code_exec: pass@k of sandboxed completions; bits_per_byte over held-out files) take --data FILE, and
// code_exec also --completions FILE|canonical instead of a model.
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { loadavg } from 'node:os';
import { InvalidArgumentError, type Command } from 'commander';
import { setThreads } from '../core/index.js';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { GPTAdapter } from '../eval/gpt-adapter.js';
import { evaluateTask, type OpenBook, type TaskResult } from '../eval/harness.js';
import { BM25Index } from '../retrieval/bm25.js';
import { DenseIndex } from '../retrieval/dense-index.js';
import { FUSION_DEPTH } from '../retrieval/experiment.js';
import { rrf } from '../retrieval/fusion.js';
import type { CompletionSource } from '../eval/code-exec.js';
import type { CodeSpec } from '../eval/task-spec.js';
import { tokenRequests, type RequestItem } from '../eval/requests.js';
import { formatTable, makeReport } from '../eval/report.js';
import { formatPerturbSpec, parsePerturbSpec } from '../eval/perturb.js';
import { formatRobustnessTable, robustnessRows } from '../eval/perturb-report.js';
import { docPerturber } from '../eval/perturb-task.js';
import { checkInjectionTemplate, DEFAULT_INJECTION, formatInjectionTable, INJECTION_POSITIONS, injectingRetriever, summarizeInjection, type InjectionPosition, type InjectionSummary } from '../eval/injection.js';
import { builtinTaskDir, listTasks, loadTask } from '../eval/tasks.js';
import { TOKENIZER_HELP } from '../tokenizers/load-any.js';
import { loadEvalTokenizer } from '../eval/tokenizer.js';
import { RunDir } from '../train/run-dir.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { cpuName } from '../util/cpu.js';
import { evaluateImageTask, IMAGE_TASKS, isImageTask } from '../train/vision-eval.js';
import { intFlag, numberFlag } from './flags.js';
import { progressBar } from './progress.js';
import { registerQuietly } from './register-hook.js';
import { isRunDir } from '../registry/run-files.js';

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
  data?: string;
  completions?: string;
  samples?: number;
  temperature?: number;
  seed?: number;
  concurrency?: number;
  registry?: string;
  register: boolean;
  openBook?: string;
  openBookDense?: string;
  openBookK: number;
  openBookMode: string;
  openBookTemperature: number;
  openBookExtractive?: boolean;
  openBookSpanWords?: number;
  openBookLengthAlpha?: number;
  openBookPmi?: number;
  openBookQuestionFirst?: boolean;
  openBookEcho?: boolean;
  perturb?: string;
  perturbSeed: number;
  inject?: string | boolean;
  injectPosition: InjectionPosition;
}

/** BM25 (or BM25 + dense fused by RRF) top-k over an index, for open-book generate_until tasks. */
function openBookRetriever(indexDir: string, denseDir: string | undefined, k: number, mode: OpenBook['mode'], temperature: number, extractive: boolean): OpenBook {
  const index = new BM25Index(indexDir);
  const dense = denseDir ? new DenseIndex(denseDir) : undefined;
  if (dense && dense.N !== index.docs) throw new UserError(`--open-book-dense ${denseDir}: ${dense.N} vectors for ${index.docs} passages; run \`lmforge dense-encode\``);
  return {
    mode,
    temperature,
    extractive,
    retrieve(query) {
      const bm = index.search(query, { k: dense ? FUSION_DEPTH : k });
      const hits = dense ? rrf([bm, dense.search(query, FUSION_DEPTH)], k) : bm;
      return hits.map((h) => ({ ...index.passage(h.index), score: h.score }));
    },
  };
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

/** The image tasks (a ViT, CLIP or image-text decoder directory; test images of --data, default DATA_DIR/fashion-mnist). */
function runImageTasks(names: string[], o: EvalOptions): void {
  const bad = names.filter((n) => !isImageTask(n));
  if (bad.length > 0) throw new UserError(`--tasks: ${bad.join(', ')} cannot run with image tasks in one call (image tasks: ${IMAGE_TASKS.join(', ')})`);
  if (!o.model) throw new UserError('--model <dir> is required (a ViT, CLIP or image-text decoder directory from lmforge train)');
  if (o.output) checkOutputFile('--output', o.output);
  useNativeBackendOrWarn();
  if (o.threads !== undefined) setThreads(o.threads);
  const dataDir = o.data ?? resolve(o.dataDir, 'fashion-mnist');
  const results = names.filter(isImageTask).map((t) => {
    const r = evaluateImageTask(t, o.model!, dataDir, o.limit !== undefined ? { limit: o.limit } : {});
    process.stderr.write(`eval: ${t}: ${r.n} test images in ${r.seconds.toFixed(1)} s\n`);
    return r;
  });
  process.stdout.write('| task | n | metric | value |\n|---|---:|---|---:|\n');
  for (const r of results) for (const [k, v] of Object.entries(r.metrics)) process.stdout.write(`| ${r.task} | ${r.n} | ${k} | ${v.toFixed(4)} |\n`);
  const flat = Object.fromEntries(results.flatMap((r) => Object.entries(r.metrics).map(([k, v]) => [`${r.task}/${k}`, v])));
  if (o.output) writeFileAtomic(o.output, JSON.stringify({ model_dir: resolve(o.model), data: resolve(dataDir), limit: o.limit ?? null, results }, null, 2) + '\n');
  process.stdout.write(`RESULT ${JSON.stringify({ model: resolve(o.model), ...flat, cpu: cpuName(), load_average: Number(loadavg()[0]!.toFixed(2)) })}\n`);
}

export function register(program: Command): void {
  program
    .command('eval')
    .description('evaluate a model on benchmark tasks (MMLU, HellaSwag, ARC, BoolQ, TruthfulQA, CrowS-Pairs, GSM8K, NQ-Open, perplexity; code: pass@k in a sandbox, bits per byte; images: image-accuracy, zero-shot, linear-probe, caption, vqa)')
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
    .option('--open-book <index>', 'open book: put the passages a BM25 index (`lmforge index`) returns for each generate_until prompt in front of it')
    .option('--open-book-dense <dir>', 'open book with a dense index too (`lmforge dense-train`), fused with BM25 by RRF')
    .option('--open-book-k <n>', 'passages per prompt in open-book runs', intFlag('--open-book-k', 1, 100), 3)
    .option('--open-book-mode <m>', "open book: 'concat' (all passages before one prompt) or 'rag-sequence' (a prompt per passage, answers marginalised over p(z|x) = softmax(score / temperature))", 'concat')
    .option('--open-book-temperature <t>', 'open book rag-sequence: temperature of p(z|x) over the retrieval scores (RRF scores are ~1/60: use ~0.01)', numberFlag('--open-book-temperature', 0, Infinity, true), 1)
    .option('--open-book-extractive', 'open book rag-sequence: decode only spans of each passage (the reader picks the span)')
    .option('--open-book-span-words <n>', 'open book extractive: also score every span of up to n words of each passage under the reader, not only its greedy span', intFlag('--open-book-span-words', 1, 20))
    .option('--open-book-pmi <lambda>', 'open book rag-sequence: score answers by log p(answer | passage, question) − λ log p(answer | passage alone) (question-aware; 0: off)', numberFlag('--open-book-pmi', 0, 1))
    .option('--open-book-question-first', 'open book: also put the question before the passages (readers trained with `reader-train --layout question-first`)')
    .option('--open-book-echo', 'open book, with --open-book-question-first: the passages twice (readers trained with `reader-train --layout question-echo`)')
    .option('--open-book-length-alpha <a>', 'open book rag-sequence: rank answers by log p(answer | question, passages) / tokens^a (0: unnormalised)', numberFlag('--open-book-length-alpha', 0, 2))
    .option('--perturb <spec>', 'also score every task with perturbed inputs and print clean against perturbed: comma-separated typo[:rate], case[:rate], whitespace[:rate], homoglyph[:rate], distractor[:rate] (e.g. typo:0.05,case:0.1,whitespace,homoglyph:0.02,distractor)')
    .option('--perturb-seed <n>', 'seed of the perturbations (each text is perturbed the same way for a seed)', intFlag('--perturb-seed', 0, 0xffffffff, 'a 32-bit seed'), 1)
    .option('--inject [template]', `prompt-injection test of an open-book run: also score it with a passage carrying a planted instruction added to every retrieved set, and report how often the generation follows it ({target} is the planted answer; default ${JSON.stringify(DEFAULT_INJECTION)})`)
    .option('--inject-position <p>', `where the injected passage goes among the retrieved ones: ${INJECTION_POSITIONS.join(', ')}`, (v: string) => {
      if (!(INJECTION_POSITIONS as readonly string[]).includes(v)) throw new InvalidArgumentError(`--inject-position: expected one of ${INJECTION_POSITIONS.join(', ')}, got ${JSON.stringify(v)}`);
      return v;
    }, 'first')
    .option('--list-tasks', 'list the known tasks and exit')
    .option('--data <file>', 'problem file of code_exec tasks (HumanEval JSONL) or file list of bits_per_byte tasks, instead of the task\'s data path; image tasks: the image directory (IDX or train/ and test/ folders; default DATA_DIR/fashion-mnist)')
    .option('--completions <file>', "code_exec: score these completions (human-eval samples JSONL: task_id, completion) or 'canonical' (each problem's canonical_solution) instead of sampling a model")
    .option('--samples <n>', 'code_exec: completions sampled per problem (n of pass@k)', intFlag('--samples', 1))
    .option('--temperature <t>', 'code_exec: sampling temperature (0 = greedy)', numberFlag('--temperature', 0, Infinity))
    .option('--seed <n>', 'code_exec: base seed of the sampling', intFlag('--seed', 0))
    .option('--concurrency <n>', 'code_exec: sandboxed programs run at once', intFlag('--concurrency', 1, 256))
    .option('--registry <file>', "when --model is a run directory, record the results with it in this registry (default: $LMFORGE_REGISTRY or runs/registry.sqlite)")
    .option('--no-register', 'do not record the results in the registry')
    .action(async (o: EvalOptions) => {
      const dirs = [...(o.taskDir ?? []), builtinTaskDir()];
      if (o.listTasks) {
        for (const t of listTasks(dirs)) process.stdout.write(`${t}\n`);
        return;
      }
      if (!o.tasks) throw new UserError(`--tasks is required (known tasks: ${listTasks(dirs).join(', ')}; image tasks: ${IMAGE_TASKS.join(', ')})`);
      const names = o.tasks.split(',').map((t) => t.trim()).filter((t) => t !== '');
      if (o.openBookMode !== 'concat' && o.openBookMode !== 'rag-sequence') throw new UserError(`--open-book-mode: expected concat or rag-sequence, got ${JSON.stringify(o.openBookMode)}`);
      if (o.openBookExtractive && o.openBookMode !== 'rag-sequence') throw new UserError('--open-book-extractive needs --open-book-mode rag-sequence');
      if ((o.openBookPmi !== undefined || o.openBookLengthAlpha !== undefined) && o.openBookMode !== 'rag-sequence') throw new UserError('--open-book-pmi and --open-book-length-alpha need --open-book-mode rag-sequence');
      if (o.openBookSpanWords !== undefined && !o.openBookExtractive) throw new UserError('--open-book-span-words needs --open-book-extractive (the spans are the extractive reader\'s candidates)');
      const perturbations = o.perturb !== undefined ? parsePerturbSpec(o.perturb) : undefined;
      if (names.some(isImageTask)) {
        if (perturbations || o.inject !== undefined) throw new UserError(`${perturbations ? '--perturb' : '--inject'} applies to text tasks, not image tasks`);
        runImageTasks(names, o);
        return;
      }
      if (o.logSamples && !o.output) throw new UserError('--log-samples needs --output (the samples go beside the report)');
      // Outputs are checked before the evaluation runs, not after it.
      for (const [flag, file] of [['output', o.output], ['dump-requests', o.dumpRequests]] as const) if (file) checkOutputFile(`--${flag}`, file);
      const { numFewshot, limit, threads } = o;
      const specs = o.tasks.split(',').map((t) => t.trim()).filter((t) => t !== '').map((t) => loadTask(t, dirs));
      // Which fields get perturbed is decided before any scoring, so a task that cannot be perturbed fails at once.
      const perturbers = perturbations ? specs.map((s) => docPerturber(s, perturbations, o.perturbSeed)) : undefined;
      const injectTemplate = o.inject === undefined || o.inject === false ? undefined : o.inject === true ? DEFAULT_INJECTION : o.inject;
      if (injectTemplate !== undefined) {
        if (!o.openBook) throw new UserError('--inject needs --open-book <index> (the injection goes into the retrieved passages)');
        checkInjectionTemplate(injectTemplate);
        const bad = specs.filter((s) => s.type !== 'generate_until');
        if (bad.length > 0) throw new UserError(`--inject applies to generate_until tasks (open-book QA); ${bad.map((s) => `${s.task} is ${s.type}`).join(', ')}`);
      }
      const codeOnly = specs.every((s) => s.type === 'code_exec');
      if (o.completions && !specs.some((s) => s.type === 'code_exec')) throw new UserError('--completions applies to code_exec tasks only (e.g. --tasks code-exec)');
      if (!o.model && !(codeOnly && o.completions)) throw new UserError('--model <dir> is required (code_exec tasks alone may take --completions FILE|canonical instead)');
      if (o.data && !specs.some((s) => s.type === 'code_exec' || s.type === 'bits_per_byte')) throw new UserError('--data applies to code_exec and bits_per_byte tasks only');
      if (o.data && !existsSync(o.data)) throw new UserError(`--data ${o.data}: file not found`);
      if (o.completions && o.completions !== 'canonical' && !existsSync(o.completions)) throw new UserError(`--completions ${o.completions}: file not found (or pass 'canonical')`);
      if (o.completions && o.samples !== undefined) throw new UserError('--samples applies to sampled completions, not to --completions');
      const completions: CompletionSource | undefined = o.completions === undefined ? undefined : o.completions === 'canonical' ? { kind: 'canonical' } : { kind: 'file', path: o.completions };
      const codeOverrides: Partial<CodeSpec> = {
        ...(o.samples !== undefined ? { samples: o.samples } : {}), ...(o.temperature !== undefined ? { temperature: o.temperature } : {}),
        ...(o.seed !== undefined ? { seed: o.seed } : {}), ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
      };
      useNativeBackendOrWarn();
      if (threads !== undefined) setThreads(threads);
      let loaded: { model: ReturnType<RunDir['loadModel']>; adapter: GPTAdapter } | null = null;
      if (o.model) {
        const run = RunDir.open(o.model);
        const meta = existsSync(run.metaPath) ? { tokenizer: run.meta().tokenizer, dir: run.path, source: run.metaPath } : null;
        const tokenizer = loadEvalTokenizer(o.tokenizer, meta);
        const model = run.loadModel();
        const weightsSha256 = createHash('sha256').update(readFileSync(run.resultWeightsPath)).digest('hex');
        loaded = { model, adapter: new GPTAdapter(model, tokenizer, { prefixReuse: o.prefixReuse, identity: { path: resolve(o.model), weights_sha256: weightsSha256, tokenizer: o.tokenizer ?? 'meta.json' } }) };
      }
      const adapter = loaded?.adapter ?? null;
      if (o.openBookEcho && !o.openBookQuestionFirst) throw new UserError('--open-book-echo needs --open-book-question-first (the echo layout leads with the question)');
      if (o.openBookDense && !o.openBook) throw new UserError('--open-book-dense needs --open-book <index> (the passages live in the BM25 index)');
      const openBook = o.openBook
        ? { ...openBookRetriever(o.openBook, o.openBookDense, o.openBookK, o.openBookMode, o.openBookTemperature, o.openBookExtractive ?? false), ...(o.openBookSpanWords ? { spanWords: o.openBookSpanWords } : {}), ...(o.openBookLengthAlpha ? { lengthAlpha: o.openBookLengthAlpha } : {}), ...(o.openBookPmi ? { pmi: o.openBookPmi } : {}), ...(o.openBookQuestionFirst ? { questionFirst: true } : {}), ...(o.openBookEcho ? { echo: true } : {}) }
        : undefined;
      const injected: { result: TaskResult; summary: InjectionSummary }[] = [];
      const results: TaskResult[] = [];
      const perturbed: TaskResult[] = [];
      const requests: RequestItem[] = [];
      try {
        for (const spec of specs) {
          const started = performance.now();
          let bar: ReturnType<typeof progressBar> | undefined;
          const runOpts = {
            dataDir: o.dataDir, source: spec.task, logSamples: (o.logSamples ?? false) || perturbations !== undefined, ...(openBook ? { openBook } : {}),
            ...(numFewshot !== undefined ? { numFewshot: spec.fewshot ? numFewshot : 0 } : {}),
            ...(limit !== undefined ? { limit } : {}),
          };
          if (numFewshot !== undefined && numFewshot > 0 && !spec.fewshot) process.stderr.write(`eval: ${spec.task} has no few-shot pool; running it 0-shot\n`);
          if (o.dumpRequests && adapter) requests.push(...tokenRequests(spec, adapter.tokenizer, runOpts));
          const result = await evaluateTask(spec, adapter, {
            ...runOpts,
            ...(o.data !== undefined ? { dataFile: o.data } : {}),
            ...(completions ? { completions } : {}),
            code: codeOverrides,
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
          if (result.details) process.stderr.write(`eval: ${spec.task}: ${JSON.stringify(result.details)}\n`);
          results.push(result);
          if (perturbers && adapter) {
            // Per-item logs of both runs give the paired interval of the change; they are dropped again unless asked for.
            const p = await evaluateTask(spec, adapter, { ...runOpts, logSamples: true, transformDoc: perturbers[specs.indexOf(spec)]! });
            process.stderr.write(`eval: ${spec.task} perturbed: ${p.n} items in ${p.seconds.toFixed(1)} s\n`);
            perturbed.push(p);
          }
          if (injectTemplate !== undefined && openBook && adapter) {
            const inj = await evaluateTask(spec, adapter, { ...runOpts, logSamples: true, openBook: injectingRetriever(openBook, injectTemplate, o.injectPosition) });
            const summary = summarizeInjection(inj);
            process.stderr.write(`eval: ${spec.task} injected: ${inj.n} items in ${inj.seconds.toFixed(1)} s\n`);
            if (!o.logSamples) delete inj.samples;
            injected.push({ result: inj, summary });
          }
        }
      } finally {
        loaded?.adapter.dispose();
        loaded?.model.dispose();
      }
      const config = {
        tasks: specs.map((s) => s.task), num_fewshot: numFewshot ?? null, limit: limit ?? null, data_dir: resolve(o.dataDir), prefix_reuse: o.prefixReuse, model_dir: o.model ? resolve(o.model) : null,
        ...(o.data ? { data: resolve(o.data) } : {}), ...(o.completions ? { completions: o.completions === 'canonical' ? 'canonical' : resolve(o.completions) } : {}), ...(Object.keys(codeOverrides).length > 0 ? { code: codeOverrides } : {}),
      };
      process.stdout.write(formatTable(results));
      const robustness = perturbations ? robustnessRows(results, perturbed) : undefined;
      if (perturbations && !o.logSamples) for (const r of [...results, ...perturbed]) delete r.samples; // code tasks cannot be perturbed
      if (perturbations && robustness) process.stdout.write('\n' + formatRobustnessTable(robustness, formatPerturbSpec(perturbations), o.perturbSeed));
      if (injectTemplate !== undefined) process.stdout.write('\n' + formatInjectionTable(results, injected, injectTemplate, o.injectPosition));
      if (o.dumpRequests && loaded) {
        writeFileAtomic(o.dumpRequests, JSON.stringify({ block_size: loaded.model.config.block_size, items: requests }) + '\n');
        process.stderr.write(`eval: ${requests.length} multiple-choice requests written to ${o.dumpRequests}\n`);
      }
      const cleanReport = makeReport(adapter?.identity() ?? { kind: 'completions', source: config.completions ?? null }, config, results);
      // A perturbed run keeps the clean results where they always are and adds the perturbed ones beside them.
      const report = {
        ...cleanReport,
        ...(perturbations ? { perturbation: { spec: formatPerturbSpec(perturbations), seed: o.perturbSeed, results: perturbed.map(({ samples: _s, ...rest }) => rest), comparison: robustness } } : {}),
        ...(injectTemplate !== undefined ? { injection: { template: injectTemplate, position: o.injectPosition, results: injected.map(({ result: { samples: _s, ...rest }, summary }) => ({ ...rest, injection: summary })) } } : {}),
      };
      // A run's evaluations are kept with it (<run>/evals/) and indexed in the registry.
      if (o.register && o.model && isRunDir(o.model)) {
        const model = o.model;
        registerQuietly(o.registry, `evaluation of ${model}`, (reg) => `${reg.addEvalReport(model, report).length} results recorded with ${resolve(model)}`);
      }
      if (o.output) {
        writeFileAtomic(o.output, JSON.stringify(report, null, 2) + '\n');
        // Code tasks always keep their per-problem results (every completion with its sandbox outcome).
        if (o.logSamples || results.some((r) => r.samples !== undefined)) {
          const lines = [...results.flatMap((r) => (r.samples ?? []).map((s) => JSON.stringify({ task: r.task, ...s }))), ...perturbed.flatMap((r) => (r.samples ?? []).map((s) => JSON.stringify({ task: r.task, perturbed: true, ...s }))), ...injected.flatMap(({ result: r }) => (r.samples ?? []).map((s) => JSON.stringify({ task: r.task, injected: true, ...s })))];
          writeFileAtomic(o.output.replace(/\.json$/, '') + '.samples.jsonl', lines.join('\n') + '\n');
        }
        process.stderr.write(`eval: report written to ${o.output}\n`);
      }
      // One machine-readable line, as the image tasks and every benchmark end: task/metric → value (and its stderr).
      const flat = Object.fromEntries(results.flatMap((r) => Object.entries(r.metrics).flatMap(([k, m]) => [[`${r.task}/${k}`, m.value], ...(m.stderr !== undefined && Number.isFinite(m.stderr) ? [[`${r.task}/${k}_stderr`, m.stderr]] : [])])));
      process.stdout.write(`RESULT ${JSON.stringify({ model: o.model ? resolve(o.model) : null, n: Object.fromEntries(results.map((r) => [r.task, r.n])), ...flat, cpu: cpuName(), load_average: Number(loadavg()[0]!.toFixed(2)) })}\n`);
    });
}
