// The run registry: a SQLite database (better-sqlite3) indexing run directories — runs (config, code commit, data
// fingerprints, metrics summary, infrastructure figures, artifacts with SHA-256), model versions `name@vN` with their
// lineage (parent and what changed), tags, evaluation results and feedback. The run directories stay the truth:
// every write here also goes to a file in the run (run-files.ts), and `rebuild` recreates the database from them.
// Not a scheduler or a store of weights: it records where things are and what they were made from.
import { existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { tempPathFor } from '../util/atomic.js';
import { UserError, describeError } from '../util/errors.js';
import { ensureDir } from '../util/fs.js';
import { sha256File, sha256Of } from '../util/hash.js';
import type { InfraFigures } from '../util/provenance.js';
import { configDiff, dataDiff, versionChanges } from './diff.js';
import {
  appendFeedback, evalRows, FEEDBACK_FILE, isRunDir, listEvalReports, readFeedback, readRunDir, readTags, readVersionFile, writeEvalReport,
  writeTags, writeVersionFile,
  type ConfigChange, type DataChange, type DataFingerprint, type EvalRow, type FeedbackRecord, type JsonObject, type MetricsSummary,
  type VersionChanges, type VersionFile,
} from './run-files.js';

/** Where the database lives unless --registry or $LMFORGE_REGISTRY says otherwise (relative to the working directory). */
export const DEFAULT_REGISTRY_PATH = 'runs/registry.sqlite';
export const REGISTRY_ENV = 'LMFORGE_REGISTRY';

/** The database path: the flag's, else $LMFORGE_REGISTRY, else runs/registry.sqlite. */
export function registryPath(flag?: string): string {
  return resolve(flag ?? (process.env[REGISTRY_ENV] || DEFAULT_REGISTRY_PATH));
}

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS runs (
  path TEXT PRIMARY KEY,            -- absolute path of the run directory
  name TEXT NOT NULL,               -- its last component
  complete INTEGER NOT NULL,        -- the final model (or adapter) is written
  created_at TEXT NOT NULL,
  registered_at TEXT NOT NULL,
  config_json TEXT NOT NULL,
  config_sha256 TEXT NOT NULL,      -- of the canonical config without out_dir: equal recipes hash equally
  git_commit TEXT,
  git_dirty INTEGER,
  data_json TEXT NOT NULL,
  metrics_json TEXT NOT NULL,
  infra_json TEXT,
  steps INTEGER, val_loss REAL, best_val_loss REAL, tokens_per_s REAL, mfu REAL, energy_j REAL, co2_g REAL
);
CREATE INDEX IF NOT EXISTS runs_name ON runs(name);
CREATE TABLE IF NOT EXISTS artifacts (
  run_path TEXT NOT NULL REFERENCES runs(path) ON DELETE CASCADE,
  file TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  mtime_ms REAL NOT NULL,
  sha256 TEXT NOT NULL,
  PRIMARY KEY (run_path, file)
);
CREATE TABLE IF NOT EXISTS versions (
  id TEXT PRIMARY KEY,              -- name@vN
  name TEXT NOT NULL,
  number INTEGER NOT NULL,
  run_path TEXT NOT NULL UNIQUE REFERENCES runs(path) ON DELETE CASCADE,
  parent TEXT,                      -- a version id (not a foreign key: a rebuild may meet the child first)
  created_at TEXT NOT NULL,
  note TEXT NOT NULL,
  changes_json TEXT,
  UNIQUE (name, number)
);
CREATE TABLE IF NOT EXISTS tags (
  run_path TEXT NOT NULL REFERENCES runs(path) ON DELETE CASCADE,
  tag TEXT NOT NULL,
  PRIMARY KEY (run_path, tag)
);
CREATE TABLE IF NOT EXISTS evals (
  run_path TEXT NOT NULL REFERENCES runs(path) ON DELETE CASCADE,
  report TEXT NOT NULL,             -- file name under <run>/evals/
  task TEXT NOT NULL,
  metric TEXT NOT NULL,
  value REAL, stderr REAL, n INTEGER, n_shot INTEGER,
  created_at TEXT NOT NULL,
  PRIMARY KEY (run_path, report, task, metric)
);
CREATE TABLE IF NOT EXISTS feedback (
  uid TEXT PRIMARY KEY,
  target TEXT NOT NULL,             -- as the client named the model
  run_path TEXT,                    -- the run it resolved to, when it did
  rating INTEGER NOT NULL,
  comment TEXT, prompt TEXT, response TEXT, meta_json TEXT,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_run ON feedback(run_path);
`;

/** A registered run, as lists and `show` print it. */
export interface RunRecord {
  path: string;
  name: string;
  complete: boolean;
  created_at: string;
  registered_at: string;
  config: JsonObject;
  config_sha256: string;
  commit: string | null;
  dirty: boolean | null;
  data: DataFingerprint;
  metrics: MetricsSummary;
  infra: InfraFigures | null;
  /** The model version this run is, if any. */
  version: string | null;
  tags: string[];
}

export interface VersionRecord {
  id: string;
  name: string;
  number: number;
  run_path: string;
  parent: string | null;
  created_at: string;
  note: string;
  changes: VersionChanges | null;
}

export interface ArtifactRecord {
  file: string;
  bytes: number;
  sha256: string;
}

export interface EvalRecord extends EvalRow {
  report: string;
  created_at: string;
}

export interface FeedbackInput {
  /** The model the feedback is about: a version id (name@vN), a run name or path, a tag, or any served name. */
  target: string;
  /** Thumbs up or down: 1 | -1, or 'up' | 'down' as a server's feedback endpoint receives it. */
  rating: 1 | -1 | 'up' | 'down';
  comment?: string | null;
  prompt?: string | null;
  response?: string | null;
  meta?: JsonObject | null;
}

export interface Lineage {
  /** From the version itself back to the first version (parent links followed). */
  ancestors: VersionRecord[];
  /** Versions whose parent is this one. */
  children: VersionRecord[];
}

export interface RunDiff {
  a: RunRecord;
  b: RunRecord;
  config: ConfigChange[];
  data: DataChange[];
  code: { from: string | null; to: string | null };
  metrics: { key: string; a: number | null; b: number | null }[];
  evals: { task: string; metric: string; a: number | null; b: number | null; a_stderr: number | null; b_stderr: number | null }[];
}

interface RunRow {
  path: string; name: string; complete: number; created_at: string; registered_at: string; config_json: string; config_sha256: string;
  git_commit: string | null; git_dirty: number | null; data_json: string; metrics_json: string; infra_json: string | null;
}
interface VersionRow {
  id: string; name: string; number: number; run_path: string; parent: string | null; created_at: string; note: string; changes_json: string | null;
}

const VERSION_ID = /^([A-Za-z0-9][A-Za-z0-9._-]*)@(v(\d+)|latest)$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Parses `name@vN` (or `name@latest`); null when the text is not of that form. */
export function parseVersionRef(ref: string): { name: string; number: number | 'latest' } | null {
  const m = VERSION_ID.exec(ref);
  if (!m) return null;
  return { name: m[1]!, number: m[3] === undefined ? 'latest' : Number(m[3]) };
}

export class Registry {
  private constructor(
    readonly path: string,
    private readonly db: Database.Database,
  ) {}

  /** Opens (creating when missing) the database at `path`. */
  static open(path: string = registryPath()): Registry {
    const abs = resolve(path);
    ensureDir(dirname(abs), 'registry folder', { checkWritable: false });
    if (existsSync(abs) && statSync(abs).isDirectory()) throw new UserError(`registry ${abs}: is a directory, expected a SQLite database file`);
    let db: Database.Database;
    try {
      db = new Database(abs);
      db.pragma('busy_timeout = 10000'); // train, eval, serve and the pipeline may write at once: wait, do not fail
      db.pragma('foreign_keys = ON');
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION) throw new UserError(`registry ${abs}: schema version ${version} is newer than this lmforge's (${SCHEMA_VERSION}); upgrade lmforge or rebuild the registry (lmforge registry rebuild)`);
      db.exec(SCHEMA);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new UserError(`registry ${abs}: cannot open the database (${describeError(e)}); rebuild it from the run directories with \`lmforge registry rebuild\``);
    }
    return new Registry(abs, db);
  }

  close(): void {
    this.db.close();
  }

  /** The folder beside the database, where feedback about models that are not registered runs is kept. */
  get homeDir(): string {
    return dirname(this.path);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Writes

  /**
   * Records (or refreshes) a run from its directory: the run with its artifacts' SHA-256 (a file whose size and
   * mtime are unchanged keeps its hash), and whatever version.json, tags.json, evals/ and feedback.jsonl hold.
   */
  registerRun(runDir: string): RunRecord {
    const snap = readRunDir(runDir);
    const now = new Date().toISOString();
    const known = new Map<string, { bytes: number; mtime_ms: number; sha256: string }>();
    for (const a of this.db.prepare('SELECT file, bytes, mtime_ms, sha256 FROM artifacts WHERE run_path = ?').all(snap.path) as { file: string; bytes: number; mtime_ms: number; sha256: string }[]) known.set(a.file, a);
    // Hash outside the transaction: a large model takes a while, and other writers should not wait for it.
    const artifacts = snap.artifacts.map((a) => {
      const k = known.get(a.file);
      const sha256 = k && k.bytes === a.bytes && k.mtime_ms === a.mtimeMs ? k.sha256 : sha256File(join(snap.path, a.file));
      return { ...a, sha256 };
    });
    const { out_dir: _outDir, ...recipe } = snap.config;
    const prov = snap.provenance;
    const infra = prov?.infra ?? null;
    const version = readVersionFile(snap.path);
    const tags = readTags(snap.path);
    const reports = listEvalReports(snap.path).map(({ file, report }) => ({ file, ...evalRows(report, join(snap.path, 'evals', file)) }));
    const feedback = readFeedback(join(snap.path, FEEDBACK_FILE));
    this.db.transaction(() => {
      const m = snap.metrics;
      this.db.prepare(`INSERT INTO runs (path, name, complete, created_at, registered_at, config_json, config_sha256, git_commit, git_dirty, data_json, metrics_json, infra_json, steps, val_loss, best_val_loss, tokens_per_s, mfu, energy_j, co2_g)
        VALUES (@path, @name, @complete, @created_at, @registered_at, @config_json, @config_sha256, @git_commit, @git_dirty, @data_json, @metrics_json, @infra_json, @steps, @val_loss, @best_val_loss, @tokens_per_s, @mfu, @energy_j, @co2_g)
        ON CONFLICT(path) DO UPDATE SET name = excluded.name, complete = excluded.complete, created_at = excluded.created_at, registered_at = excluded.registered_at,
          config_json = excluded.config_json, config_sha256 = excluded.config_sha256, git_commit = excluded.git_commit, git_dirty = excluded.git_dirty,
          data_json = excluded.data_json, metrics_json = excluded.metrics_json, infra_json = excluded.infra_json, steps = excluded.steps, val_loss = excluded.val_loss,
          best_val_loss = excluded.best_val_loss, tokens_per_s = excluded.tokens_per_s, mfu = excluded.mfu, energy_j = excluded.energy_j, co2_g = excluded.co2_g`).run({
        path: snap.path, name: snap.name, complete: snap.complete ? 1 : 0, created_at: snap.createdAt, registered_at: now,
        config_json: JSON.stringify(snap.config), config_sha256: sha256Of(recipe), git_commit: prov?.code?.commit ?? null,
        git_dirty: prov?.code ? (prov.code.dirty ? 1 : 0) : null, data_json: JSON.stringify(snap.data), metrics_json: JSON.stringify(m),
        infra_json: infra ? JSON.stringify(infra) : null, steps: m.steps, val_loss: m.val_loss, best_val_loss: m.best_val_loss,
        tokens_per_s: m.tokens_per_s, mfu: infra?.mfu ?? m.mfu, energy_j: infra?.energy_j ?? null, co2_g: infra?.co2_g ?? null,
      });
      this.db.prepare('DELETE FROM artifacts WHERE run_path = ?').run(snap.path);
      const insA = this.db.prepare('INSERT INTO artifacts (run_path, file, bytes, mtime_ms, sha256) VALUES (?, ?, ?, ?, ?)');
      for (const a of artifacts) insA.run(snap.path, a.file, a.bytes, a.mtimeMs, a.sha256);
      if (version) this.putVersion(version, snap.path);
      this.db.prepare('DELETE FROM tags WHERE run_path = ?').run(snap.path);
      const insT = this.db.prepare('INSERT INTO tags (run_path, tag) VALUES (?, ?)');
      for (const t of new Set(tags)) insT.run(snap.path, t);
      this.db.prepare('DELETE FROM evals WHERE run_path = ?').run(snap.path);
      for (const r of reports) this.insertEvalRows(snap.path, r.file, r.created, r.rows);
      for (const f of feedback) this.insertFeedback(f, snap.path);
    })();
    return this.run(snap.path);
  }

  private putVersion(v: VersionFile, runPath: string): void {
    const other = this.db.prepare('SELECT run_path FROM versions WHERE id = ?').get(v.id) as { run_path: string } | undefined;
    if (other && other.run_path !== runPath) throw new UserError(`${join(runPath, 'version.json')}: version ${v.id} is already the run ${other.run_path}`);
    this.db.prepare('DELETE FROM versions WHERE run_path = ?').run(runPath);
    this.db.prepare('INSERT INTO versions (id, name, number, run_path, parent, created_at, note, changes_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(v.id, v.name, v.number, runPath, v.parent, v.created_at, v.note, v.changes ? JSON.stringify(v.changes) : null);
  }

  private insertEvalRows(runPath: string, report: string, created: string, rows: readonly EvalRow[]): void {
    const ins = this.db.prepare('INSERT OR REPLACE INTO evals (run_path, report, task, metric, value, stderr, n, n_shot, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    for (const r of rows) ins.run(runPath, report, r.task, r.metric, r.value, r.stderr, r.n, r.n_shot, created);
  }

  private insertFeedback(f: FeedbackRecord, runPath: string | null): void {
    this.db.prepare('INSERT OR IGNORE INTO feedback (uid, target, run_path, rating, comment, prompt, response, meta_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(f.uid, f.target, runPath, f.rating, f.comment, f.prompt, f.response, f.meta ? JSON.stringify(f.meta) : null, f.created_at);
  }

  /**
   * Makes a registered (or registrable) run the next version of `name`: `name@v(N+1)`, its parent the given version
   * (default: the latest version of `name`, if any; null for none), with what changed from the parent. Written to
   * the run's version.json first, then indexed.
   */
  createVersion(runRef: string, name: string, options: { parent?: string | null; note?: string } = {}): VersionRecord {
    if (!NAME.test(name)) throw new UserError(`version name ${JSON.stringify(name)}: expected letters, digits, '.', '_' or '-' (the version is written name@vN)`);
    const run = this.resolve(runRef).run;
    const existing = this.db.prepare('SELECT id FROM versions WHERE run_path = ?').get(run.path) as { id: string } | undefined;
    if (existing) throw new UserError(`${run.path}: is already version ${existing.id} (a run is one version)`);
    // IMMEDIATE: the number is taken and written under the write lock, so two processes cannot both take vN.
    return this.db.transaction(() => {
      const last = this.db.prepare('SELECT MAX(number) AS n FROM versions WHERE name = ?').get(name) as { n: number | null };
      const number = (last.n ?? 0) + 1;
      let parent: VersionRecord | null = null;
      if (options.parent === undefined) parent = last.n === null ? null : this.version(`${name}@v${last.n}`);
      else if (options.parent !== null) parent = this.resolve(options.parent).version ?? null;
      if (options.parent && !parent) throw new UserError(`parent ${options.parent}: is a run, not a model version (make it one with lmforge registry version)`);
      const parentRun = parent ? this.run(parent.run_path) : null;
      const changes = parentRun ? versionChanges({ config: parentRun.config, data: parentRun.data, commit: parentRun.commit }, { config: run.config, data: run.data, commit: run.commit }) : null;
      const v: VersionFile = { lmforge_version_record: 1, id: `${name}@v${number}`, name, number, parent: parent?.id ?? null, created_at: new Date().toISOString(), note: options.note ?? '', changes };
      writeVersionFile(run.path, v);
      this.putVersion(v, run.path);
      return this.version(v.id);
    }).immediate();
  }

  /** Adds (or, with remove, takes off) tags on a run or version; written to the run's tags.json. */
  tag(ref: string, tags: readonly string[], remove = false): string[] {
    for (const t of tags) if (!NAME.test(t)) throw new UserError(`tag ${JSON.stringify(t)}: expected letters, digits, '.', '_' or '-'`);
    const { run } = this.resolve(ref);
    const next = remove ? readTags(run.path).filter((t) => !tags.includes(t)) : [...readTags(run.path), ...tags];
    writeTags(run.path, next);
    return this.registerRun(run.path).tags;
  }

  /** Keeps an evaluation report (the JSON of `lmforge eval --output`) with a run: evals/<file> and the evals table. */
  addEvalReport(runRef: string, report: unknown, file?: string): EvalRecord[] {
    const { run } = this.resolve(runRef);
    const { created, rows } = evalRows(report, file ?? 'evaluation report');
    const name = file ?? `eval-${created.replace(/[:.]/g, '-')}.json`;
    writeEvalReport(run.path, report, name);
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM evals WHERE run_path = ? AND report = ?').run(run.path, name);
      this.insertEvalRows(run.path, name, created, rows);
    })();
    return this.evals(run.path).filter((e) => e.report === name);
  }

  /**
   * Records thumbs up/down feedback on a model's answer. It goes to the feedback.jsonl of the run the target names
   * (a version id, run name, path or tag), else to the feedback.jsonl beside the database, and into the table.
   */
  addFeedback(input: FeedbackInput): FeedbackRecord {
    const rating = input.rating === 'up' ? 1 : input.rating === 'down' ? -1 : input.rating;
    if (rating !== 1 && rating !== -1) throw new UserError(`feedback rating: expected 1 (thumbs up) or -1 (thumbs down), got ${JSON.stringify(input.rating)}`);
    if (typeof input.target !== 'string' || input.target === '') throw new UserError('feedback target: expected the name of the model the answer came from');
    const rec: FeedbackRecord = {
      uid: randomUUID(), target: input.target, rating, comment: input.comment ?? null, prompt: input.prompt ?? null,
      response: input.response ?? null, meta: input.meta ?? null, created_at: new Date().toISOString(),
    };
    const runPath = this.tryResolve(input.target)?.run.path ?? null;
    appendFeedback(join(runPath ?? this.homeDir, FEEDBACK_FILE), rec);
    this.insertFeedback(rec, runPath);
    return rec;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Queries

  private toRun(r: RunRow): RunRecord {
    const version = this.db.prepare('SELECT id FROM versions WHERE run_path = ?').get(r.path) as { id: string } | undefined;
    const tags = (this.db.prepare('SELECT tag FROM tags WHERE run_path = ? ORDER BY tag').all(r.path) as { tag: string }[]).map((t) => t.tag);
    return {
      path: r.path, name: r.name, complete: r.complete === 1, created_at: r.created_at, registered_at: r.registered_at,
      config: JSON.parse(r.config_json) as JsonObject, config_sha256: r.config_sha256, commit: r.git_commit,
      dirty: r.git_dirty === null ? null : r.git_dirty === 1, data: JSON.parse(r.data_json) as DataFingerprint,
      metrics: JSON.parse(r.metrics_json) as MetricsSummary, infra: r.infra_json ? (JSON.parse(r.infra_json) as InfraFigures) : null,
      version: version?.id ?? null, tags,
    };
  }

  private toVersion(v: VersionRow): VersionRecord {
    return { ...v, changes: v.changes_json ? (JSON.parse(v.changes_json) as VersionChanges) : null };
  }

  /** A registered run by absolute path (UserError when it is not registered). */
  run(path: string): RunRecord {
    const r = this.db.prepare('SELECT * FROM runs WHERE path = ?').get(resolve(path)) as RunRow | undefined;
    if (!r) throw new UserError(`${path}: not a registered run (register it with lmforge registry register ${path})`);
    return this.toRun(r);
  }

  /** A version by id (`name@vN`, or `name@latest`). */
  version(id: string): VersionRecord {
    const p = parseVersionRef(id);
    if (!p) throw new UserError(`${id}: expected a version id name@vN`);
    const v = (p.number === 'latest'
      ? this.db.prepare('SELECT * FROM versions WHERE name = ? ORDER BY number DESC LIMIT 1').get(p.name)
      : this.db.prepare('SELECT * FROM versions WHERE name = ? AND number = ?').get(p.name, p.number)) as VersionRow | undefined;
    if (!v) {
      const have = this.listVersions(p.name).map((x) => x.id);
      throw new UserError(`${id}: no such model version${have.length ? ` (${p.name} has ${have.join(', ')})` : ''}`);
    }
    return this.toVersion(v);
  }

  /** Runs, newest first; optionally only those with a tag or a name. */
  listRuns(options: { limit?: number; tag?: string } = {}): RunRecord[] {
    const rows = (options.tag
      ? this.db.prepare('SELECT runs.* FROM runs JOIN tags ON tags.run_path = runs.path WHERE tags.tag = ? ORDER BY created_at DESC LIMIT ?').all(options.tag, options.limit ?? -1)
      : this.db.prepare('SELECT * FROM runs ORDER BY created_at DESC LIMIT ?').all(options.limit ?? -1)) as RunRow[];
    return rows.map((r) => this.toRun(r));
  }

  /** Versions of one name (or of all), oldest first. */
  listVersions(name?: string): VersionRecord[] {
    const rows = (name === undefined
      ? this.db.prepare('SELECT * FROM versions ORDER BY name, number').all()
      : this.db.prepare('SELECT * FROM versions WHERE name = ? ORDER BY number').all(name)) as VersionRow[];
    return rows.map((v) => this.toVersion(v));
  }

  artifacts(runPath: string): ArtifactRecord[] {
    return this.db.prepare('SELECT file, bytes, sha256 FROM artifacts WHERE run_path = ? ORDER BY file').all(resolve(runPath)) as ArtifactRecord[];
  }

  evals(runPath: string): EvalRecord[] {
    return this.db.prepare('SELECT report, task, metric, value, stderr, n, n_shot, created_at FROM evals WHERE run_path = ? ORDER BY created_at, task, metric').all(resolve(runPath)) as EvalRecord[];
  }

  /** Feedback on one run (every target that resolved to it), or all of it; newest first. */
  feedback(runPath?: string): FeedbackRecord[] {
    const rows = (runPath === undefined
      ? this.db.prepare('SELECT * FROM feedback ORDER BY created_at DESC').all()
      : this.db.prepare('SELECT * FROM feedback WHERE run_path = ? ORDER BY created_at DESC').all(resolve(runPath))) as (Omit<FeedbackRecord, 'meta'> & { meta_json: string | null })[];
    return rows.map(({ meta_json, ...f }) => ({ uid: f.uid, target: f.target, rating: f.rating, comment: f.comment, prompt: f.prompt, response: f.response, meta: meta_json ? (JSON.parse(meta_json) as JsonObject) : null, created_at: f.created_at }));
  }

  /** Thumbs up and down per target run (or per target name when it names no run). */
  feedbackCounts(): { target: string; up: number; down: number }[] {
    return this.db.prepare(`SELECT COALESCE(run_path, target) AS target, SUM(rating = 1) AS up, SUM(rating = -1) AS down FROM feedback GROUP BY COALESCE(run_path, target) ORDER BY target`).all() as { target: string; up: number; down: number }[];
  }

  /**
   * What a reference names: `name@vN` / `name@latest` (a version), a path to a run directory (registered on the
   * way when it is not yet), a run's name when one run has it, a tag on exactly one run, or a version name (its
   * latest version). UserError when nothing (or more than one run) matches.
   */
  resolve(ref: string): { run: RunRecord; version: VersionRecord | null } {
    const r = this.tryResolve(ref, true);
    if (r) return r;
    throw new UserError(`${ref}: no such run or version in the registry ${this.path} (give a run directory, a run name, a tag or name@vN; lmforge registry list shows them)`);
  }

  private tryResolve(ref: string, strict = false): { run: RunRecord; version: VersionRecord | null } | null {
    const withVersion = (run: RunRecord): { run: RunRecord; version: VersionRecord | null } => ({ run, version: run.version ? this.version(run.version) : null });
    if (parseVersionRef(ref)) {
      if (!strict && !this.db.prepare('SELECT 1 FROM versions WHERE name = ?').get(parseVersionRef(ref)!.name)) return null;
      const v = this.version(ref);
      return { run: this.run(v.run_path), version: v };
    }
    const abs = resolve(ref);
    if (this.db.prepare('SELECT 1 FROM runs WHERE path = ?').get(abs)) return withVersion(this.run(abs));
    if (existsSync(abs) && statSync(abs).isDirectory() && isRunDir(abs)) return withVersion(this.registerRun(abs));
    const ambiguous = (what: string, paths: string[]): never => {
      throw new UserError(`${ref}: names ${paths.length} runs by ${what} (${paths.join(', ')}); give the run's path or a version id`);
    };
    const byName = this.db.prepare('SELECT path FROM runs WHERE name = ?').all(ref) as { path: string }[];
    if (byName.length === 1) return withVersion(this.run(byName[0]!.path));
    if (byName.length > 1) return strict ? ambiguous('name', byName.map((p) => p.path)) : null;
    const byTag = this.db.prepare('SELECT run_path AS path FROM tags WHERE tag = ?').all(ref) as { path: string }[];
    if (byTag.length === 1) return withVersion(this.run(byTag[0]!.path));
    if (byTag.length > 1) return strict ? ambiguous('tag', byTag.map((p) => p.path)) : null;
    if (NAME.test(ref) && this.db.prepare('SELECT 1 FROM versions WHERE name = ?').get(ref)) {
      const v = this.version(`${ref}@latest`);
      return { run: this.run(v.run_path), version: v };
    }
    return null;
  }

  /** The version's ancestors (itself first, then its parent, …) and its children. */
  lineage(ref: string): Lineage {
    const { version } = this.resolve(ref);
    if (!version) throw new UserError(`${ref}: is a run without a model version; make it one with lmforge registry version ${ref} --name NAME`);
    const ancestors: VersionRecord[] = [version];
    const seen = new Set([version.id]);
    for (let p = version.parent; p !== null && !seen.has(p);) {
      seen.add(p);
      let v: VersionRecord;
      try {
        v = this.version(p);
      } catch {
        break; // a parent that is not (or no longer) registered: the chain ends there
      }
      ancestors.push(v);
      p = v.parent;
    }
    const children = (this.db.prepare('SELECT * FROM versions WHERE parent = ? ORDER BY name, number').all(version.id) as VersionRow[]).map((v) => this.toVersion(v));
    return { ancestors, children };
  }

  /** How run (or version) b differs from a: config, data, code, metrics and evaluation results. */
  diff(refA: string, refB: string): RunDiff {
    const a = this.resolve(refA).run;
    const b = this.resolve(refB).run;
    const keys: (keyof MetricsSummary)[] = ['steps', 'train_loss', 'val_loss', 'best_val_loss', 'val_loss_full', 'tokens_per_s', 'mfu'];
    // MFU over the whole run (provenance) where recorded; metrics.jsonl's is the last progress line's moving average.
    const metrics = keys.map((k) => ({ key: k as string, a: k === 'mfu' ? a.infra?.mfu ?? a.metrics.mfu : a.metrics[k], b: k === 'mfu' ? b.infra?.mfu ?? b.metrics.mfu : b.metrics[k] }));
    for (const k of ['energy_j', 'co2_g'] as const) metrics.push({ key: k, a: a.infra?.[k] ?? null, b: b.infra?.[k] ?? null });
    // The newest result of each (task, metric) on each side.
    const latest = (rows: EvalRecord[]): Map<string, EvalRecord> => new Map(rows.map((r) => [`${r.task}\u0000${r.metric}`, r]));
    const ea = latest(this.evals(a.path));
    const eb = latest(this.evals(b.path));
    const evals = [...new Set([...ea.keys(), ...eb.keys()])].sort().map((k) => {
      const [task, metric] = k.split('\u0000') as [string, string];
      const x = ea.get(k);
      const y = eb.get(k);
      return { task, metric, a: x?.value ?? null, b: y?.value ?? null, a_stderr: x?.stderr ?? null, b_stderr: y?.stderr ?? null };
    });
    return { a, b, config: configDiff(a.config, b.config), data: dataDiff(a.data, b.data), code: { from: a.commit, to: b.commit }, metrics, evals };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Rebuild

  /** Every registered run's path (for rebuild to revisit runs outside the scanned folders). */
  runPaths(): string[] {
    return (this.db.prepare('SELECT path FROM runs').all() as { path: string }[]).map((r) => r.path);
  }

  /**
   * Recreates the database at `path` from the run directories under `roots` (default: the database's folder) and
   * those it already listed, and the feedback.jsonl beside it. Built in a temp file and renamed over the old one.
   * Returns counts and the runs it could not read (each with its reason).
   */
  static rebuild(path: string = registryPath(), roots?: readonly string[]): { runs: number; versions: number; evals: number; feedback: number; skipped: { path: string; reason: string }[] } {
    const abs = resolve(path);
    const dirs = new Set<string>();
    for (const root of roots ?? [dirname(abs)]) for (const d of findRunDirs(resolve(root))) dirs.add(d);
    if (existsSync(abs)) {
      try {
        const old = Registry.open(abs);
        for (const p of old.runPaths()) if (isRunDir(p)) dirs.add(p);
        old.close();
      } catch {
        // an unreadable old database is what rebuild is for: the scan alone decides
      }
    }
    ensureDir(dirname(abs), 'registry folder', { checkWritable: false });
    const tmp = tempPathFor(abs);
    const reg = Registry.open(tmp);
    const skipped: { path: string; reason: string }[] = [];
    try {
      // Versions' parents are other runs: registering every run first and the version files with them keeps it one pass.
      for (const d of [...dirs].sort()) {
        try {
          reg.registerRun(d);
        } catch (e) {
          skipped.push({ path: d, reason: describeError(e) });
        }
      }
      for (const f of readFeedback(join(dirname(abs), FEEDBACK_FILE))) reg.insertFeedback(f, reg.tryResolve(f.target)?.run.path ?? null);
      const count = (t: string): number => (reg.db.prepare(`SELECT COUNT(*) AS n FROM ${t}`).get() as { n: number }).n;
      const counts = { runs: count('runs'), versions: count('versions'), evals: count('evals'), feedback: count('feedback') };
      reg.close();
      rmSync(`${abs}-journal`, { force: true });
      renameSync(tmp, abs);
      return { ...counts, skipped };
    } catch (e) {
      try {
        reg.close();
      } catch {
        // already closed
      }
      rmSync(tmp, { force: true });
      throw e;
    }
  }
}

/** Run directories under root (root itself included), not descending into runs' checkpoints or hidden folders. */
export function findRunDirs(root: string, maxDepth = 4): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number): void => {
    if (isRunDir(dir)) out.push(dir);
    if (depth >= maxDepth) return;
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      if (n.startsWith('.') || n.startsWith('ckpt-') || n === 'node_modules' || n === 'evals') continue;
      const p = join(dir, n);
      try {
        if (statSync(p).isDirectory()) walk(p, depth + 1);
      } catch {
        // vanished or unreadable: not a run
      }
    }
  };
  if (existsSync(root)) walk(root, 0);
  return out;
}
