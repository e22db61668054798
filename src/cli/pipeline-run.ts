// Runs an upgrade pipeline (pipeline-plan.ts): the stages in graph order, each cached by a content hash of its
// inputs (the files and directories it reads, hashed by content), its config and the code version, so a stage runs
// again only when one of them changed; its output goes to <work_dir>/<stage>-<key>/, marked complete by .stage.json.
// curate runs the curation engine (data/pipeline.ts) in process; train and sft run `lmforge train` / `lmforge align
// sft`, and an interrupted one resumes from its checkpoints (--resume); other stages start over.
// Then the trained run is registered as the next version with its parent, and the comparison report with the parent
// is written by `lmforge compare`'s engine (report/compare.ts) into <work_dir>/report-<name>-v<N>/.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CurateConfig } from '../data/config.js';
import { listInputs, outPaths, runStages } from '../data/pipeline.js';
import { prepareCharData } from '../data/prepare.js';
import { readShard } from '../data/readers.js';
import { formatReport, type ShardReport } from '../data/report.js';
import { Registry, type VersionRecord } from '../registry/registry.js';
import { EVALS_DIR } from '../registry/run-files.js';
import { COMPARE_HTML, COMPARE_MD, DEFAULT_SAMPLES, writeComparisonReport } from '../report/compare.js';
import { tokenizeFiles } from '../tokenizers/tokenize-files.js';
import { findLatestComplete } from '../train/checkpoint.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { ensureDir } from '../util/fs.js';
import { codeVersionString, PACKAGE_ROOT } from '../util/git.js';
import { sha256File, sha256Of } from '../util/hash.js';
import { RECIPE_MD, recipeMarkdown } from './pipeline-recipe.js';
import { conversationFiles, curateStageConfig, KIND_FIELDS, readPipeline, sftStageConfig, substitute, trainStageConfig, type FieldValue, type PipelinePlan, type Stage } from './pipeline-plan.js';
import { trainFromFiles } from './tokenizer.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
/** The completion marker in a stage's output directory. */
export const STAGE_MARKER = '.stage.json';
/** Bumped when the meaning of a key changes, so old outputs are not taken for new ones. */
const KEY_FORMAT = 1;

// Files of a directory that do not enter its content hash: bookkeeping that differs between identical results
// (timings, times, absolute paths) and the registry's records.
const UNHASHED = new Set(['latest', 'metrics.jsonl', 'provenance.json', 'train-config.json', 'version.json', 'tags.json', 'feedback.jsonl', 'evals', 'report.json']);

let codeHash: string | null = null;

/**
 * The code a stage runs, by content: lmforge's compiled JavaScript (dist/src) and its native addon. A commit that
 * changes only documents or configs keeps every cached stage; any change to the code runs them all again.
 */
export function codeFingerprint(): string {
  if (codeHash !== null) return codeHash;
  const files: [string, string][] = [];
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const n of readdirSync(dir).sort()) {
      const p = join(dir, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (n.endsWith('.js') || n.endsWith('.node')) files.push([relative(PACKAGE_ROOT, p), sha256File(p)]);
    }
  };
  walk(join(PACKAGE_ROOT, 'dist', 'src'));
  walk(join(PACKAGE_ROOT, 'build', 'Release'));
  codeHash = sha256Of(files);
  return codeHash;
}

/** SHA-256 of a file's bytes, or of a directory's files (relative names and contents, sorted). */
export function contentHash(path: string, where: string): string {
  if (!existsSync(path)) throw new UserError(`${where}: ${path} not found`);
  if (statSync(path).isFile()) return sha256File(path);
  const entries: [string, string][] = [];
  const walk = (dir: string): void => {
    for (const n of readdirSync(dir).sort()) {
      if (n.startsWith('.') || n.startsWith('ckpt-') || UNHASHED.has(n)) continue;
      const p = join(dir, n);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) entries.push([relative(path, p), sha256File(p)]);
    }
  };
  walk(path);
  return sha256Of(entries);
}

export type StageStatus = 'cached' | 'ran' | 'resumed' | 'would run';

export interface StageOutcome {
  stage: string;
  kind: string;
  key: string | null;
  status: StageStatus;
  seconds: number;
  out: string | null;
}

export interface PipelineResult {
  name: string;
  version: string | null;
  parent: string | null;
  register: 'cached' | 'ran' | 'would run';
  report: { path: string; status: 'cached' | 'ran' } | null;
  /** recipe.md: every stage with its key, the curation, alignment and evaluation figures (pipeline-recipe.ts). */
  recipe: string | null;
  stages: StageOutcome[];
  /** The parent_pipeline's own outcome, when the file names one. */
  parentPipeline: PipelineResult | null;
}

export interface PipelineOptions {
  registryPath: string;
  dryRun?: boolean;
  log?: (line: string) => void;
  /** Pipeline files being run further up (parent_pipeline chains), to refuse a cycle. */
  chain?: string[];
}

interface Marker {
  stage: string;
  kind: string;
  key: string;
  /** The code fingerprint in the key, and the git commit it was built from (for people). */
  code: string;
  commit: string;
  finished_at: string;
  seconds: number;
}

function readMarker(dir: string): Marker | null {
  const p = join(dir, STAGE_MARKER);
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as Marker;
  } catch {
    return null; // a damaged marker: the stage runs again
  }
}

/** The stage's key: its kind, config (path fields replaced by their contents' hashes) and the code version. */
function stageKey(plan: PipelinePlan, stage: Stage, fields: Record<string, FieldValue>, code: string): { key: string; train?: object } {
  const spec = KIND_FIELDS[stage.kind];
  const params: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    const t = (spec as Record<string, { type: string }>)[k]?.type;
    params[k] = t === 'file' || t === 'dir' ? { sha256: contentHash(v as string, `${stage.where}: stages.${stage.name}.${k}`) } : v;
  }
  let train: object | undefined;
  const where = `${stage.where}: stages.${stage.name}`;
  if (stage.kind === 'train') {
    // The resolved config is what trains: the base file's text is in it, key by key (out_dir and the data's path
    // are where things are, not what they are; the data's contents are in params.data).
    const { out_dir: _o, data, ...rest } = trainStageConfig(stage, fields, '.', plan.file);
    train = { ...rest, data: { ...data, dir: null } };
    delete params.config;
    delete params.set;
  } else if (stage.kind === 'sft') {
    // As for train: the resolved align config, with the conversation files by content (their paths are where they
    // are); the starting model's contents are in params.model.
    const config = sftStageConfig(stage, fields, '.', plan.file);
    const { out_dir: _o, init_from: _i, data, ...rest } = config;
    const conversations = conversationFiles(config).map((f) => ({ sha256: contentHash(f, `${where}: data.conversations`) }));
    train = { ...rest, data: { ...data, conversations } };
    delete params.config;
    delete params.set;
  } else if (stage.kind === 'curate') {
    // The validated curation config (the file's comments and layout do not count), the files it names by content.
    train = curationKey(curateStageConfig(stage, fields, '.'), where);
    delete params.config;
  }
  return { key: sha256Of({ format: KEY_FORMAT, kind: stage.kind, params, train: train ?? null, code }), ...(train ? { train } : {}) };
}

/** A curation config as it enters a key: sources and output dropped (the stage gives them), named files hashed. */
function curationKey(cfg: CurateConfig, where: string): object {
  const hash = (p: string): { sha256: string } => ({ sha256: contentHash(p, `${where}: config`) });
  const harmful = cfg.filters.harmful;
  const scorer = cfg.scorer;
  return {
    ...cfg,
    output: null,
    sources: null,
    filters: { ...cfg.filters, harmful: harmful && { ...harmful, termsFile: harmful.termsFile === undefined ? null : hash(harmful.termsFile) } },
    // A scorer the stage trains is the stage's own output (keyed by its training files); a given one by its contents.
    scorer: scorer && { ...scorer, model: scorer.train ? null : hash(scorer.model), train: scorer.train && { ...scorer.train, paths: scorer.train.paths.map(hash) } },
  };
}

/**
 * Writes the documents that survived the curation stages as one text (input order; paragraphs joined by a blank
 * line, lines by a newline) into <out>/curated.txt. Returns the documents and bytes written.
 */
async function writeCurated(cfg: CurateConfig, split: string, out: string): Promise<{ docs: number; bytes: number }> {
  const P = outPaths(cfg);
  const last = cfg.stages.includes('mix') ? P.mixed : cfg.stages.includes('dedup-filter') ? P.deduped : P.filtered;
  const texts: string[] = [];
  let bytes = 0;
  for (const input of listInputs(cfg)) {
    for await (const doc of readShard(last(input.index))) {
      texts.push(doc.text);
      bytes += Buffer.byteLength(doc.text);
    }
  }
  writeFileAtomic(join(out, 'curated.txt'), texts.join(split === 'line' ? '\n' : '\n\n') + (texts.length ? '\n' : ''));
  return { docs: texts.length, bytes };
}

function runCli(args: string[], what: string): void {
  // The child's output goes to stderr with the pipeline's own progress, so stdout carries only the outcome (--json).
  const r = spawnSync(process.execPath, [MAIN, ...args], { stdio: ['ignore', 2, 'inherit'] });
  if (r.status !== 0) throw new UserError(`${what} failed (exit ${r.status ?? r.signal}); run the pipeline again to retry${what.includes('train') ? ' (training resumes from its last checkpoint)' : what.includes('sft') ? ' (fine-tuning resumes from its last checkpoint)' : ''}`);
}

/** Splits a text at a blank line near (1 − fraction) of its length: train.txt and heldout.txt. */
function holdout(input: string, fraction: number, out: string, where: string): void {
  if (!(fraction > 0 && fraction < 1)) throw new UserError(`${where}: fraction: expected a number in (0, 1), got ${fraction}`);
  const text = readFileSync(input, 'utf8');
  const target = Math.floor(text.length * (1 - fraction));
  let cut = text.lastIndexOf('\n\n', target);
  cut = cut > 0 ? cut + 2 : text.lastIndexOf('\n', target) + 1;
  if (cut <= 0 || cut >= text.length) cut = target;
  writeFileAtomic(join(out, 'train.txt'), text.slice(0, cut));
  writeFileAtomic(join(out, 'heldout.txt'), text.slice(cut));
}

async function execute(plan: PipelinePlan, stage: Stage, f: Record<string, FieldValue>, out: string, key: string, opts: PipelineOptions): Promise<'ran' | 'resumed'> {
  const log = opts.log ?? (() => undefined);
  const where = `${stage.where}: stages.${stage.name}`;
  switch (stage.kind) {
    case 'holdout':
      holdout(f.input as string, f.fraction as number, out, where);
      return 'ran';
    case 'curate': {
      const cfg = curateStageConfig(stage, f, out);
      const reports: Record<string, ShardReport> = await runStages(cfg, cfg.stages, { rank: 0, worldSize: 1, limit: null, dryRun: false, log: (l) => { for (const line of l.split('\n')) log(`  ${line}`); } });
      const kept = await writeCurated(cfg, f.split as string, out);
      const read = reports.filter?.in ?? { docs: NaN, bytes: NaN }; // the filter stage reads every input document
      writeFileAtomic(join(out, 'curate-report.json'), JSON.stringify({ input: f.input, config: f.config, stages: cfg.stages, documents: { in: read.docs, out: kept.docs }, bytes: { in: read.bytes, out: kept.bytes }, reports }, null, 2) + '\n');
      writeFileAtomic(join(out, 'curate-report.txt'), Object.values(reports).map((r) => formatReport(r)).join('\n\n') + '\n');
      log(`  kept ${kept.docs.toLocaleString('en-US')} of ${read.docs.toLocaleString('en-US')} documents, ${kept.bytes.toLocaleString('en-US')} of ${read.bytes.toLocaleString('en-US')} bytes → curated.txt (per filter: curate-report.txt)`);
      return 'ran';
    }
    case 'prepare': {
      const r = prepareCharData({ input: f.input as string, outDir: out, valFraction: f.val_fraction as number, invalidUtf8: 'error', instructions: false, onNotice: log });
      log(`  vocab size ${r.vocabSize}; train ${r.trainTokens.toLocaleString('en-US')} tokens, val ${r.valTokens.toLocaleString('en-US')}`);
      return 'ran';
    }
    case 'tokenizer':
      trainFromFiles({
        type: f.type as string, vocabSize: f.vocab_size as number, input: [f.input as string], out: join(out, 'tokenizer.json'),
        minFrequency: f.min_frequency as number, special: f.special as string[], pattern: f.pattern as string,
      }, (l) => log(`  ${l}`));
      return 'ran';
    case 'tokenize': {
      const r = await tokenizeFiles({ tokenizerPath: f.tokenizer as string, inputs: [f.input as string], outDir: out, valFraction: f.val_fraction as number, allowSpecial: false, invalidUtf8: 'error', onNotice: log });
      log(`  ${r.train.tokens.toLocaleString('en-US')} train + ${r.val.tokens.toLocaleString('en-US')} val tokens`);
      return 'ran';
    }
    case 'train': {
      const config = trainStageConfig(stage, f, out, plan.file);
      const configFile = join(plan.workDir, '.configs', `${stage.name}-${key.slice(0, 12)}.json`);
      ensureDir(join(plan.workDir, '.configs'), 'pipeline work_dir');
      writeFileAtomic(configFile, JSON.stringify(config, null, 2) + '\n');
      const resume = existsSync(out) && findLatestComplete(out) !== null;
      runCli(['train', '--config', configFile, resume ? '--resume' : '--overwrite', '--no-register'], `stage ${stage.name} (train)`);
      return resume ? 'resumed' : 'ran';
    }
    case 'sft': {
      const config = sftStageConfig(stage, f, out, plan.file);
      const configFile = join(plan.workDir, '.configs', `${stage.name}-${key.slice(0, 12)}.json`);
      ensureDir(join(plan.workDir, '.configs'), 'pipeline work_dir');
      writeFileAtomic(configFile, JSON.stringify(config, null, 2) + '\n');
      const resume = existsSync(out) && findLatestComplete(out) !== null;
      runCli(['align', 'sft', '--config', configFile, resume ? '--resume' : '--overwrite'], `stage ${stage.name} (sft)`);
      return resume ? 'resumed' : 'ran';
    }
    case 'eval': {
      const args = ['eval', '--model', f.model as string, '--tasks', (f.tasks as string[]).join(','), '--output', join(out, 'report.json'), '--registry', opts.registryPath];
      if (f.task_dir !== undefined) args.push('--task-dir', f.task_dir as string);
      if (f.data_dir !== undefined) args.push('--data-dir', f.data_dir as string);
      if (f.limit !== undefined) args.push('--limit', String(f.limit));
      if (f.num_fewshot !== undefined) args.push('--num-fewshot', String(f.num_fewshot));
      runCli(args, `stage ${stage.name} (eval)`);
      return 'ran';
    }
  }
}

/** Runs (or, with dryRun, plans) the pipeline. */
export async function runPipeline(plan: PipelinePlan, opts: PipelineOptions): Promise<PipelineResult> {
  const log = opts.log ?? (() => undefined);
  // parent_pipeline: the parent version is what that file makes — run it first (its stages cached as usual).
  let parentRef = plan.parent;
  let parentResult: PipelineResult | null = null;
  if (plan.parentPipeline !== null) {
    const chain = [...(opts.chain ?? [resolve(plan.file)])];
    const file = resolve(plan.parentPipeline);
    if (chain.includes(file)) throw new UserError(`${plan.file}: parent_pipeline forms a cycle: ${[...chain, file].join(' → ')}`);
    log(`parent pipeline ${plan.parentPipeline}:`);
    parentResult = await runPipeline(readPipeline(plan.parentPipeline), { ...opts, chain: [...chain, file], log: (l) => log(`  ${l}`) });
    parentRef = parentResult.version;
    if (parentRef === null && !opts.dryRun) throw new UserError(`${plan.parentPipeline}: made no version to be ${plan.file}'s parent`);
  }
  const code = codeFingerprint();
  const commit = codeVersionString();
  const outputs = new Map<string, string>();
  const outcomes: StageOutcome[] = [];
  const pending = new Set<string>(); // dry run: stages that would run (their outputs do not exist yet)
  if (!opts.dryRun) ensureDir(plan.workDir, 'pipeline work_dir');
  for (const [i, stage] of plan.stages.entries()) {
    const head = `[${i + 1}/${plan.stages.length}] ${stage.name} (${stage.kind})`;
    if (stage.needs.some((n) => pending.has(n))) {
      pending.add(stage.name);
      outcomes.push({ stage: stage.name, kind: stage.kind, key: null, status: 'would run', seconds: 0, out: null });
      log(`${head}: would run (after ${stage.needs.filter((n) => pending.has(n)).join(', ')})`);
      continue;
    }
    const fields = substitute(stage.fields, outputs);
    const { key } = stageKey(plan, stage, fields, code);
    const out = resolve(plan.workDir, `${stage.name}-${key.slice(0, 12)}`);
    outputs.set(stage.name, out);
    const marker = readMarker(out);
    if (marker?.key === key) {
      outcomes.push({ stage: stage.name, kind: stage.kind, key, status: 'cached', seconds: 0, out });
      log(`${head}: cached (${show(out)})`);
      continue;
    }
    if (opts.dryRun) {
      pending.add(stage.name);
      outcomes.push({ stage: stage.name, kind: stage.kind, key, status: 'would run', seconds: 0, out });
      log(`${head}: would run → ${show(out)}`);
      continue;
    }
    // A train or sft stage keeps what an interrupted attempt left (its checkpoints); any other stage starts clean.
    if (stage.kind !== 'train' && stage.kind !== 'sft' && existsSync(out)) rmSync(out, { recursive: true, force: true });
    ensureDir(out, `stage ${stage.name} output`);
    log(`${head}: running → ${show(out)}`);
    const t0 = performance.now();
    const status = await execute(plan, stage, fields, out, key, opts);
    const seconds = (performance.now() - t0) / 1000;
    writeFileAtomic(join(out, STAGE_MARKER), JSON.stringify({ stage: stage.name, kind: stage.kind, key, code, commit, finished_at: new Date().toISOString(), seconds } satisfies Marker, null, 2) + '\n');
    outcomes.push({ stage: stage.name, kind: stage.kind, key, status, seconds, out });
    log(`${head}: ${status} in ${seconds.toFixed(1)} s`);
  }
  if (opts.dryRun) {
    return { name: plan.name, version: null, parent: parentRef, register: 'would run', report: null, recipe: null, stages: outcomes, parentPipeline: parentResult };
  }
  const reg = Registry.open(opts.registryPath);
  try {
    const runDir = outputs.get(plan.register)!;
    const run = reg.registerRun(runDir);
    let version: VersionRecord;
    let registered: 'cached' | 'ran' = 'cached';
    if (run.version) {
      version = reg.version(run.version);
    } else {
      let parent: string | null = null;
      if (parentRef !== null) {
        const p = reg.resolve(parentRef);
        if (!p.version) throw new UserError(`${plan.file}: parent ${parentRef}: is a run without a model version (run its pipeline, or lmforge registry register RUN --name NAME)`);
        parent = p.version.id;
      }
      version = reg.createVersion(runDir, plan.name, { parent, note: `pipeline ${plan.file}` });
      registered = 'ran';
    }
    if (plan.tag) {
      // The tag names one run: it moves to this version from wherever it was.
      for (const other of reg.listRuns({ tag: plan.tag })) if (other.path !== run.path) reg.tag(other.path, [plan.tag], true);
      if (!reg.run(run.path).tags.includes(plan.tag)) reg.tag(run.path, [plan.tag]);
    }
    log(`register: ${version.id}${version.parent ? ` (parent ${version.parent})` : ''}: ${registered === 'ran' ? 'registered' : 'already registered'}${plan.tag ? `, tag ${plan.tag}` : ''}`);
    // The recipe page: rewritten only when it would read differently (a rerun that changed nothing writes nothing).
    const reportDir = resolve(plan.workDir, `report-${version.name}-v${version.number}`);
    const recipe = join(reportDir, RECIPE_MD);
    const page = recipeMarkdown(plan, outcomes.map((o) => ({ stage: o.stage, kind: o.kind, key: o.key!, out: o.out! })), version.id, version.parent);
    if (!existsSync(recipe) || readFileSync(recipe, 'utf8') !== page) {
      ensureDir(reportDir, 'pipeline report directory');
      writeFileAtomic(recipe, page);
    }
    log(`recipe: ${show(recipe)}`);
    let report: PipelineResult['report'] = null;
    if (version.parent) {
      const parentRun = reg.version(version.parent).run_path;
      const dir = reportDir;
      // The runs' evals/ reports (which the report reads itself) enter the key, so a new evaluation renews the report.
      const evalFiles = (runPath: string): string[] => reg.evals(runPath).map((e) => join(runPath, EVALS_DIR, e.report)).filter((f, i, all) => all.indexOf(f) === i);
      const [evalsA, evalsB] = [evalFiles(parentRun), evalFiles(run.path)];
      // Cached like a stage: the same two runs (by content), their evaluations and the same code give the same report.
      const key = sha256Of({ format: KEY_FORMAT, a: contentHash(parentRun, 'parent run'), b: contentHash(run.path, 'run'), evalsA: evalsA.map((f) => sha256File(f)), evalsB: evalsB.map((f) => sha256File(f)), samples: plan.reportSamples, code });
      const markdown = join(dir, COMPARE_MD);
      let status: 'cached' | 'ran' = 'cached';
      if (readMarker(dir)?.key !== key || !existsSync(markdown)) {
        const t0 = performance.now();
        writeComparisonReport(parentRun, run.path, dir, { labels: [version.parent, version.id], samples: plan.reportSamples ? DEFAULT_SAMPLES : null });
        writeFileAtomic(join(dir, STAGE_MARKER), JSON.stringify({ stage: 'report', kind: 'compare', key, code, commit, finished_at: new Date().toISOString(), seconds: (performance.now() - t0) / 1000 } satisfies Marker, null, 2) + '\n');
        status = 'ran';
      }
      report = { path: markdown, status };
      log(`report: ${show(markdown)} (+ ${COMPARE_HTML})${status === 'cached' ? ' (unchanged)' : ''}`);
    }
    return { name: plan.name, version: version.id, parent: version.parent, register: registered, report, recipe, stages: outcomes, parentPipeline: parentResult };
  } finally {
    reg.close();
  }
}

/** A path as the user would type it: relative inside the working directory, else absolute. */
function show(p: string): string {
  const r = relative(process.cwd(), p);
  return r.startsWith('..') ? p : r;
}
