// The upgrade pipeline's file: one YAML (or JSON) document describing a model version's whole recipe as stages, read
// and checked here into a plan whose stages form a graph (edges from `${stage}` references). Running it is
// pipeline-run.ts. Paths are relative to the working directory, as in every lmforge config.
//
//   name: shakespeare          # model version name: the trained run is registered as name@vN
//   parent: shakespeare-v1     # the parent version: name@vN, a tag, a run; null for a first version
//   parent_pipeline: v1.yaml   # or: the parent is what this pipeline file makes (run first, cached as usual)
//   tag: shakespeare-v2        # optional: a tag moved onto the new version (a later pipeline's parent)
//   work_dir: runs/pipeline    # stage outputs go to <work_dir>/<stage>-<key>/ (key: the stage's content hash)
//   register: train            # the train stage whose run becomes the version (default: the only one)
//   report_samples: true       # the comparison report samples both models side by side (false: no models loaded)
//   stages:
//     split:     { kind: holdout, input: text.txt, fraction: 0.05 }          # → train.txt, heldout.txt
//     clean:     { kind: curate, input: "${split}/train.txt", config: curate.yaml }   # → curated.txt, curate-report.json
//     chars:     { kind: prepare, input: "${split}/train.txt", val_fraction: 0.1 }   # char-level data dir
//     tok:       { kind: tokenizer, input: "${split}/train.txt", type: bpe, vocab_size: 512 }  # → tokenizer.json
//     data:      { kind: tokenize, tokenizer: "${tok}/tokenizer.json", input: "${split}/train.txt" }
//     train:     { kind: train, data: "${data}", config: configs/x.yaml, set: { max_iters: 500 } }
//     chat:      { kind: sft, model: "${train}", config: configs/align/sft.yaml, set: { max_iters: 100 } }  # align sft
//     eval:      { kind: eval, model: "${train}", tasks: [name], task_dir: dir, data_dir: "${split}" }
//
// A string may name another stage's output directory as ${stage} (alone or as the start of a path); that makes the
// edge. Unknown kinds, fields and stages, cycles and wrong types are UserErrors naming the file, line and field.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { alignSpec, type AlignConfig } from '../align/config.js';
import { validateConfig, type CurateConfig } from '../data/config.js';
import { objectLayer, readConfigFile, resolveConfig, resolveConfigWithAliases, type ObjectLayer } from '../util/config.js';
import { UserError } from '../util/errors.js';
import { TRAIN_ALIASES, trainSpec, type TrainConfig } from '../train/train-config.js';

export const STAGE_KINDS = ['holdout', 'curate', 'prepare', 'tokenizer', 'tokenize', 'train', 'sft', 'eval'] as const;
export type StageKind = (typeof STAGE_KINDS)[number];

type FieldType = 'file' | 'dir' | 'number' | 'integer' | 'string' | 'strings' | 'mapping';
interface FieldSpec {
  type: FieldType;
  required?: boolean;
  default?: unknown;
  choices?: readonly string[];
  doc: string;
}

/** Each kind's fields: 'file' and 'dir' fields are inputs whose contents enter the stage's key. */
export const KIND_FIELDS: { [K in StageKind]: Record<string, FieldSpec> } = {
  holdout: {
    input: { type: 'file', required: true, doc: 'UTF-8 text file' },
    fraction: { type: 'number', default: 0.05, doc: 'the end of the text held out (cut at a blank line): heldout.txt; the rest: train.txt' },
  },
  curate: {
    input: { type: 'file', required: true, doc: 'UTF-8 text file to curate → curated.txt (what survives, in order) and curate-report.json' },
    config: { type: 'file', required: true, doc: 'curation config (lmforge curate: clean, pii, filters, scorer, dedup, mix; no sources or output: the stage gives them)' },
    split: { type: 'string', default: 'paragraph', choices: ['file', 'paragraph', 'line'], doc: 'the documents the filters judge: paragraphs (blank-line separated), lines or the whole file' },
  },
  prepare: {
    input: { type: 'file', required: true, doc: 'text file → character-level train.bin/val.bin/meta.json' },
    val_fraction: { type: 'number', default: 0.1, doc: 'fraction held out for validation' },
  },
  tokenizer: {
    input: { type: 'file', required: true, doc: 'training text' },
    type: { type: 'string', default: 'bpe', choices: ['bpe', 'unigram'], doc: 'byte-level BPE or unigram LM' },
    vocab_size: { type: 'integer', required: true, doc: 'total vocabulary size' },
    min_frequency: { type: 'integer', default: 2, doc: 'BPE: never merge pairs seen fewer times' },
    pattern: { type: 'string', default: 'gpt2', choices: ['gpt2', 'cl100k', 'o200k', 'code'], doc: 'BPE pre-tokenisation pattern' },
    special: { type: 'strings', default: [], doc: 'special tokens to reserve' },
  },
  tokenize: {
    tokenizer: { type: 'file', required: true, doc: 'tokenizer file' },
    input: { type: 'file', required: true, doc: 'text to encode' },
    val_fraction: { type: 'number', default: 0.1, doc: 'fraction (from the end) written to val.bin' },
  },
  train: {
    data: { type: 'dir', required: true, doc: 'data directory (train.bin, val.bin, meta.json)' },
    config: { type: 'file', doc: 'base train config (YAML/JSON); `set` applies over it' },
    set: { type: 'mapping', default: {}, doc: 'train config keys over the base (nested sections or flat names)' },
  },
  sft: {
    model: { type: 'dir', required: true, doc: 'the pretrained run to fine-tune (a train stage)' },
    config: { type: 'file', doc: 'base align config (YAML/JSON, e.g. configs/align/sft.yaml); `set` applies over it' },
    set: { type: 'mapping', default: {}, doc: 'align config keys over the base (nested sections); data.conversations names the instruction files' },
  },
  eval: {
    model: { type: 'dir', required: true, doc: 'the run to evaluate' },
    tasks: { type: 'strings', required: true, doc: 'task names (or task files)' },
    task_dir: { type: 'dir', doc: 'extra directory of task files' },
    data_dir: { type: 'dir', doc: "root of the tasks' data (default: ../shared/data)" },
    limit: { type: 'integer', doc: 'score only the first n items of each task' },
    num_fewshot: { type: 'integer', doc: 'few-shot examples per prompt' },
  },
};

export type FieldValue = string | number | string[] | Record<string, unknown>;

export interface Stage {
  name: string;
  kind: StageKind;
  /** Field values as written, with ${stage} still in them. */
  fields: Record<string, FieldValue>;
  /** The stages whose outputs this one reads. */
  needs: string[];
  /** The file's line of the stage, for messages. */
  where: string;
}

export interface PipelinePlan {
  file: string;
  name: string;
  parent: string | null;
  /** A pipeline file whose version is the parent: run (or found in the cache) before this one. */
  parentPipeline: string | null;
  tag: string | null;
  workDir: string;
  /** The train stage whose run is registered as the version. */
  register: string;
  /** Whether the comparison report samples both models side by side. */
  reportSamples: boolean;
  /** In an order where every stage comes after the stages it needs. */
  stages: Stage[];
}

const REF = /\$\{([A-Za-z_][A-Za-z0-9_-]*)\}/g;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function refsOf(v: unknown): string[] {
  if (typeof v === 'string') return [...v.matchAll(REF)].map((m) => m[1]!);
  if (Array.isArray(v)) return v.flatMap(refsOf);
  if (typeof v === 'object' && v !== null) return Object.values(v).flatMap(refsOf);
  return [];
}

/** Replaces each ${stage} in a value by that stage's output directory. */
export function substitute<T>(v: T, outputs: ReadonlyMap<string, string>): T {
  if (typeof v === 'string') return v.replace(REF, (_m, s: string) => outputs.get(s) ?? `\${${s}}`) as T;
  if (Array.isArray(v)) return v.map((x: unknown) => substitute(x, outputs)) as T;
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, substitute(x, outputs)])) as T;
  return v;
}

function isMapping(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Reads and checks a pipeline file. */
export function readPipeline(file: string): PipelinePlan {
  const layer = readConfigFile(file);
  const at = (path: string[]): string => {
    const line = layer.lineOf?.(path);
    return line === undefined ? file : `${file}: line ${line}`;
  };
  const doc = layer.data as Record<string, unknown>;
  const known = ['name', 'parent', 'parent_pipeline', 'tag', 'work_dir', 'register', 'report_samples', 'stages'];
  for (const k of Object.keys(doc)) if (!known.includes(k)) throw new UserError(`${at([k])}: unknown key "${k}" (known keys: ${known.join(', ')})`);
  const str = (k: string, required: boolean): string | null => {
    const v = doc[k];
    if (v === undefined || v === null) {
      if (required) throw new UserError(`${file}: ${k} is required`);
      return null;
    }
    if (typeof v !== 'string' || v === '') throw new UserError(`${at([k])}: ${k}: expected a string, got ${JSON.stringify(v)}`);
    return v;
  };
  const name = str('name', true)!;
  if (!NAME.test(name)) throw new UserError(`${at(['name'])}: name: expected letters, digits, '.', '_' or '-' (versions are name@vN), got ${JSON.stringify(name)}`);
  const tag = str('tag', false);
  if (tag !== null && !NAME.test(tag)) throw new UserError(`${at(['tag'])}: tag: expected letters, digits, '.', '_' or '-', got ${JSON.stringify(tag)}`);
  const parentPipeline = str('parent_pipeline', false);
  if (parentPipeline !== null && doc.parent !== undefined && doc.parent !== null) throw new UserError(`${at(['parent_pipeline'])}: give parent or parent_pipeline, not both`);
  if (parentPipeline === null && !('parent' in doc)) throw new UserError(`${file}: parent is required (a version id, tag or run; null for a first version), or parent_pipeline (the parent's pipeline file)`);
  const parent = str('parent', false);
  const workDir = str('work_dir', false) ?? 'runs/pipeline';
  const reportSamples = doc.report_samples ?? true;
  if (typeof reportSamples !== 'boolean') throw new UserError(`${at(['report_samples'])}: report_samples: expected true or false, got ${JSON.stringify(reportSamples)}`);
  const rawStages = doc.stages;
  if (!isMapping(rawStages) || Object.keys(rawStages).length === 0) throw new UserError(`${at(['stages'])}: stages: expected a mapping of stage names to stages`);
  const stages = new Map<string, Stage>();
  for (const [sname, raw] of Object.entries(rawStages)) {
    const where = at(['stages', sname]);
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(sname)) throw new UserError(`${where}: stage name ${JSON.stringify(sname)}: expected letters, digits, '_' or '-'`);
    if (!isMapping(raw)) throw new UserError(`${where}: stages.${sname}: expected a mapping with a kind`);
    const kind = raw.kind;
    if (typeof kind !== 'string' || !(STAGE_KINDS as readonly string[]).includes(kind)) {
      throw new UserError(`${at(['stages', sname, 'kind'])}: stages.${sname}.kind: expected one of ${STAGE_KINDS.join('|')}, got ${JSON.stringify(kind)}`);
    }
    const spec = KIND_FIELDS[kind as StageKind];
    const fields: Record<string, FieldValue> = {};
    for (const [k, v] of Object.entries(raw)) {
      if (k === 'kind') continue;
      const f = spec[k];
      const w = at(['stages', sname, k]);
      if (!f) throw new UserError(`${w}: stages.${sname}: unknown field "${k}" of a ${kind} stage (fields: ${Object.keys(spec).join(', ')})`);
      fields[k] = checkField(f, v, `${w}: stages.${sname}.${k}`);
    }
    for (const [k, f] of Object.entries(spec)) {
      if (fields[k] !== undefined) continue;
      if (f.required) throw new UserError(`${where}: stages.${sname}: a ${kind} stage needs ${k} (${f.doc})`);
      if (f.default !== undefined) fields[k] = f.default as FieldValue;
    }
    stages.set(sname, { name: sname, kind: kind as StageKind, fields, needs: [...new Set(refsOf(fields))], where });
  }
  for (const s of stages.values()) {
    for (const n of s.needs) if (!stages.has(n)) throw new UserError(`${s.where}: stages.${s.name}: \${${n}} names no stage (stages: ${[...stages.keys()].join(', ')})`);
  }
  const ordered = topoOrder(stages, file);
  const trains = [...stages.values()].filter((s) => s.kind === 'train').map((s) => s.name);
  const register = str('register', false) ?? (trains.length === 1 ? trains[0]! : null);
  if (register === null) throw new UserError(`${file}: register: name the train stage whose run becomes the version (train stages: ${trains.join(', ') || 'none'})`);
  if (stages.get(register)?.kind !== 'train') throw new UserError(`${at(['register'])}: register: ${JSON.stringify(register)} is not a train stage (train stages: ${trains.join(', ') || 'none'})`);
  return { file, name, parent, parentPipeline, tag, workDir, register, reportSamples, stages: ordered };
}

function checkField(f: FieldSpec, v: unknown, where: string): FieldValue {
  switch (f.type) {
    case 'file':
    case 'dir':
    case 'string':
      if (typeof v !== 'string' || v === '') throw new UserError(`${where}: expected a ${f.type === 'string' ? 'string' : `${f.type} path`}, got ${JSON.stringify(v)}`);
      if (f.choices && !f.choices.includes(v)) throw new UserError(`${where}: expected one of ${f.choices.join('|')}, got ${JSON.stringify(v)}`);
      return v;
    case 'number':
    case 'integer':
      if (typeof v !== 'number' || !Number.isFinite(v) || (f.type === 'integer' && !Number.isInteger(v))) throw new UserError(`${where}: expected ${f.type === 'integer' ? 'an integer' : 'a number'}, got ${JSON.stringify(v)}`);
      return v;
    case 'strings': {
      const list = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s !== '') : v;
      if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) throw new UserError(`${where}: expected a list of strings, got ${JSON.stringify(v)}`);
      return list as string[];
    }
    case 'mapping':
      if (!isMapping(v)) throw new UserError(`${where}: expected a mapping, got ${JSON.stringify(v)}`);
      return v;
  }
}

/** Stages ordered so that each follows what it needs (file order among equals); a cycle is a UserError. */
function topoOrder(stages: Map<string, Stage>, file: string): Stage[] {
  const out: Stage[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (s: Stage, path: string[]): void => {
    if (state.get(s.name) === 'done') return;
    if (state.get(s.name) === 'visiting') throw new UserError(`${file}: stages form a cycle: ${[...path.slice(path.indexOf(s.name)), s.name].join(' → ')}`);
    state.set(s.name, 'visiting');
    for (const n of s.needs) visit(stages.get(n)!, [...path, s.name]);
    state.set(s.name, 'done');
    out.push(s);
  };
  for (const s of stages.values()) visit(s, []);
  return out;
}

/**
 * A train stage's resolved config: the base file, then `set` (nested or flat keys, checked like any train config),
 * then the data directory and out_dir the pipeline gives it.
 */
export function trainStageConfig(stage: Stage, fields: Record<string, FieldValue>, outDir: string, planFile: string): TrainConfig {
  const layers: ObjectLayer[] = [];
  const base = fields.config;
  if (typeof base === 'string') {
    if (!existsSync(base)) throw new UserError(`${stage.where}: stages.${stage.name}.config: ${base} not found`);
    layers.push(readConfigFile(base));
  }
  layers.push(objectLayer(fields.set ?? {}, `${planFile}: stages.${stage.name}.set`));
  layers.push(objectLayer({ out_dir: outDir, data: { dir: fields.data } }, `${planFile}: stages.${stage.name}`));
  return resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, ...layers);
}

/**
 * An sft stage's resolved align config: the base file, then `set`, then the model to start from and out_dir, which
 * the pipeline gives it (a base file's init_from or out_dir is replaced: the stage's graph says where they are).
 */
export function sftStageConfig(stage: Stage, fields: Record<string, FieldValue>, outDir: string, planFile: string): AlignConfig {
  const layers: ObjectLayer[] = [];
  const base = fields.config;
  if (typeof base === 'string') {
    if (!existsSync(base)) throw new UserError(`${stage.where}: stages.${stage.name}.config: ${base} not found`);
    layers.push(readConfigFile(base));
  }
  const set = (fields.set ?? {}) as Record<string, unknown>;
  for (const k of ['init_from', 'out_dir']) {
    if (k in set) throw new UserError(`${stage.where}: stages.${stage.name}.set.${k}: given by the stage (model: and its output directory); remove it`);
  }
  layers.push(objectLayer(set, `${planFile}: stages.${stage.name}.set`));
  layers.push(objectLayer({ out_dir: outDir, init_from: fields.model }, `${planFile}: stages.${stage.name}`));
  const config = resolveConfig(alignSpec, ...layers);
  if (config.data.conversations.trim() === '') throw new UserError(`${stage.where}: stages.${stage.name}: data.conversations: name the instruction files (in config or set)`);
  return config;
}

/** The conversation files of an sft config (data.conversations is a comma-separated list). */
export function conversationFiles(config: AlignConfig): string[] {
  return config.data.conversations.split(',').map((f) => f.trim()).filter((f) => f !== '');
}

/**
 * A curate stage's curation config: the config file's sections (clean, pii, filters, scorer, dedup, mix, stages),
 * with the stage's input as the one source and <out>/curate as the output. A scorer the config trains is written
 * inside the stage's directory, so the stage's output holds all it made. Errors name the config file and key.
 */
export function curateStageConfig(stage: Stage, fields: Record<string, FieldValue>, outDir: string): CurateConfig {
  const where = `${stage.where}: stages.${stage.name}`;
  const file = fields.config as string;
  if (!existsSync(file)) throw new UserError(`${where}.config: ${file} not found`);
  const layer = readConfigFile(file);
  const raw = layer.data;
  if (!isMapping(raw)) throw new UserError(`${file}: expected a mapping of curation sections (clean, pii, filters, scorer, dedup, mix)`);
  for (const k of ['sources', 'output']) {
    if (k in raw) {
      const line = layer.lineOf?.([k]);
      throw new UserError(`${file}${line === undefined ? '' : `: line ${line}`}: ${k}: a pipeline's curate stage gives the sources (its input) and the output (its directory); remove ${k} (used from ${where})`);
    }
  }
  const input = resolve(fields.input as string);
  const doc = { ...raw, output: resolve(outDir, 'curate'), sources: [{ name: 'input', paths: [input], format: 'txt', split: fields.split }] };
  let cfg: CurateConfig;
  try {
    cfg = validateConfig(doc, dirname(resolve(file)));
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${file}: ${e.message} (used from ${where})`, { cause: e });
    throw e;
  }
  if (cfg.scorer?.train) cfg.scorer.model = join(cfg.output, 'scorer', 'model.json');
  else if (cfg.scorer && !existsSync(cfg.scorer.model)) throw new UserError(`${file}: scorer.model: ${cfg.scorer.model} not found (give scorer.train to train it in the stage)`);
  return cfg;
}
