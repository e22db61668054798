// The evaluation harness: runs a task's instances through a LanguageModel and aggregates lm-eval's metrics
// (acc, acc_norm, mc2, pct_stereotype, exact_match, perplexities) with standard errors, per subset and per group,
// with per-sample logs; evaluateTask also dispatches code_exec (code-exec.ts) and bits_per_byte (bits-per-byte.ts).
// Not the model (model.ts) nor the report layout (report.ts).
import { passagePrior, ragSequenceAnswerText } from '../retrieval/rag.js';
import { questionLead } from '../retrieval/reader-data.js';
import { UserError } from '../util/errors.js';
import { runBiasProbeTask } from './bias-task.js';
import { runBitsPerByte } from './bits-per-byte.js';
import { runCodeExec, type CodeRunOptions, type CompletionSource } from './code-exec.js';
import type { LanguageModel } from './model.js';
import { argmax, bootstrapStderr, countWords, extractAnswer, mc2, meanMetric, normalizeNumber, normalizeSquad, perplexities, tokenF1, type MetricValue } from './metrics.js';
import { buildInstances, type GenInstance, type Instance, type MCInstance, type PairInstance, type TextInstance } from './tasks.js';
import { render, type Doc, type TaskSpec } from './task-spec.js';

export interface RunOptions {
  dataDir: string;
  /** undefined = the task's default_fewshot (or 0). */
  numFewshot?: number;
  limit?: number;
  logSamples?: boolean;
  /** Called after each instance with (done, total). */
  onProgress?: (done: number, total: number) => void;
  source: string;
  /** Open book: generate_until prompts get the passages retrieved for the row's prompt in front of them. */
  openBook?: OpenBook;
  /** Rewrites each scored row's inputs before its prompt is built (a perturbed run: perturb-task.ts). */
  transformDoc?: (doc: Doc) => Doc;
}

/** The retrieval side of an open-book run (src/retrieval: BM25, dense or hybrid over an index). */
export interface OpenBook {
  /** The top passages for a query, best first, with their retrieval scores (needed by 'rag-sequence'). */
  retrieve(query: string): { id: string; title?: string; text: string; score?: number }[];
  /**
   * 'concat' (default): every passage in front of one prompt. 'rag-sequence': one prompt per passage, a greedy answer
   * under each, the answer with the largest Σ_z p(z|x) p(y|x,z) kept (retrieval/rag.ts), p(z|x) = softmax(score/temperature).
   */
  mode?: 'concat' | 'rag-sequence';
  temperature?: number;
  /** rag-sequence: decode only spans of each passage (an extractive reader; GenerateRequest.extractFrom). */
  extractive?: boolean;
  /** Extractive rag-sequence: also score every span of up to this many words of each passage (retrieval/rag.ts). */
  spanWords?: number;
  /** Extractive rag-sequence: rank answers by log p(y|x) / tokens^α. */
  lengthAlpha?: number;
  /**
   * Put the row's prompt (less its last line, the answer cue) before the passages too: "Question: q\n\npassage\n\n
   * Question: q\nAnswer:", the layout of a reader trained with `reader-train --layout question-first`.
   */
  questionFirst?: boolean;
  /** With questionFirst: the passages twice, as a reader trained with `reader-train --layout question-echo` reads them. */
  echo?: boolean;
  /** rag-sequence: λ of question-aware scoring, log p(y|x,z) − λ log p(y|z, the prompt with the row's fields blank). */
  pmi?: number;
}

/** Per open-book run, the question-free answer log-probabilities (retrieval/rag.ts nullCache). */
const nullCaches = new WeakMap<OpenBook, Map<string, Map<string, number>>>();

function nullCacheOf(openBook: OpenBook): Map<string, Map<string, number>> {
  let m = nullCaches.get(openBook);
  if (!m) nullCaches.set(openBook, (m = new Map()));
  return m;
}

/** A doc with every string field blanked (the prompt template rendered without its question). */
function blankDoc(doc: Doc): Doc {
  return Object.fromEntries(Object.entries(doc).map(([k, v]) => [k, typeof v === 'string' ? '' : v])) as Doc;
}

/** The passages in front of an open-book prompt: each as title + text, separated by blank lines. */
export function openBookContext(passages: readonly { title?: string; text: string }[], context: string): string {
  return passages.map((p) => (p.title ? `${p.title}\n${p.text}` : p.text)).join('\n\n') + '\n\n' + context;
}

export type Metrics = Record<string, MetricValue>;

export interface TaskResult {
  task: string;
  version: number;
  nShot: number;
  n: number;
  metrics: Metrics;
  /** Per subset (MMLU subject, CrowS-Pairs bias category). */
  subsets?: Record<string, Metrics>;
  subsetSizes?: Record<string, number>;
  /** Per named group of subsets (MMLU categories), pooled over their items. */
  groups?: Record<string, Metrics>;
  groupSizes?: Record<string, number>;
  samples?: Record<string, unknown>[];
  /** Task-type specifics for the report (code_exec: sandbox settings and outcome counts; bits_per_byte: totals, xz). */
  details?: Record<string, unknown>;
  seconds: number;
}

/** Per-item scores keyed by metric, plus the subset it belongs to, and its log line. */
interface Scored {
  subset: string;
  scores: Record<string, number>;
  log: Record<string, unknown>;
}

function scoreMC(model: LanguageModel, inst: MCInstance, metrics: readonly string[]): Scored {
  const results = model.loglikelihood(inst.continuations.map((c) => ({ context: inst.context, continuation: c })));
  const lls = results.map((r) => r.logprob);
  const pred = argmax(lls);
  const predNorm = argmax(lls.map((ll, i) => ll / inst.choices[i]!.length));
  const correct = (i: number): number => (inst.labels ? inst.labels[i]! : i === inst.gold ? 1 : 0);
  const scores: Record<string, number> = {};
  for (const m of metrics) {
    if (m === 'acc') scores.acc = correct(pred);
    else if (m === 'acc_norm') scores.acc_norm = correct(predNorm);
    else if (m === 'mc2') scores.mc2 = mc2(lls, inst.labels ?? inst.choices.map((_, i) => (i === inst.gold ? 1 : 0)));
  }
  return {
    subset: inst.doc.subset,
    scores,
    log: { where: inst.doc.where, context: inst.context, choices: inst.choices, gold: inst.gold, loglikelihoods: lls, is_greedy: results.map((r) => r.isGreedy), pred, pred_norm: predNorm, ...scores },
  };
}

function scorePair(model: LanguageModel, inst: PairInstance): Scored {
  const [more, less] = model.loglikelihood([{ context: '', continuation: inst.more }, { context: '', continuation: inst.less }]);
  const stereo = more!.logprob > less!.logprob ? 1 : 0;
  return {
    subset: inst.category,
    scores: { pct_stereotype: stereo, likelihood_diff: Math.abs(more!.logprob - less!.logprob) },
    log: { where: inst.doc.where, sent_more: inst.more, sent_less: inst.less, category: inst.category, loglikelihoods: [more!.logprob, less!.logprob], pct_stereotype: stereo },
  };
}

function scoreGen(model: LanguageModel, inst: GenInstance, spec: TaskSpec, openBook?: OpenBook): Scored {
  const g = spec.generation!;
  // Open book: the query is the row's own prompt (no few-shot examples), the passages go before the whole context.
  const query = render(spec.prompt ?? '', inst.doc);
  const passages = openBook ? openBook.retrieve(query) : undefined;
  const rag = passages && passages.length > 0 && openBook?.mode === 'rag-sequence';
  const book = (ps: readonly { title?: string; text: string }[]): string =>
    (openBook?.questionFirst ? `${questionLead(query)}\n\n${openBook.echo ? openBookContext(ps, '') : ''}` : '') + openBookContext(ps, inst.context);
  const context = passages && !rag ? book(passages) : inst.context;
  const ragAnswer = rag
    ? ragSequenceAnswerText(model, passages.map((p) => book([p])), passagePrior(passages.map((p) => p.score ?? 0), openBook.temperature ?? 1), { stop: g.stop, maxTokens: g.max_tokens, ...(openBook.spanWords ? { spanWords: openBook.spanWords } : {}), ...(openBook.lengthAlpha ? { lengthAlpha: openBook.lengthAlpha } : {}),
      ...(openBook.pmi ? { pmi: openBook.pmi, nullPrompts: passages.map((p) => openBookContext([p], render(spec.prompt ?? '', blankDoc(inst.doc)))), nullCache: nullCacheOf(openBook) } : {}) }, openBook.extractive ? passages.map((p) => (p.title ? `${p.title}\n${p.text}` : p.text)) : undefined)
    : undefined;
  const text = ragAnswer ? ragAnswer.answer : model.generateUntil([{ context, stop: g.stop, maxTokens: g.max_tokens }])[0];
  const norm = g.normalize === 'squad' ? normalizeSquad : g.normalize === 'number' ? normalizeNumber : (s: string): string => s.trim();
  const answers = inst.answers.map(norm);
  const scores: Record<string, number> = {};
  const extracted: Record<string, string | null> = {};
  for (const e of g.extract ?? [{ name: '', regex: '', pick: 'first' as const }]) {
    const pred = e.regex === '' ? text! : extractAnswer(text!, e.regex, e.pick);
    extracted[e.name || 'none'] = pred;
    scores[e.name ? `exact_match,${e.name}` : 'exact_match'] = pred !== null && answers.includes(norm(pred)) ? 1 : 0;
    if (spec.metrics.includes('f1')) scores[e.name ? `f1,${e.name}` : 'f1'] = pred === null ? 0 : Math.max(0, ...answers.map((a) => tokenF1(norm(pred), a)));
  }
  return { subset: inst.doc.subset, scores, log: { where: inst.doc.where, context, generation: text, extracted, answers: inst.answers, ...(passages ? { passages: passages.map((p) => p.id) } : {}), ...(ragAnswer ? { rag_candidates: ragAnswer.candidates } : {}), ...scores } };
}

function aggregate(items: readonly Scored[]): Metrics {
  const out: Metrics = {};
  const keys = items.length > 0 ? Object.keys(items[0]!.scores) : [];
  for (const k of keys) out[k] = meanMetric(items.map((s) => s.scores[k]!));
  return out;
}

/**
 * Runs any task: code_exec (async: its programs run in child processes) and bits_per_byte read their own data;
 * every other type goes through runTask. `completions` says where a code task's completions come from.
 */
export async function evaluateTask(spec: TaskSpec, model: LanguageModel | null, options: RunOptions & Omit<CodeRunOptions, keyof RunOptions | 'completions'> & { completions?: CompletionSource }): Promise<TaskResult> {
  if (spec.type === 'code_exec') {
    const completions = options.completions ?? (model ? { kind: 'model' as const, model } : undefined);
    if (!completions) throw new UserError(`task ${spec.task} needs a model (--model) or completions (--completions FILE | canonical)`);
    return runCodeExec(spec, { ...options, completions });
  }
  if (!model) throw new UserError(`task ${spec.task} needs a model (--model)`);
  if (spec.type === 'bits_per_byte') return runBitsPerByte(spec, model, options);
  if (spec.type === 'bias_probe') return runBiasProbeTask(spec, model, options);
  return runTask(spec, model, options);
}

/** Runs one task end to end. */
export function runTask(spec: TaskSpec, model: LanguageModel, options: RunOptions): TaskResult {
  const started = performance.now();
  const nShot = options.numFewshot ?? spec.default_fewshot ?? 0;
  const instances = buildInstances(spec, { dataDir: options.dataDir, numFewshot: nShot, source: options.source, ...(options.limit !== undefined ? { limit: options.limit } : {}), ...(options.transformDoc ? { transformDoc: options.transformDoc } : {}) });
  const result: TaskResult = { task: spec.task, version: spec.version, nShot, n: instances.length, metrics: {}, seconds: 0 };
  if (spec.type === 'perplexity') {
    Object.assign(result, runPerplexity(model, instances as TextInstance[], spec.metrics, options));
    result.seconds = (performance.now() - started) / 1000;
    return result;
  }
  const scored: Scored[] = [];
  instances.forEach((inst: Instance, i) => {
    switch (inst.kind) {
      case 'mc':
        scored.push(scoreMC(model, inst, spec.metrics));
        break;
      case 'pair':
        scored.push(scorePair(model, inst));
        break;
      case 'gen':
        scored.push(scoreGen(model, inst, spec, options.openBook));
        break;
      case 'text':
        throw new Error('runTask: text instance in a non-perplexity task');
    }
    options.onProgress?.(i + 1, instances.length);
  });
  result.metrics = aggregate(scored);
  const subsets = [...new Set(scored.map((s) => s.subset))].filter((s) => s !== '');
  if (subsets.length > 0) {
    result.subsets = {};
    result.subsetSizes = {};
    for (const s of subsets.sort()) {
      const items = scored.filter((x) => x.subset === s);
      result.subsets[s] = aggregate(items);
      result.subsetSizes[s] = items.length;
    }
  }
  if (spec.groups) {
    result.groups = {};
    result.groupSizes = {};
    for (const [g, members] of Object.entries(spec.groups)) {
      const set = new Set(members);
      const items = scored.filter((x) => set.has(x.subset));
      if (items.length === 0) continue;
      result.groups[g] = aggregate(items);
      result.groupSizes[g] = items.length;
    }
  }
  if (options.logSamples) result.samples = scored.map((s, i) => ({ doc_id: i, subset: s.subset, ...s.log }));
  result.seconds = (performance.now() - started) / 1000;
  return result;
}

function runPerplexity(model: LanguageModel, instances: readonly TextInstance[], wanted: readonly string[], options: RunOptions): Partial<TaskResult> {
  const docs = instances.map((inst, i) => {
    const [r] = model.loglikelihoodRolling([inst.text]);
    options.onProgress?.(i + 1, instances.length);
    return { logprob: r!.logprob, words: countWords(inst.text), bytes: Buffer.byteLength(inst.text, 'utf8'), tokens: r!.tokens, where: inst.doc.where };
  });
  const total = (sample: readonly typeof docs[number][]): { logprob: number; words: number; bytes: number } =>
    sample.reduce((a, d) => ({ logprob: a.logprob + d.logprob, words: a.words + d.words, bytes: a.bytes + d.bytes }), { logprob: 0, words: 0, bytes: 0 });
  const values = perplexities(total(docs));
  const metrics: Metrics = {};
  for (const [k, v] of Object.entries(values)) {
    const key = k as keyof typeof values;
    if (!wanted.includes(k)) continue;
    metrics[k] = { value: v, stderr: bootstrapStderr(docs, (s) => perplexities(total(s))[key]) };
  }
  const out: Partial<TaskResult> = { metrics };
  if (options.logSamples) out.samples = docs.map((d, i) => ({ doc_id: i, ...d }));
  return out;
}
