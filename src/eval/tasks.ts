// Finding task files by name and turning a task's rows into scoring instances: the few-shot prompt (description,
// first-n examples from the few-shot pool, the row's question), the choices and gold answer, CrowS-style sentence
// pairs, generation prompts with their accepted answers, and perplexity texts. Not scoring (harness.ts).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../util/errors.js';
import { readRows, resolveFiles } from './datasets.js';
import { FILTERS, lookup, parseTaskSpec, render, type Doc, type TaskSpec } from './task-spec.js';

/** configs/tasks of the installed package (from dist/src/eval or src/eval). */
export function builtinTaskDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ['../../../configs/tasks', '../../configs/tasks']) {
    const d = resolve(here, up);
    if (existsSync(d)) return d;
  }
  return resolve(here, '../../../configs/tasks');
}

export function listTasks(dirs: readonly string[]): string[] {
  const names = new Set<string>();
  for (const d of dirs) if (existsSync(d)) for (const f of readdirSync(d)) if (f.endsWith('.json')) names.add(f.slice(0, -5));
  return [...names].sort();
}

/** Loads a task by name (searching dirs in order) or by path to a .json file. */
export function loadTask(nameOrPath: string, dirs: readonly string[]): TaskSpec {
  let path: string | undefined;
  if (nameOrPath.endsWith('.json')) {
    if (!existsSync(nameOrPath)) throw new UserError(`${nameOrPath}: task file not found`);
    path = nameOrPath;
  } else {
    path = dirs.map((d) => join(d, `${nameOrPath}.json`)).find((p) => existsSync(p));
    if (!path) throw new UserError(`unknown task ${JSON.stringify(nameOrPath)} (known tasks: ${listTasks(dirs).join(', ')}; or pass a task .json file)`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${(e as Error).message})`);
  }
  return parseTaskSpec(raw, path);
}

export interface MCInstance {
  kind: 'mc';
  doc: Doc;
  context: string;
  /** Choice texts (acc_norm divides by their length in characters). */
  choices: string[];
  /** target_delimiter + choice: what is scored. */
  continuations: string[];
  gold: number;
  /** 1 for every correct choice (TruthfulQA MC2), else undefined. */
  labels?: number[];
}

export interface PairInstance {
  kind: 'pair';
  doc: Doc;
  more: string;
  less: string;
  category: string;
}

export interface GenInstance {
  kind: 'gen';
  doc: Doc;
  context: string;
  answers: string[];
}

export interface TextInstance {
  kind: 'text';
  doc: Doc;
  text: string;
}

export type Instance = MCInstance | PairInstance | GenInstance | TextInstance;

export interface BuildOptions {
  dataDir: string;
  numFewshot: number;
  /** Rows per subset (lm-eval's --limit, per MMLU subject as each is its own task there). */
  limit?: number;
  source: string;
  /** Rewrites each scored row before its prompt is built (perturb-task.ts); few-shot examples are not passed through it. */
  transformDoc?: (doc: Doc) => Doc;
}

function choicesOf(spec: TaskSpec, doc: Doc): string[] {
  const c = spec.choices;
  if (!c) throw new Error('choicesOf: multiple_choice task without choices');
  let out: string[];
  if ('literal' in c) out = [...c.literal];
  else if ('field' in c) {
    const v = lookup(doc, c.field);
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new UserError(`${doc.where}: field ${c.field} must be an array of strings`);
    out = v as string[];
  } else {
    const v = lookup(doc, c.keys_of);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UserError(`${doc.where}: field ${c.keys_of} must be an object of answer → label`);
    out = Object.keys(v);
  }
  for (const f of spec.choice_filters ?? []) out = out.map(FILTERS[f]!);
  if (out.length < 2) throw new UserError(`${doc.where}: expected at least 2 choices, got ${out.length}`);
  return out;
}

function goldOf(spec: TaskSpec, doc: Doc, n: number): { gold: number; labels?: number[] } {
  const g = spec.gold;
  if (!g) throw new Error('goldOf: multiple_choice task without gold');
  if ('labels_of' in g) {
    const v = lookup(doc, g.labels_of) as Record<string, unknown>;
    const labels = Object.values(v).map((x) => Number(x));
    if (labels.length !== n || labels.some((x) => x !== 0 && x !== 1)) throw new UserError(`${doc.where}: field ${g.labels_of} must map each answer to 0 or 1`);
    const gold = labels.indexOf(1);
    if (gold < 0) throw new UserError(`${doc.where}: field ${g.labels_of} has no correct answer`);
    return { gold, labels };
  }
  const v = lookup(doc, g.field);
  const gold = g.map ? g.map[String(v)] : typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;
  if (gold === undefined || !Number.isInteger(gold) || gold < 0 || gold >= n) {
    const want = g.map ? `one of ${Object.keys(g.map).join(', ')}` : `an index in 0..${n - 1}`;
    throw new UserError(`${doc.where}: field ${g.field} = ${JSON.stringify(v)}, expected ${want}`);
  }
  return { gold };
}

/** The few-shot example text of a row: its prompt, the delimiter and its answer. */
function exampleText(spec: TaskSpec, doc: Doc): string {
  const delim = spec.target_delimiter ?? ' ';
  let target: string;
  if (spec.target !== undefined) target = render(spec.target, doc);
  else {
    const choices = choicesOf(spec, doc);
    target = choices[goldOf(spec, doc, choices.length).gold]!;
  }
  return render(spec.prompt ?? '', doc) + delim + target;
}

/** description + first-n examples (each followed by the few-shot delimiter) + the row's prompt. */
export function buildContext(spec: TaskSpec, doc: Doc, examples: readonly Doc[]): string {
  const sep = spec.fewshot_delimiter ?? '\n\n';
  const description = spec.description !== undefined ? render(spec.description, doc) : '';
  const shots = examples.map((e) => exampleText(spec, e) + sep).join('');
  return description + shots + render(spec.prompt ?? '', doc);
}

function fewshotPool(spec: TaskSpec, subset: string, options: BuildOptions): Doc[] {
  const f = spec.fewshot;
  if (!f || options.numFewshot === 0) return [];
  const path = f.path.replaceAll('{{subset}}', subset);
  const [file] = resolveFiles({ ...f, path }, options.dataDir, options.source);
  const pool = readRows({ path: file!.path, subset }, f).slice(0, f.take ?? Infinity);
  if (pool.length < options.numFewshot) {
    throw new UserError(`${file!.path}: ${options.numFewshot}-shot needs ${options.numFewshot} few-shot rows, the pool has ${pool.length}`);
  }
  return pool.slice(0, options.numFewshot);
}

/** Every instance of a task, subset by subset (each capped at options.limit). */
export function buildInstances(spec: TaskSpec, options: BuildOptions): Instance[] {
  if (options.numFewshot > 0 && !spec.fewshot) throw new UserError(`task ${spec.task} (${options.source}) has no few-shot pool; run it with --num-fewshot 0`);
  const out: Instance[] = [];
  for (const file of resolveFiles(spec.data, options.dataDir, options.source)) {
    const docs = readRows(file, spec.data).slice(0, options.limit ?? Infinity);
    const examples = spec.type === 'multiple_choice' || spec.type === 'generate_until' ? fewshotPool(spec, file.subset, options) : [];
    for (const doc of docs) out.push(instanceOf(spec, options.transformDoc ? options.transformDoc(doc) : doc, examples));
  }
  return out;
}

function stringField(doc: Doc, name: string): string {
  const v = lookup(doc, name);
  if (typeof v !== 'string') throw new UserError(`${doc.where}: field ${name} must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function instanceOf(spec: TaskSpec, doc: Doc, examples: readonly Doc[]): Instance {
  switch (spec.type) {
    case 'multiple_choice': {
      const choices = choicesOf(spec, doc);
      const delim = spec.target_delimiter ?? ' ';
      const inst: MCInstance = { kind: 'mc', doc, context: buildContext(spec, doc, examples), choices, continuations: choices.map((c) => delim + c), ...goldOf(spec, doc, choices.length) };
      return inst;
    }
    case 'pair_preference': {
      const p = spec.pair!;
      return { kind: 'pair', doc, more: stringField(doc, p.more), less: stringField(doc, p.less), category: stringField(doc, p.category) };
    }
    case 'generate_until': {
      const g = spec.generation!;
      const raw = /^\{\{\s*([^}|\s]+)\s*\}\}$/.exec(g.answers);
      const value = raw ? lookup(doc, raw[1]!) : render(g.answers, doc);
      let answers = Array.isArray(value) ? value.map(String) : [String(value)];
      if (g.answer_regex) {
        const re = new RegExp(g.answer_regex);
        answers = answers.map((a) => {
          const m = re.exec(a);
          if (!m) throw new UserError(`${doc.where}: answer ${JSON.stringify(a.slice(-80))} does not match ${g.answer_regex}`);
          return m[1] ?? m[0];
        });
      }
      return { kind: 'gen', doc, context: buildContext(spec, doc, examples), answers };
    }
    case 'perplexity':
      return { kind: 'text', doc, text: stringField(doc, 'text') };
    case 'code_exec':
    case 'bits_per_byte':
      throw new Error(`instanceOf: ${spec.type} tasks read their own data (code-exec.ts, bits-per-byte.ts)`);
  }
}
