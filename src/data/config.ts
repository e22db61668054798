// The curation config: one YAML or JSON file (snake_case keys) validated by hand into a typed object with the
// published defaults filled in. Every error names the offending key path and what was expected; unknown keys are
// errors. No pipeline logic here.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { UserError } from '../util/errors.js';
import { INVALID_UTF8_POLICIES } from '../util/utf8.js';
import type { InvalidUtf8Policy } from '../util/utf8.js';
import { DEFAULT_CLEAN } from './clean.js';
import type { CleanConfig } from './clean.js';
import { DEFAULT_PII } from './pii.js';
import type { PiiConfig } from './pii.js';
import { DEFAULT_GOPHER_QUALITY, DEFAULT_GOPHER_REPETITION } from './filters/gopher.js';
import type { GopherQualityConfig, GopherRepetitionConfig } from './filters/gopher.js';
import { DEFAULT_C4 } from './filters/c4.js';
import type { C4Config } from './filters/c4.js';
import { DEFAULT_FINEWEB } from './filters/fineweb.js';
import type { FineWebConfig } from './filters/fineweb.js';
import { DEFAULT_CODE_ALNUM, DEFAULT_CODE_COMMENT_ONLY, DEFAULT_CODE_GENERATED, DEFAULT_CODE_LINE_LENGTH } from './filters/code.js';
import type { CodeAlnumConfig, CodeCommentOnlyConfig, CodeGeneratedConfig, CodeLineLengthConfig } from './filters/code.js';
import { DEFAULT_LANGUAGE } from './langid.js';
import type { LanguageFilterConfig } from './langid.js';
import { DEFAULT_CDA } from './cda.js';
import type { CdaConfig } from './cda.js';
import { DEFAULT_HARMFUL } from './harmful.js';
import type { HarmfulConfig } from './harmful.js';
import { DEFAULT_DEDUP } from './dedup/stages.js';
import type { DedupConfig } from './dedup/stages.js';
import { DEFAULT_MIX } from './mix.js';
import type { MixConfig } from './mix.js';
import type { InputFormat, OnBadRecord, TextSplit } from './readers.js';

export const STAGES = ['train-scorer', 'filter', 'dedup-signature', 'dedup-bucket', 'dedup-cluster', 'dedup-filter', 'mix'] as const;
export type StageName = (typeof STAGES)[number];

export interface SourceConfig {
  name: string;
  paths: string[];
  format: InputFormat | 'auto';
  textField: string;
  idField?: string;
  extensions?: string[];
  split: TextSplit;
}

export interface ScorerConfig {
  kind: string;
  /** Extra options handed to the scorer kind's factory (e.g. a neural scorer's batch size or context length). */
  options: Record<string, unknown>;
  /** Model file (for kneser-ney: trained by the train-scorer stage when `train` is given and the file is missing). */
  model: string;
  train: { paths: string[]; format: InputFormat | 'auto'; textField: string; order: number; maxDocs: number | null } | null;
  field: string;
  /** Absolute cut (perplexity above it is dropped for lower-is-better scorers). */
  threshold: number | null;
  /** Keep this fraction of documents: the cut is the quantile of the scores of the first calibrationDocs documents. */
  keepFraction: number | null;
  calibrationDocs: number;
}

export interface FiltersConfig {
  language: LanguageFilterConfig | null;
  gopherRepetition: GopherRepetitionConfig | null;
  gopherQuality: GopherQualityConfig | null;
  c4: C4Config | null;
  fineweb: FineWebConfig | null;
  harmful: HarmfulConfig | null;
  /** Source-code rules (filters/code.ts); off unless the config names them. */
  codeGenerated: CodeGeneratedConfig | null;
  codeLineLength: CodeLineLengthConfig | null;
  codeAlnum: CodeAlnumConfig | null;
  codeCommentOnly: CodeCommentOnlyConfig | null;
}

export interface CurateConfig {
  output: string;
  sources: SourceConfig[];
  onBadRecord: OnBadRecord;
  /** Invalid UTF-8 or lone surrogates in a record: error (a malformed record), skip (dropped, counted) or replace (U+FFFD). */
  invalidUtf8: InvalidUtf8Policy;
  clean: CleanConfig | null;
  pii: PiiConfig | null;
  filters: FiltersConfig;
  scorer: ScorerConfig | null;
  dedup: DedupConfig | null;
  mix: MixConfig | null;
  /** Counterfactual augmentation of the kept documents (data/cda.ts); null = off (the default). */
  cda: CdaConfig | null;
  stages: StageName[];
}

/** A bad config: the message names the file, the key path and what was expected. */
export class ConfigError extends UserError {}

type Obj = Record<string, unknown>;

const camel = (k: string): string => k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const snake = (k: string): string => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function fail(path: string, msg: string): never {
  throw new ConfigError(`${path}: ${msg}`);
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'string' ? `"${v}"` : `${typeof v} ${String(v)}`;
}

/**
 * Overlays a snake_case config section onto a camelCase default object, checking every key's type against the
 * default's (numbers, booleans, strings, lists, nullable numbers); unknown keys are errors.
 * `false` turns a section off (null); `true` or a missing section keeps the defaults. `optional` names keys with no
 * default that take a string (file paths) or null.
 */
function section<T extends object>(path: string, value: unknown, defaults: T, optional: Set<string> = new Set()): T | null {
  if (value === false || value === null) return null;
  if (value === undefined || value === true) return structuredClone(defaults);
  if (!isObj(value)) fail(path, `expected a mapping, true or false, got ${describe(value)}`);
  const out = structuredClone(defaults) as Obj;
  const allowed = Object.keys(defaults).concat([...optional]);
  for (const [k, v] of Object.entries(value)) {
    const key = camel(k);
    const p = `${path}.${k}`;
    if (!allowed.includes(key)) fail(p, `unknown key (expected one of ${allowed.map(snake).join(', ')})`);
    const d = (defaults as Obj)[key];
    if (v === null) {
      if (d === null || typeof d === 'number' || optional.has(key)) {
        out[key] = null;
        continue;
      }
      fail(p, `cannot be null`);
    }
    if (d === undefined) {
      // Optional keys without a default are file paths.
      if (typeof v !== 'string') fail(p, `expected a string, got ${describe(v)}`);
    } else if (d === null || typeof d === 'number') {
      if (typeof v !== 'number' || !Number.isFinite(v)) fail(p, `expected a number${d === null ? ' or null' : ''}, got ${describe(v)}`);
    } else if (typeof d === 'boolean' && typeof v !== 'boolean') fail(p, `expected true or false, got ${describe(v)}`);
    else if (typeof d === 'string' && typeof v !== 'string') fail(p, `expected a string, got ${describe(v)}`);
    else if (Array.isArray(d)) {
      if (!Array.isArray(v)) fail(p, `expected a list, got ${describe(v)}`);
      const inner = d[0];
      v.forEach((x, i) => {
        if (inner !== undefined && typeof inner !== typeof x) fail(`${p}[${i}]`, `expected ${Array.isArray(inner) ? 'a list' : `a ${typeof inner}`}, got ${describe(x)}`);
        if (Array.isArray(inner) && (!Array.isArray(x) || x.length !== inner.length || x.some((y) => typeof y !== 'number'))) {
          fail(`${p}[${i}]`, `expected [n, threshold], got ${JSON.stringify(x)}`);
        }
      });
    }
    out[key] = v;
  }
  return out as T;
}

function str(path: string, v: unknown): string {
  if (typeof v !== 'string' || v === '') fail(path, `expected a non-empty string, got ${describe(v)}`);
  return v;
}

function strList(path: string, v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v) || v.length === 0) fail(path, `expected a string or a non-empty list of strings, got ${describe(v)}`);
  return v.map((x, i) => str(`${path}[${i}]`, x));
}

function oneOf<T extends string>(path: string, v: unknown, options: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !options.includes(v as T)) fail(path, `expected one of ${options.join(', ')}, got ${describe(v)}`);
  return v as T;
}

function onlyKeys(path: string, v: Obj, keys: string[]): void {
  for (const k of Object.keys(v)) if (!keys.includes(k)) fail(`${path}.${k}`, `unknown key (expected one of ${keys.join(', ')})`);
}

const FORMATS = ['auto', 'txt', 'jsonl', 'csv', 'parquet'] as const;

/** Validates a parsed config object; relative paths are resolved against `baseDir`. */
export function validateConfig(raw: unknown, baseDir = process.cwd()): CurateConfig {
  if (!isObj(raw)) fail('(config)', `expected a mapping at the top level, got ${describe(raw)}`);
  const top = ['output', 'sources', 'on_bad_record', 'invalid_utf8', 'clean', 'pii', 'filters', 'scorer', 'dedup', 'mix', 'cda', 'stages'];
  onlyKeys('(config)', raw, top);
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  const output = abs(str('output', raw.output));
  if (!Array.isArray(raw.sources) || raw.sources.length === 0) fail('sources', 'expected a non-empty list of sources');
  const names = new Set<string>();
  const sources: SourceConfig[] = raw.sources.map((s, i) => {
    const p = `sources[${i}]`;
    if (!isObj(s)) fail(p, `expected a mapping, got ${describe(s)}`);
    onlyKeys(p, s, ['name', 'paths', 'format', 'text_field', 'id_field', 'extensions', 'split']);
    const name = str(`${p}.name`, s.name);
    if (names.has(name)) fail(`${p}.name`, `duplicate source name "${name}"`);
    names.add(name);
    const src: SourceConfig = {
      name,
      paths: strList(`${p}.paths`, s.paths).map(abs),
      format: oneOf(`${p}.format`, s.format, FORMATS, 'auto'),
      textField: s.text_field === undefined ? 'text' : str(`${p}.text_field`, s.text_field),
      split: oneOf(`${p}.split`, s.split, ['file', 'paragraph', 'line'] as const, 'file'),
    };
    if (s.id_field !== undefined) src.idField = str(`${p}.id_field`, s.id_field);
    if (s.extensions !== undefined) src.extensions = strList(`${p}.extensions`, s.extensions);
    return src;
  });
  const f = raw.filters === undefined ? {} : raw.filters;
  if (!isObj(f)) fail('filters', `expected a mapping, got ${describe(f)}`);
  const codeKeys = ['code_generated', 'code_line_length', 'code_alnum', 'code_comment_only'];
  onlyKeys('filters', f, ['language', 'gopher_repetition', 'gopher_quality', 'c4', 'fineweb', 'harmful', ...codeKeys]);
  const codeSection = <T extends object>(key: string, defaults: T): T | null => (f[key] === undefined ? null : section(`filters.${key}`, f[key], defaults));
  const harmful = f.harmful === undefined ? null : section('filters.harmful', f.harmful, DEFAULT_HARMFUL, new Set(['termsFile']));
  if (harmful?.termsFile !== undefined && harmful.termsFile !== null) harmful.termsFile = abs(harmful.termsFile);
  const filters: FiltersConfig = {
    language: section('filters.language', f.language, DEFAULT_LANGUAGE),
    gopherRepetition: section('filters.gopher_repetition', f.gopher_repetition, DEFAULT_GOPHER_REPETITION),
    gopherQuality: section('filters.gopher_quality', f.gopher_quality, DEFAULT_GOPHER_QUALITY),
    c4: section('filters.c4', f.c4, DEFAULT_C4),
    fineweb: section('filters.fineweb', f.fineweb, DEFAULT_FINEWEB),
    harmful,
    codeGenerated: codeSection('code_generated', DEFAULT_CODE_GENERATED),
    codeLineLength: codeSection('code_line_length', DEFAULT_CODE_LINE_LENGTH),
    codeAlnum: codeSection('code_alnum', DEFAULT_CODE_ALNUM),
    codeCommentOnly: codeSection('code_comment_only', DEFAULT_CODE_COMMENT_ONLY),
  };
  for (const [key, v] of [['code_line_length', filters.codeLineLength?.maxLineLength], ['code_line_length', filters.codeLineLength?.maxMeanLineLength], ['code_generated', filters.codeGenerated?.headerLines]] as const) {
    if (v !== undefined && v !== null && !(v > 0)) fail(`filters.${key}`, `expected positive lengths, got ${v}`);
  }
  if (filters.codeAlnum && !(filters.codeAlnum.minFraction >= 0 && filters.codeAlnum.minFraction <= 1)) fail('filters.code_alnum.min_fraction', `expected a number in [0, 1], got ${filters.codeAlnum.minFraction}`);
  for (const [i, m] of (filters.codeGenerated?.markers ?? []).entries()) {
    try {
      new RegExp(m, 'im');
    } catch (e) {
      fail(`filters.code_generated.markers[${i}]`, `not a valid regular expression (${(e as Error).message})`);
    }
  }
  let scorer: ScorerConfig | null = null;
  if (raw.scorer !== undefined && raw.scorer !== null && raw.scorer !== false) {
    const s = raw.scorer;
    if (!isObj(s)) fail('scorer', `expected a mapping, got ${describe(s)}`);
    onlyKeys('scorer', s, ['kind', 'model', 'options', 'train', 'field', 'threshold', 'keep_fraction', 'calibration_docs']);
    if (s.options !== undefined && !isObj(s.options)) fail('scorer.options', `expected a mapping, got ${describe(s.options)}`);
    const num = (k: string, v: unknown, lo: number, hi: number): number | null => {
      if (v === undefined || v === null) return null;
      if (typeof v !== 'number' || !(v >= lo && v <= hi)) fail(`scorer.${k}`, `expected a number in [${lo}, ${hi}], got ${describe(v)}`);
      return v;
    };
    let train: ScorerConfig['train'] = null;
    if (s.train !== undefined && s.train !== null) {
      const t = s.train;
      if (!isObj(t)) fail('scorer.train', `expected a mapping, got ${describe(t)}`);
      onlyKeys('scorer.train', t, ['paths', 'format', 'text_field', 'order', 'max_docs']);
      const order = t.order === undefined ? 5 : t.order;
      if (typeof order !== 'number' || !Number.isInteger(order) || order < 1 || order > 8) fail('scorer.train.order', `expected an integer 1..8, got ${describe(order)}`);
      const maxDocs = t.max_docs === undefined || t.max_docs === null ? null : t.max_docs;
      if (maxDocs !== null && (typeof maxDocs !== 'number' || maxDocs < 1)) fail('scorer.train.max_docs', `expected a positive number, got ${describe(maxDocs)}`);
      train = {
        paths: strList('scorer.train.paths', t.paths).map(abs),
        format: oneOf('scorer.train.format', t.format, FORMATS, 'auto'),
        textField: t.text_field === undefined ? 'text' : str('scorer.train.text_field', t.text_field),
        order,
        maxDocs,
      };
    }
    scorer = {
      kind: s.kind === undefined ? 'kneser-ney' : str('scorer.kind', s.kind),
      options: s.options === undefined ? {} : (s.options as Record<string, unknown>),
      model: abs(str('scorer.model', s.model)),
      train,
      field: s.field === undefined ? 'ccnet_perplexity' : str('scorer.field', s.field),
      threshold: num('threshold', s.threshold, -Infinity, Infinity),
      keepFraction: num('keep_fraction', s.keep_fraction, 0, 1),
      calibrationDocs: num('calibration_docs', s.calibration_docs, 1, 1e9) ?? 2000,
    };
    if (scorer.threshold !== null && scorer.keepFraction !== null) fail('scorer.keep_fraction', 'give either threshold or keep_fraction, not both');
  }
  let dedup: DedupConfig | null = null;
  if (raw.dedup !== false && raw.dedup !== null) {
    const d = raw.dedup === undefined || raw.dedup === true ? {} : raw.dedup;
    if (!isObj(d)) fail('dedup', `expected a mapping, true or false, got ${describe(d)}`);
    const { exact, near, verify_threshold, ...mh } = d;
    const given = Object.fromEntries(Object.entries({ exact, near, verify_threshold }).filter(([, v]) => v !== undefined));
    const top2 = section('dedup', given, { exact: true, near: true, verifyThreshold: DEFAULT_DEDUP.verifyThreshold as number | null })!;
    dedup = { ...DEFAULT_DEDUP, ...top2, minhash: section('dedup', mh, DEFAULT_DEDUP.minhash)! };
    if (dedup.verifyThreshold !== null && !(dedup.verifyThreshold >= 0 && dedup.verifyThreshold <= 1)) fail('dedup.verify_threshold', 'expected a number in [0, 1] or null');
    for (const k of ['ngram', 'bands', 'rows'] as const) {
      if (!Number.isInteger(dedup.minhash[k]) || dedup.minhash[k] < 1) fail(`dedup.${k}`, `expected a positive integer, got ${dedup.minhash[k]}`);
    }
  }
  let mix: MixConfig | null = null;
  if (raw.mix !== undefined && raw.mix !== null && raw.mix !== false) {
    const m = raw.mix === true ? {} : raw.mix;
    if (!isObj(m)) fail('mix', `expected a mapping, got ${describe(m)}`);
    const { sources: ms, quality, unit, ...rest } = m;
    const base = section('mix', rest, { temperature: 1, total: null as number | null, maxEpochs: 4, seed: 0 })!;
    if (!(base.temperature > 0)) fail('mix.temperature', `expected a positive number, got ${base.temperature}`);
    if (!(base.maxEpochs > 0)) fail('mix.max_epochs', `expected a positive number, got ${base.maxEpochs}`);
    const srcs: MixConfig['sources'] = {};
    if (ms !== undefined) {
      if (!isObj(ms)) fail('mix.sources', `expected a mapping of source name to {weight, max_epochs}, got ${describe(ms)}`);
      for (const [name, v] of Object.entries(ms)) {
        if (!names.has(name)) fail(`mix.sources.${name}`, `no source named "${name}" (have ${[...names].join(', ')})`);
        const sc = section(`mix.sources.${name}`, v, { weight: 1, maxEpochs: null as number | null })!;
        if (!(sc.weight >= 0)) fail(`mix.sources.${name}.weight`, `expected a non-negative number, got ${sc.weight}`);
        srcs[name] = sc.maxEpochs === null ? { weight: sc.weight } : { weight: sc.weight, maxEpochs: sc.maxEpochs };
      }
    }
    const q = quality === undefined || quality === null ? null : section('mix.quality', quality, { field: 'ccnet_perplexity', alpha: 1, lowerIsBetter: true });
    mix = { ...DEFAULT_MIX, ...base, unit: oneOf('mix.unit', unit, ['documents', 'bytes'] as const, 'documents'), sources: srcs, quality: q };
  }
  let stages: StageName[];
  if (raw.stages === undefined) {
    stages = [...(scorer?.train ? (['train-scorer'] as const) : []), 'filter'];
    if (dedup) stages.push('dedup-signature', 'dedup-bucket', 'dedup-cluster', 'dedup-filter');
    if (mix) stages.push('mix');
  } else {
    stages = strList('stages', raw.stages).map((s, i) => oneOf(`stages[${i}]`, s, STAGES, 'filter'));
  }
  const cfg: CurateConfig = {
    output,
    sources,
    onBadRecord: oneOf('on_bad_record', raw.on_bad_record, ['skip', 'fail'] as const, 'skip'),
    invalidUtf8: oneOf('invalid_utf8', raw.invalid_utf8, INVALID_UTF8_POLICIES, 'error'),
    clean: section('clean', raw.clean, DEFAULT_CLEAN),
    pii: section('pii', raw.pii, DEFAULT_PII),
    filters,
    scorer,
    dedup,
    mix,
    cda: raw.cda === undefined ? null : section('cda', raw.cda, DEFAULT_CDA, new Set(['pairsFile'])),
    stages,
  };
  if (cfg.cda && !['duplicate', 'replace'].includes(cfg.cda.mode)) fail('cda.mode', `expected duplicate or replace, got ${describe(cfg.cda.mode)}`);
  if (cfg.cda && !(cfg.cda.probability >= 0 && cfg.cda.probability <= 1)) fail('cda.probability', `expected a number in [0, 1], got ${describe(cfg.cda.probability)}`);
  if (cfg.cda?.pairsFile) cfg.cda.pairsFile = abs(cfg.cda.pairsFile);
  if (cfg.stages.some((s) => s.startsWith('dedup')) && cfg.dedup === null) fail('stages', 'dedup stages listed but dedup is off');
  if (cfg.stages.includes('mix') && cfg.mix === null) fail('stages', 'mix stage listed but no mix section');
  if (cfg.stages.includes('train-scorer') && cfg.scorer?.train == null) fail('stages', 'train-scorer listed but scorer.train is not configured');
  return cfg;
}

/** Reads and validates a YAML (.yaml/.yml) or JSON config file; errors name the file and key. */
export function loadConfig(path: string): CurateConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`${path}: cannot read config (${(e as Error).message})`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError(`${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'} (${(e as Error).message})`, { cause: e });
  }
  try {
    return validateConfig(raw, dirname(resolve(path)));
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`${path}: ${e.message}`, { cause: e });
    throw e;
  }
}
