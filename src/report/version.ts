// A trained version as the reports see it: a run directory's resolved config, its data's identity (the meta.json
// it kept plus the size and SHA-256 of each data file its config names, the "fingerprints"), its metric curves and
// the evaluation reports saved with it. Read-only and tolerant: a missing piece is recorded as missing, not fatal,
// so two partial runs can still be compared. Not the run directory's owner (train/run-dir.ts).
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { EvalReport } from '../eval/report.js';
import { readMetrics, type MetricRecord } from '../train/metrics.js';
import { META_FILE, RunDir, TRAIN_CONFIG_FILE } from '../train/run-dir.js';
import { UserError } from '../util/errors.js';
import { readProvenance, type RunProvenance } from '../util/provenance.js';

export interface FileFingerprint {
  bytes: number;
  sha256: string;
}

export interface DataIdentity {
  /** The data directory the config names (null when the config names none). */
  dir: string | null;
  /** Whether that directory is still there to fingerprint. */
  present: boolean;
  vocabSize: number | null;
  tokenizer: string | null;
  /** SHA-256 of the tokenizer description the run kept (its vocabulary or file name and type). */
  tokenizerSha256: string | null;
  /** Where the data came from, as meta.json recorded it (prepare's `source`). */
  source: string | null;
  files: Record<string, FileFingerprint>;
}

export interface VersionInfo {
  /** What the user named: a run directory (or, through the registry, name@vN). */
  label: string;
  dir: string;
  config: Record<string, unknown> | null;
  data: DataIdentity;
  /** The code commit the run recorded (provenance.json), when it did; "+dirty" when it had local edits. */
  commit: string | null;
  /** The model version this run is (version.json of the registry), when it is one. */
  version: string | null;
  metrics: MetricRecord[];
  evals: { file: string; report: EvalReport }[];
  hasWeights: boolean;
}

function readJSONObject(path: string): Record<string, unknown> | null {
  if (!existsSync(path)) return null;
  try {
    const v: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Size and SHA-256 of a file, streamed in 4 MiB pieces (token shards can be large). */
export function fingerprintFile(path: string): FileFingerprint {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(4 << 20);
  const fd = openSync(path, 'r');
  let bytes = 0;
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      bytes += n;
    }
  } finally {
    closeSync(fd);
  }
  return { bytes, sha256: hash.digest('hex') };
}

const fingerprintCache = new Map<string, { mtimeMs: number; size: number; fp: FileFingerprint }>();

/** fingerprintFile, remembered per (path, mtime, size) for the dashboard's repeated reads. */
export function cachedFingerprint(path: string): FileFingerprint {
  const st = statSync(path);
  const hit = fingerprintCache.get(path);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.fp;
  const fp = fingerprintFile(path);
  fingerprintCache.set(path, { mtimeMs: st.mtimeMs, size: st.size, fp });
  return fp;
}

/** The data files a run trained on: every file of its data directory (train.bin, val.bin, meta.json, tokenizer, shards). */
function dataIdentity(config: Record<string, unknown> | null, runMeta: Record<string, unknown> | null, baseDir: string, provenance: RunProvenance | null): DataIdentity {
  const dataSection = config?.data as { dir?: unknown } | undefined;
  const dir = typeof dataSection?.dir === 'string' ? dataSection.dir : null;
  const abs = dir === null ? null : resolve(baseDir, dir);
  const present = abs !== null && existsSync(abs) && statSync(abs).isDirectory();
  const files: Record<string, FileFingerprint> = {};
  if (present) {
    for (const f of readdirSync(abs).sort()) {
      if (f.startsWith('.')) continue; // temp files of atomic writes, the pipeline's stage marker: not data
      const p = join(abs, f);
      if (statSync(p).isFile()) files[f] = cachedFingerprint(p);
    }
  } else if (provenance) {
    // The data is gone (or elsewhere) but the run recorded its fingerprints when it trained.
    Object.assign(files, provenance.data.files);
  }
  const tok = runMeta?.tokenizer as Record<string, unknown> | undefined;
  return {
    dir, present: present || Object.keys(files).length > 0,
    vocabSize: typeof runMeta?.vocab_size === 'number' ? runMeta.vocab_size : null,
    tokenizer: tok ? String(tok.type ?? 'unknown') : null,
    tokenizerSha256: tok ? createHash('sha256').update(JSON.stringify(tok)).digest('hex') : null,
    source: typeof runMeta?.source === 'string' ? runMeta.source : typeof (runMeta?.data as Record<string, unknown> | undefined)?.source === 'string' ? String((runMeta!.data as Record<string, unknown>).source) : null,
    files,
  };
}

/** Evaluation reports (`lmforge eval --output`) saved in the run directory, its eval/ folder or the registry's evals/. */
export function findEvalReports(dir: string): { file: string; report: EvalReport }[] {
  const out: { file: string; report: EvalReport }[] = [];
  for (const folder of [dir, join(dir, 'eval'), join(dir, 'evals')]) { // evals/: where eval and the registry keep a run's reports
    if (!existsSync(folder) || !statSync(folder).isDirectory()) continue;
    for (const f of readdirSync(folder).sort()) {
      if (!f.endsWith('.json') || f === TRAIN_CONFIG_FILE || f === META_FILE || f === 'config.json') continue;
      const path = join(folder, f);
      const j = readJSONObject(path);
      if (j && j.lmforge_eval === 1 && Array.isArray(j.results)) out.push({ file: path, report: j as unknown as EvalReport });
    }
  }
  return out;
}

/** Reads what the reports need from a run directory; `extraEvals` adds eval report files given by hand. */
export function loadVersion(dir: string, label = dir, extraEvals: readonly string[] = []): VersionInfo {
  const run = RunDir.open(dir);
  const config = readJSONObject(join(dir, TRAIN_CONFIG_FILE));
  const meta = readJSONObject(run.metaPath);
  if (config === null && !existsSync(run.metricsPath)) {
    throw new UserError(`${dir}: neither ${TRAIN_CONFIG_FILE} nor metrics.jsonl: not a run directory of \`lmforge train\``);
  }
  const evals = findEvalReports(dir);
  for (const f of extraEvals) {
    const j = readJSONObject(f);
    if (!j || j.lmforge_eval !== 1) throw new UserError(`${f}: not an evaluation report of \`lmforge eval --output\` (expected lmforge_eval: 1)`);
    evals.push({ file: f, report: j as unknown as EvalReport });
  }
  let provenance: RunProvenance | null = null;
  try {
    provenance = readProvenance(dir);
  } catch {
    // an unreadable provenance.json: compare without it
  }
  const code = provenance?.code ?? null;
  const version = readJSONObject(join(dir, 'version.json'));
  return {
    label, dir, config, data: dataIdentity(config, meta, process.cwd(), provenance), commit: code ? `${code.commit}${code.dirty ? '+dirty' : ''}` : null,
    version: typeof version?.id === 'string' ? version.id : null,
    metrics: readMetrics(run.metricsPath), evals, hasWeights: existsSync(run.resultWeightsPath),
  };
}

/** A short name for charts and tables: the label, or the run directory's last part. */
export const shortName = (v: VersionInfo): string => (v.label === v.dir ? basename(resolve(v.dir)) : v.label);
