// Task definitions are data: one JSON file per task (configs/tasks/*.json) says where the rows are, how a prompt is
// built from a row (a small {{field|filter}} template language), what the choices and the gold answer are, and
// which metrics to report. This file holds their types, the strict validator and the template renderer; it does not
// read datasets (datasets.ts) or score anything (harness.ts).
import { dirname, isAbsolute, resolve } from 'node:path';
import { UserError } from '../util/errors.js';

export type TaskType = 'multiple_choice' | 'pair_preference' | 'perplexity' | 'generate_until' | 'code_exec' | 'bits_per_byte' | 'bias_probe';
export const TASK_TYPES: readonly TaskType[] = ['multiple_choice', 'pair_preference', 'perplexity', 'generate_until', 'code_exec', 'bits_per_byte', 'bias_probe'];

/** 'squad': SQuAD v1.1 JSON, one row per question {id, title, context, question, answers: [texts]}. */
export type DataFormat = 'csv' | 'jsonl' | 'json' | 'text' | 'squad';

export interface DataSpec {
  /** Relative to the data directory; may contain one `*` in the file name (each match is a subset, e.g. an MMLU subject). */
  path: string;
  /** Default: from the extension (.csv, .jsonl, .json, else text); a trailing .gz is decompressed. */
  format?: DataFormat;
  /** Column names of a headerless CSV (else the first row is the header). */
  columns?: string[];
  /** Rows skipped at the start (e.g. the few-shot pool when it comes from the same file). */
  skip?: number;
  /** SQuAD only: keep the questions of paragraphs [from, to) of every article (e.g. a held-out split by paragraph). */
  paragraphs?: [number, number];
}

export interface FewshotSpec extends DataSpec {
  /** Rows of the pool (first n); examples are its first num_fewshot rows. */
  take?: number;
}

export type ChoicesSpec = { field: string } | { literal: string[] } | { keys_of: string };
/** `field` holds a 0-based index (or a key of `map`); `labels_of` an {answer: 0/1} object (every 1 is correct). */
export type GoldSpec = { field: string; map?: Record<string, number> } | { labels_of: string };

export interface ExtractSpec {
  /** Name of the metric variant (lm-eval's filter name, e.g. "strict-match"). */
  name: string;
  /** Regular expression; the answer is its first non-empty group (or the whole match). */
  regex: string;
  /** Which match when there are several. */
  pick: 'first' | 'last';
}

export interface GenerationSpec {
  stop: string[];
  max_tokens: number;
  /** Template of the gold answer(s); a field holding an array gives several accepted answers. */
  answers: string;
  /** Regex applied to the gold text to get the answer (e.g. GSM8K's "#### (.*)"). */
  answer_regex?: string;
  /** Ways to extract the prediction; none = the whole generation. */
  extract?: ExtractSpec[];
  normalize: 'squad' | 'number' | 'none';
}

/** Sampling and sandbox settings of a code_exec task (HumanEval-style functional correctness). */
export interface CodeSpec {
  /** Completions sampled per problem (n of pass@k). */
  samples: number;
  temperature: number;
  top_p: number;
  max_tokens: number;
  /** A completion ends before the first of these. */
  stop: string[];
  /** Wall-clock limit per program, seconds. */
  timeout_s: number;
  /** Address-space limit per program, MiB. */
  memory_mb: number;
  /** Programs run at once. */
  concurrency: number;
  python: string;
  /** Problem i's row r draws from seed + i·samples + r. */
  seed: number;
}

export const CODE_DEFAULTS: CodeSpec = {
  samples: 10, temperature: 0.8, top_p: 0.95, max_tokens: 256, stop: ['\ndef ', '\nclass ', '\nif __name__', '\nprint(', '\n#'],
  timeout_s: 5, memory_mb: 2048, concurrency: 2, python: '/usr/bin/python3', seed: 1234,
};

export interface PairSpec {
  more: string;
  less: string;
  category: string;
}

export interface TaskSpec {
  task: string;
  version: number;
  type: TaskType;
  data: DataSpec;
  fewshot?: FewshotSpec;
  /** Few-shot count when the user gives none (default 0). */
  default_fewshot?: number;
  /** Template printed before the examples ({{subset}} is the subset name). */
  description?: string;
  /** Template of a row's question text. */
  prompt?: string;
  /** Between prompt and answer (default " "). */
  target_delimiter?: string;
  /** Between few-shot examples (default "\n\n"). */
  fewshot_delimiter?: string;
  choices?: ChoicesSpec;
  gold?: GoldSpec;
  /** Template of a few-shot example's answer (default: its gold choice). */
  target?: string;
  /** Filters applied to every choice text. */
  choice_filters?: string[];
  metrics: string[];
  /** Named groups of subsets (MMLU's categories). */
  groups?: Record<string, string[]>;
  pair?: PairSpec;
  generation?: GenerationSpec;
  code?: CodeSpec;
  /** Free text: where the task comes from and how it differs from the reference. */
  notes?: string;
}

const METRICS: Record<TaskType, readonly string[]> = {
  multiple_choice: ['acc', 'acc_norm', 'mc2'],
  pair_preference: ['pct_stereotype'],
  perplexity: ['word_perplexity', 'byte_perplexity', 'bits_per_byte'],
  generate_until: ['exact_match', 'f1'],
  code_exec: [], // pass@k for any k ≥ 1, checked below
  bits_per_byte: ['bits_per_byte', 'xz_bits_per_byte'],
  bias_probe: ['stereotype_score', 'mean_abs_bias', 'likelihood_diff', 'pct_stereotype'],
};

type Obj = Record<string, unknown>;

function fail(source: string, field: string, want: string, got: unknown): never {
  throw new UserError(`${source}: field ${field} must be ${want}, got ${JSON.stringify(got)}`);
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Obj, k: string, source: string, prefix = ''): string {
  if (typeof o[k] !== 'string') fail(source, prefix + k, 'a string', o[k]);
  return o[k];
}

function optStr(o: Obj, k: string, source: string, prefix = ''): string | undefined {
  return o[k] === undefined ? undefined : str(o, k, source, prefix);
}

function strArray(o: Obj, k: string, source: string, prefix = ''): string[] {
  const v = o[k];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) fail(source, prefix + k, 'an array of strings', v);
  return v as string[];
}

function nonNegInt(o: Obj, k: string, source: string, prefix = ''): number | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) fail(source, prefix + k, 'an integer ≥ 0', v);
  return v;
}

function checkKeys(o: Obj, allowed: readonly string[], source: string, prefix: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new UserError(`${source}: unknown field ${prefix}${k} (expected one of ${allowed.join(', ')})`);
  }
}

function dataSpec(v: unknown, source: string, name: string, fewshot: boolean): FewshotSpec {
  if (!isObj(v)) fail(source, name, 'an object with a path', v);
  const p = `${name}.`;
  checkKeys(v, ['path', 'format', 'columns', 'skip', 'paragraphs', ...(fewshot ? ['take'] : [])], source, p);
  const format = optStr(v, 'format', source, p);
  if (format !== undefined && !['csv', 'jsonl', 'json', 'text', 'squad'].includes(format)) fail(source, p + 'format', 'csv, jsonl, json, text or squad', format);
  const out: FewshotSpec = { path: str(v, 'path', source, p) };
  if (format !== undefined) out.format = format as DataFormat;
  if (v.columns !== undefined) out.columns = strArray(v, 'columns', source, p);
  const skip = nonNegInt(v, 'skip', source, p);
  if (skip !== undefined) out.skip = skip;
  const take = nonNegInt(v, 'take', source, p);
  if (take !== undefined) out.take = take;
  if (v.paragraphs !== undefined) {
    const r = v.paragraphs;
    if (!Array.isArray(r) || r.length !== 2 || !r.every((x) => Number.isInteger(x) && (x as number) >= 0) || (r[0] as number) >= (r[1] as number)) fail(source, p + 'paragraphs', '[from, to]: two integers with 0 ≤ from < to', r);
    if (out.format !== 'squad') fail(source, p + 'paragraphs', 'format "squad" (paragraphs select SQuAD paragraphs)', format);
    out.paragraphs = [r[0] as number, r[1] as number];
  }
  return out;
}

/** Validates a parsed task file; every problem names the file and the field. */
export function parseTaskSpec(raw: unknown, source: string): TaskSpec {
  if (!isObj(raw)) throw new UserError(`${source}: expected a JSON object describing a task`);
  checkKeys(raw, ['task', 'version', 'type', 'data', 'fewshot', 'default_fewshot', 'description', 'prompt', 'target_delimiter', 'fewshot_delimiter', 'choices', 'gold', 'target', 'choice_filters', 'metrics', 'groups', 'pair', 'generation', 'code', 'notes'], source, '');
  const type = str(raw, 'type', source) as TaskType;
  if (!TASK_TYPES.includes(type)) fail(source, 'type', TASK_TYPES.join(' | '), type);
  if (typeof raw.version !== 'number') fail(source, 'version', 'a number', raw.version);
  const spec: TaskSpec = { task: str(raw, 'task', source), version: raw.version, type, data: dataSpec(raw.data, source, 'data', false), metrics: strArray(raw, 'metrics', source) };
  for (const m of spec.metrics) if (type === 'code_exec' ? !/^pass@[1-9]\d*$/.test(m) : !METRICS[type].includes(m)) fail(source, 'metrics', type === 'code_exec' ? 'a list of pass@k names (pass@1, pass@10, …)' : `a list of ${METRICS[type].join(', ')} (for type ${type})`, m);
  if (raw.fewshot !== undefined) spec.fewshot = dataSpec(raw.fewshot, source, 'fewshot', true);
  const df = nonNegInt(raw, 'default_fewshot', source);
  if (df !== undefined) spec.default_fewshot = df;
  for (const k of ['description', 'prompt', 'target_delimiter', 'fewshot_delimiter', 'target', 'notes'] as const) {
    const v = optStr(raw, k, source);
    if (v !== undefined) spec[k] = v;
  }
  if (raw.choice_filters !== undefined) spec.choice_filters = strArray(raw, 'choice_filters', source);
  for (const f of spec.choice_filters ?? []) if (!(f in FILTERS)) fail(source, 'choice_filters', `names of filters (${Object.keys(FILTERS).join(', ')})`, f);
  if (raw.groups !== undefined) {
    if (!isObj(raw.groups)) fail(source, 'groups', 'an object of group → subset names', raw.groups);
    const groups = raw.groups;
    spec.groups = Object.fromEntries(Object.keys(groups).map((g) => [g, strArray(groups, g, source, 'groups.')]));
  }
  const needPrompt = type === 'multiple_choice' || type === 'generate_until';
  if (needPrompt && spec.prompt === undefined) fail(source, 'prompt', 'a template string', undefined);
  if (type === 'multiple_choice') {
    const c = raw.choices;
    if (isObj(c) && typeof c.field === 'string') spec.choices = { field: c.field };
    else if (isObj(c) && Array.isArray(c.literal)) spec.choices = { literal: strArray(c, 'literal', source, 'choices.') };
    else if (isObj(c) && typeof c.keys_of === 'string') spec.choices = { keys_of: c.keys_of };
    else fail(source, 'choices', '{"field": name} | {"literal": [..]} | {"keys_of": name}', c);
    const g = raw.gold;
    if (isObj(g) && typeof g.field === 'string') {
      const gold: GoldSpec = { field: g.field };
      if (g.map !== undefined) {
        if (!isObj(g.map) || !Object.values(g.map).every((x) => Number.isInteger(x))) fail(source, 'gold.map', 'an object of value → index', g.map);
        gold.map = g.map as Record<string, number>;
      }
      spec.gold = gold;
    } else if (isObj(g) && typeof g.labels_of === 'string') spec.gold = { labels_of: g.labels_of };
    else fail(source, 'gold', '{"field": name, "map"?: {..}} | {"labels_of": name}', g);
  }
  if (type === 'pair_preference') {
    const p = raw.pair;
    if (!isObj(p)) fail(source, 'pair', 'an object {more, less, category}', p);
    spec.pair = { more: str(p, 'more', source, 'pair.'), less: str(p, 'less', source, 'pair.'), category: str(p, 'category', source, 'pair.') };
  }
  // A bias probe's data is its probe file (src/eval/bias-probe.ts), found beside the task file, not in --data-dir.
  if (type === 'bias_probe' && !isAbsolute(spec.data.path)) spec.data.path = resolve(dirname(source), spec.data.path);
  if (type === 'code_exec') spec.code = codeSpec(raw.code, source);
  else if (raw.code !== undefined) throw new UserError(`${source}: field code belongs to type code_exec only`);
  if (type === 'generate_until') {
    const g = raw.generation;
    if (!isObj(g)) fail(source, 'generation', 'an object {stop, max_tokens, answers, normalize}', g);
    checkKeys(g, ['stop', 'max_tokens', 'answers', 'answer_regex', 'extract', 'normalize'], source, 'generation.');
    const maxTokens = nonNegInt(g, 'max_tokens', source, 'generation.');
    if (!maxTokens) fail(source, 'generation.max_tokens', 'a positive integer', g.max_tokens);
    const normalize = str(g, 'normalize', source, 'generation.');
    if (!['squad', 'number', 'none'].includes(normalize)) fail(source, 'generation.normalize', 'squad, number or none', normalize);
    const gen: GenerationSpec = { stop: strArray(g, 'stop', source, 'generation.'), max_tokens: maxTokens, answers: str(g, 'answers', source, 'generation.'), normalize: normalize as GenerationSpec['normalize'] };
    const ar = optStr(g, 'answer_regex', source, 'generation.');
    if (ar !== undefined) gen.answer_regex = checkRegex(ar, source, 'generation.answer_regex');
    if (g.extract !== undefined) {
      if (!Array.isArray(g.extract)) fail(source, 'generation.extract', 'an array of {name, regex, pick}', g.extract);
      gen.extract = g.extract.map((e: unknown, i) => {
        const p = `generation.extract[${i}].`;
        if (!isObj(e)) fail(source, p.slice(0, -1), 'an object {name, regex, pick}', e);
        const pick = str(e, 'pick', source, p);
        if (pick !== 'first' && pick !== 'last') fail(source, p + 'pick', 'first or last', pick);
        return { name: str(e, 'name', source, p), regex: checkRegex(str(e, 'regex', source, p), source, p + 'regex'), pick };
      });
    }
    spec.generation = gen;
  }
  return spec;
}

function positive(o: Obj, k: string, source: string, prefix: string, integer: boolean): number | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v) || (integer && !Number.isInteger(v))) fail(source, prefix + k, integer ? 'an integer ≥ 1' : 'a number > 0', v);
  return v;
}

/** The code section of a code_exec task; absent keys take CODE_DEFAULTS. */
function codeSpec(v: unknown, source: string): CodeSpec {
  if (v === undefined) return { ...CODE_DEFAULTS, stop: [...CODE_DEFAULTS.stop] };
  if (!isObj(v)) fail(source, 'code', 'an object of sampling and sandbox settings', v);
  const p = 'code.';
  checkKeys(v, Object.keys(CODE_DEFAULTS), source, p);
  const out: CodeSpec = { ...CODE_DEFAULTS, stop: v.stop === undefined ? [...CODE_DEFAULTS.stop] : strArray(v, 'stop', source, p) };
  for (const k of ['samples', 'max_tokens', 'concurrency'] as const) out[k] = positive(v, k, source, p, true) ?? out[k];
  for (const k of ['timeout_s', 'memory_mb'] as const) out[k] = positive(v, k, source, p, false) ?? out[k];
  if (v.temperature !== undefined && (typeof v.temperature !== 'number' || !(v.temperature >= 0))) fail(source, p + 'temperature', 'a number ≥ 0 (0 = greedy)', v.temperature);
  if (v.top_p !== undefined && (typeof v.top_p !== 'number' || !(v.top_p > 0 && v.top_p <= 1))) fail(source, p + 'top_p', 'a number in (0, 1]', v.top_p);
  out.temperature = (v.temperature as number | undefined) ?? out.temperature;
  out.top_p = (v.top_p as number | undefined) ?? out.top_p;
  out.python = optStr(v, 'python', source, p) ?? out.python;
  out.seed = nonNegInt(v, 'seed', source, p) ?? out.seed;
  return out;
}

function checkRegex(re: string, source: string, field: string): string {
  try {
    new RegExp(re);
  } catch (e) {
    throw new UserError(`${source}: field ${field} is not a valid regular expression (${(e as Error).message})`);
  }
  return re;
}

/** lm-eval's HellaSwag preprocessing: strip, "[title]" → ". ", drop other [tags], collapse double spaces. */
function hellaswag(text: string): string {
  return text.trim().replaceAll(' [title]', '. ').replace(/\[.*?\]/g, '').replaceAll('  ', ' ');
}

export const FILTERS: Record<string, (s: string) => string> = {
  strip: (s) => s.trim(),
  spaces: (s) => s.replaceAll('_', ' '),
  hellaswag,
};

/** A row of a dataset with where it came from, for error messages. */
export interface Doc {
  fields: Record<string, unknown>;
  /** "file:line" */
  where: string;
  /** Subset (e.g. MMLU subject) the row belongs to; "" when the task has none. */
  subset: string;
}

/** Looks up "a.b.0" in a row; errors name the row's file and line. */
export function lookup(doc: Doc, path: string): unknown {
  if (path === 'subset' && !('subset' in doc.fields)) return doc.subset;
  let v: unknown = doc.fields;
  for (const part of path.split('.')) {
    if (Array.isArray(v) && /^\d+$/.test(part)) v = v[Number(part)];
    else if (isObj(v) && part in v) v = v[part];
    else throw new UserError(`${doc.where}: row has no field ${JSON.stringify(path)}`);
  }
  return v;
}

/** Renders "{{field}}", "{{field.0}}", "{{field|strip|spaces}}" against a row. */
export function render(template: string, doc: Doc): string {
  return template.replace(/\{\{\s*([^}|\s]+)\s*((?:\|\s*\w+\s*)*)\}\}/g, (_, path: string, filters: string) => {
    const v = lookup(doc, path);
    let s = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
    for (const f of filters.split('|').map((x) => x.trim()).filter((x) => x !== '')) {
      const fn = FILTERS[f];
      if (!fn) throw new UserError(`template ${JSON.stringify(template)}: unknown filter ${f} (expected one of ${Object.keys(FILTERS).join(', ')})`);
      s = fn(s);
    }
    return s;
  });
}
