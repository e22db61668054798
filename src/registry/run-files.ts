// What the registry reads from (and the few files it writes into) a run directory, which stays the truth: the
// resolved config, meta.json, metrics.jsonl, provenance.json, the result files, and the registry's own files beside
// them — version.json (the model version this run is), tags.json, evals/*.json (evaluation reports) and
// feedback.jsonl. The database is an index over these and is rebuilt from them. Not the run's owner (train/run-dir.ts).
import { appendFileSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError, describeError } from '../util/errors.js';
import { ensureDir } from '../util/fs.js';
import { fingerprintDataDir, readProvenance, type FileFingerprint, type RunProvenance } from '../util/provenance.js';

// The run directory's files (their owner is train/run-dir.ts, whose names test/registry checks these against).
export const TRAIN_CONFIG_FILE = 'train-config.json';
export const META_FILE = 'meta.json';
export const METRICS_FILE = 'metrics.jsonl';
export const RESULT_FILES = ['model.safetensors', 'adapter_model.safetensors'] as const;
// The registry's own files in a run directory.
export const VERSION_FILE = 'version.json';
export const TAGS_FILE = 'tags.json';
export const EVALS_DIR = 'evals';
export const FEEDBACK_FILE = 'feedback.jsonl';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

function readJSONFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${describeError(e)})`);
  }
}

function isObject(x: unknown): x is JsonObject {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** The data a run trained on: its directory and each file's size and SHA-256, and when they were taken. */
export interface DataFingerprint {
  dir: string | null;
  files: Record<string, FileFingerprint>;
  /** 'train': recorded by `lmforge train` (provenance.json); 'registration': hashed when registered (may be newer). */
  taken_at: 'train' | 'registration' | 'none';
}

/** The figures of a run's metrics.jsonl that lists and diffs show. */
export interface MetricsSummary {
  steps: number | null;
  train_loss: number | null;
  val_loss: number | null;
  best_val_loss: number | null;
  val_loss_full: number | null;
  tokens_per_s: number | null;
  mfu: number | null;
  records: number;
}

export interface ArtifactFile {
  file: string;
  bytes: number;
  mtimeMs: number;
}

/** Everything the registry keeps of one run directory, as read from its files. */
export interface RunSnapshot {
  path: string;
  name: string;
  complete: boolean;
  /** When the run's config was written (its start), ISO. */
  createdAt: string;
  config: JsonObject;
  provenance: RunProvenance | null;
  data: DataFingerprint;
  metrics: MetricsSummary;
  artifacts: ArtifactFile[];
}

/** Whether `dir` is a run directory of `lmforge train` (it has the resolved config). */
export function isRunDir(dir: string): boolean {
  return existsSync(join(dir, TRAIN_CONFIG_FILE));
}

function num(x: unknown): number | null {
  return typeof x === 'number' && Number.isFinite(x) ? x : null;
}

/** The summary of a metrics.jsonl: last logged step and throughput, last and best evaluation losses. */
export function summarizeMetrics(path: string): MetricsSummary {
  const s: MetricsSummary = { steps: null, train_loss: null, val_loss: null, best_val_loss: null, val_loss_full: null, tokens_per_s: null, mfu: null, records: 0 };
  if (!existsSync(path)) return s;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    let r: unknown;
    try {
      r = JSON.parse(line);
    } catch {
      continue; // a line cut short by a kill
    }
    if (!isObject(r) || typeof r.step !== 'number') continue;
    s.records++;
    s.steps = Math.max(s.steps ?? 0, r.step);
    const val = num(r.val_loss);
    if (val !== null) {
      s.val_loss = val;
      if (s.best_val_loss === null || val < s.best_val_loss) s.best_val_loss = val;
    }
    s.train_loss = num(r.train_loss) ?? s.train_loss;
    s.val_loss_full = num(r.val_loss_full) ?? s.val_loss_full;
    s.tokens_per_s = num(r.tokens_per_s) ?? s.tokens_per_s;
    s.mfu = num(r.mfu) ?? s.mfu;
  }
  return s;
}

/** Reads a run directory for the registry. Throws UserError when it is not a run directory. */
export function readRunDir(dir: string): RunSnapshot {
  const path = resolve(dir);
  if (!existsSync(path) || !statSync(path).isDirectory()) throw new UserError(`${dir}: no such run directory`);
  const configPath = join(path, TRAIN_CONFIG_FILE);
  if (!existsSync(configPath)) throw new UserError(`${dir}: not a run directory of \`lmforge train\` (no ${TRAIN_CONFIG_FILE})`);
  const config = readJSONFile(configPath);
  if (!isObject(config)) throw new UserError(`${configPath}: expected a JSON object`);
  const provenance = readProvenance(path);
  let data: DataFingerprint;
  if (provenance) {
    data = { dir: provenance.data.dir, files: provenance.data.files, taken_at: 'train' };
  } else {
    const dataDir = isObject(config.data) && typeof config.data.dir === 'string' ? resolve(config.data.dir) : null;
    const files = dataDir ? fingerprintDataDir(dataDir) : {};
    data = { dir: dataDir, files, taken_at: Object.keys(files).length ? 'registration' : 'none' };
  }
  const artifacts: ArtifactFile[] = [];
  for (const name of readdirSync(path).sort()) {
    // Hidden names are temp files of atomic writes; the registry's own records are not the run's artifacts.
    if (name.startsWith('.') || name === VERSION_FILE || name === TAGS_FILE || name === FEEDBACK_FILE) continue;
    const st = statSync(join(path, name));
    if (st.isFile()) artifacts.push({ file: name, bytes: st.size, mtimeMs: st.mtimeMs });
  }
  return {
    path,
    name: basename(path),
    complete: RESULT_FILES.some((f) => existsSync(join(path, f))),
    createdAt: provenance?.started ?? statSync(configPath).mtime.toISOString(),
    config,
    provenance,
    data,
    metrics: summarizeMetrics(join(path, METRICS_FILE)),
    artifacts,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The registry's files in a run directory

/** What changed from the parent version: config keys, data files, code commit. */
export interface VersionChanges {
  config: ConfigChange[];
  data: DataChange[];
  code: { from: string | null; to: string | null };
}

export interface ConfigChange {
  key: string;
  from: Json | undefined;
  to: Json | undefined;
}

export interface DataChange {
  file: string;
  from: FileFingerprint | null;
  to: FileFingerprint | null;
}

/** version.json: this run is model version `name@vN`. */
export interface VersionFile {
  lmforge_version_record: 1;
  id: string;
  name: string;
  number: number;
  parent: string | null;
  created_at: string;
  note: string;
  changes: VersionChanges | null;
}

export function readVersionFile(runDir: string): VersionFile | null {
  const path = join(runDir, VERSION_FILE);
  if (!existsSync(path)) return null;
  const v = readJSONFile(path);
  if (!isObject(v) || v.lmforge_version_record !== 1 || typeof v.name !== 'string' || typeof v.number !== 'number') {
    throw new UserError(`${path}: expected a model version record (lmforge_version_record: 1, name, number)`);
  }
  return v as unknown as VersionFile;
}

export function writeVersionFile(runDir: string, v: VersionFile): void {
  writeFileAtomic(join(runDir, VERSION_FILE), JSON.stringify(v, null, 2) + '\n');
}

/** tags.json: labels on this run (and its version), e.g. "baseline", "production". */
export function readTags(runDir: string): string[] {
  const path = join(runDir, TAGS_FILE);
  if (!existsSync(path)) return [];
  const t = readJSONFile(path);
  if (!Array.isArray(t) || !t.every((x) => typeof x === 'string')) throw new UserError(`${path}: expected a JSON list of tag strings`);
  return t as string[];
}

export function writeTags(runDir: string, tags: readonly string[]): void {
  writeFileAtomic(join(runDir, TAGS_FILE), JSON.stringify([...new Set(tags)].sort()) + '\n');
}

/** One metric of one task of an evaluation report (the format of `lmforge eval --output`). */
export interface EvalRow {
  task: string;
  metric: string;
  value: number | null;
  stderr: number | null;
  n: number | null;
  n_shot: number | null;
}

/** The rows of an eval report (lmforge_eval: 1), or a UserError naming the file. */
export function evalRows(report: unknown, source: string): { created: string; rows: EvalRow[] } {
  if (!isObject(report) || report.lmforge_eval !== 1 || !Array.isArray(report.results)) {
    throw new UserError(`${source}: expected an evaluation report of \`lmforge eval --output\` (lmforge_eval: 1, results)`);
  }
  const rows: EvalRow[] = [];
  for (const r of report.results) {
    if (!isObject(r) || typeof r.task !== 'string' || !isObject(r.metrics)) throw new UserError(`${source}: results: each entry needs task and metrics`);
    for (const [metric, m] of Object.entries(r.metrics)) {
      if (!isObject(m)) continue;
      rows.push({ task: r.task, metric, value: num(m.value), stderr: num(m.stderr), n: num(r.n), n_shot: num(r.nShot) });
    }
  }
  return { created: typeof report.created === 'string' ? report.created : new Date().toISOString(), rows };
}

/** The evaluation reports kept in the run's evals/ folder, by file name. */
export function listEvalReports(runDir: string): { file: string; report: unknown }[] {
  const dir = join(runDir, EVALS_DIR);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.json') && !f.startsWith('.')).sort().map((f) => ({ file: f, report: readJSONFile(join(dir, f)) }));
}

/** Keeps an evaluation report in the run's evals/ folder (atomically) and returns its file name. */
export function writeEvalReport(runDir: string, report: unknown, file: string): string {
  if (!/^[A-Za-z0-9._-]+\.json$/.test(file)) throw new Error(`eval report file name ${JSON.stringify(file)}: expected a plain *.json name`);
  ensureDir(join(runDir, EVALS_DIR), 'evals folder');
  writeFileAtomic(join(runDir, EVALS_DIR, file), JSON.stringify(report, null, 2) + '\n');
  return file;
}

/** One piece of feedback on a model's answer: thumbs up (+1) or down (-1), with an optional comment. */
export interface FeedbackRecord {
  uid: string;
  /** What the feedback is about, as the client named it: a version id, a run name or path, a served model name. */
  target: string;
  rating: 1 | -1;
  comment: string | null;
  prompt: string | null;
  response: string | null;
  meta: JsonObject | null;
  created_at: string;
}

/** Appends one record to a feedback.jsonl (a single write of one line: appends from several processes do not mix). */
export function appendFeedback(path: string, rec: FeedbackRecord): void {
  appendFileSync(path, JSON.stringify(rec) + '\n');
}

/** The complete records of a feedback.jsonl (a torn last line is skipped). */
export function readFeedback(path: string): FeedbackRecord[] {
  if (!existsSync(path)) return [];
  const out: FeedbackRecord[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const r: unknown = JSON.parse(line);
      if (isObject(r) && typeof r.uid === 'string' && typeof r.target === 'string' && (r.rating === 1 || r.rating === -1)) out.push(r as unknown as FeedbackRecord);
    } catch {
      // a line cut short by a kill
    }
  }
  return out;
}
