// Training checkpoints: a directory `<run>/ckpt-<step>/` holding model.safetensors (weights), optimizer.safetensors
// (whatever named state the optimizer reports, `<param>.<slot>`, with its kind and version) and state.json (step,
// optimizer kind/version/step, the task's resume state such as its sampler RNG, best val loss, resolved config,
// each file's size and SHA-256). Version 1 (AdamW only, before optimizers had kinds) is still read. Not the
// training loop and not a model loader: tensors go in and come out as plain typed arrays.
//
// Crash safety: a checkpoint is written into a hidden temp directory, every file fsynced, then the directory is
// renamed to ckpt-<step> (atomic) and the `latest` pointer file is replaced atomically. A process killed at any
// moment leaves either a complete ckpt-<step> or a hidden temp directory that readers ignore and the next save
// removes. Readers still verify sizes and hashes, so a truncated or corrupted checkpoint is skipped with a reason.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { AtomicWriter, fsyncDir, writeFileAtomic } from '../util/atomic.js';
import { ensureDir } from '../util/fs.js';
import { UserError, describeError } from '../util/errors.js';
import { readSafetensors, safetensorsParts, type TensorData } from '../core/safetensors.js';
import type { OptimizerState } from '../optim/optimizer.js';
import type { RngState } from '../core/random.js';

export const CHECKPOINT_FORMAT = 'lmforge-checkpoint';
export const CHECKPOINT_VERSION = 2;
export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const STATE_FILE = 'state.json';
export const LATEST_FILE = 'latest';

/** Everything needed to resume a run exactly. */
export interface CheckpointData {
  step: number;
  /** Model weights by (Hugging Face GPT-2 style) name, in the order to write them. */
  params: [string, TensorData][];
  /** The optimizer's named state tensors, kind, version and step count. */
  optimizer: OptimizerState;
  /** What the task needs back to continue exactly (JSON), e.g. its sampler's RNG state. */
  task: Record<string, unknown>;
  bestValLoss: number | null;
  /** The run's resolved config (saved as JSON). */
  config: object;
  /** Anything else the loop wants back on resume (JSON). */
  extra?: Record<string, unknown>;
}

interface FileRecord {
  bytes: number;
  sha256: string;
}

/** The contents of state.json. */
export interface CheckpointState {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  step: number;
  optimizer: { kind: string; version: number; step: number };
  task: Record<string, unknown>;
  bestValLoss: number | null;
  config: Record<string, unknown>;
  extra: Record<string, unknown>;
  files: Record<string, FileRecord>;
}

export interface LoadedCheckpoint {
  dir: string;
  state: CheckpointState;
  /** Weights by name, in file order (any float dtype is widened to Float32Array). */
  params: Map<string, { shape: number[]; data: Float32Array }>;
  optimizer: OptimizerState;
}

export function checkpointDirName(step: number): string {
  return `ckpt-${step}`;
}

/** The step of a `ckpt-<step>` directory name, or undefined for other names. */
export function parseCheckpointDirName(name: string): number | undefined {
  const m = /^ckpt-(\d+)$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Writes parts to `path` (already inside the temp dir), returning size and SHA-256. */
function writeHashed(path: string, parts: Iterable<Uint8Array>): FileRecord {
  const hash = createHash('sha256');
  const w = new AtomicWriter(path);
  try {
    for (const p of parts) {
      hash.update(p);
      w.write(p);
    }
  } catch (e) {
    w.abort();
    throw e;
  }
  w.commit();
  return { bytes: w.size, sha256: hash.digest('hex') };
}

function optimizerTensors(data: CheckpointData): [string, TensorData][] {
  const params = new Set(data.params.map(([n]) => n));
  const out: [string, TensorData][] = [];
  for (const [name, t] of data.optimizer.tensors) {
    const owner = name.slice(0, name.lastIndexOf('.'));
    if (!params.has(owner)) throw new Error(`saveCheckpoint: optimizer tensor "${name}" belongs to no parameter of the model`);
    if (t.data.length !== t.shape.reduce((a, b) => a * b, 1)) throw new Error(`saveCheckpoint: optimizer tensor "${name}" has ${t.data.length} elements for shape [${t.shape.join(', ')}]`);
    out.push([name, { shape: [...t.shape], data: t.data }]);
  }
  return out;
}

/**
 * Leftovers of killed writers, all hidden (dot) names that readers ignore:
 * - `.ckpt-<step>.tmp-<pid>-<hex>`: a checkpoint being written (removed once its writer is dead);
 * - `.ckpt-<step>.replaced-<hex>`: a complete checkpoint moved aside to be replaced by a new one of the same step
 *   (restored if the new one never made it into place, else removed);
 * - `.ckpt-<step>.deleting-<hex>`: a checkpoint dropped by retention (removed);
 * - `.latest.<pid>.<hex>.tmp`: the atomic writer's temp file for `latest` (removed once its writer is dead).
 * One writer per run directory is assumed.
 */
const LEFTOVER = /^(?:\.(ckpt-\d+)\.(tmp|replaced|deleting)-(?:(\d+)-)?[0-9a-f]+|\.latest\.(\d+)\.[0-9a-f]+\.tmp)$/;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Cleans up after killed writers (never touching the temp files of a live process, which may still be writing). */
function removeStaleTemps(runDir: string): void {
  for (const name of readdirSync(runDir)) {
    const m = LEFTOVER.exec(name);
    if (!m) continue;
    const path = join(runDir, name);
    const owner = m[3] ?? m[4];
    if (owner !== undefined && (Number(owner) === process.pid || processAlive(Number(owner)))) continue;
    if (m[2] === 'replaced' && m[1] !== undefined && !existsSync(join(runDir, m[1]))) {
      renameSync(path, join(runDir, m[1]));
      continue;
    }
    rmSync(path, { recursive: true, force: true });
  }
}

/** Removes a checkpoint directory so that no half-deleted ckpt-<step> is ever visible: rename aside, then delete. */
function removeCheckpointDir(runDir: string, name: string): void {
  const aside = join(runDir, `.${name}.deleting-${randomBytes(4).toString('hex')}`);
  renameSync(join(runDir, name), aside);
  rmSync(aside, { recursive: true, force: true });
}

export interface SaveOptions {
  /** Keep only the newest N checkpoints (by step); 0 or undefined keeps all. */
  keepLast?: number;
}

/**
 * Writes a checkpoint as <runDir>/ckpt-<step> (replacing an existing one of the same step), points `latest` at it,
 * and applies retention. Returns the checkpoint directory.
 */
export function saveCheckpoint(runDir: string, data: CheckpointData, options: SaveOptions = {}): string {
  if (!Number.isInteger(data.step) || data.step < 0) throw new Error(`saveCheckpoint: step must be an integer ≥ 0, got ${data.step}`);
  ensureDir(runDir, 'run directory', { checkWritable: false });
  removeStaleTemps(runDir);
  const name = checkpointDirName(data.step);
  const tmp = join(runDir, `.${name}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(tmp);
  try {
    const files: Record<string, FileRecord> = {};
    files[MODEL_FILE] = writeHashed(join(tmp, MODEL_FILE), safetensorsParts(data.params, { format: 'pt', step: String(data.step) }));
    files[OPTIMIZER_FILE] = writeHashed(
      join(tmp, OPTIMIZER_FILE),
      safetensorsParts(optimizerTensors(data), { optimizer: data.optimizer.kind, version: String(data.optimizer.version), step: String(data.optimizer.step) }),
    );
    const state: CheckpointState = {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      step: data.step,
      optimizer: { kind: data.optimizer.kind, version: data.optimizer.version, step: data.optimizer.step },
      task: data.task,
      bestValLoss: data.bestValLoss,
      config: data.config as Record<string, unknown>,
      extra: data.extra ?? {},
      files,
    };
    writeFileAtomic(join(tmp, STATE_FILE), JSON.stringify(state, null, 2) + '\n');
    fsyncDir(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const dest = join(runDir, name);
  if (existsSync(dest)) {
    // rename(2) cannot replace a non-empty directory: move the old one aside first, delete it after
    // (a kill in between leaves it aside, and the next save puts it back).
    const old = join(runDir, `.${name}.replaced-${randomBytes(4).toString('hex')}`);
    renameSync(dest, old);
    renameSync(tmp, dest);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(tmp, dest);
  }
  fsyncDir(runDir);
  writeFileAtomic(join(runDir, LATEST_FILE), name + '\n');
  if (options.keepLast && options.keepLast > 0) applyRetention(runDir, options.keepLast, data.step);
  return dest;
}

/** Deletes all but the newest `keep` checkpoints (never `protect`, the one just written). */
export function applyRetention(runDir: string, keep: number, protect?: number): void {
  const steps = listCheckpointSteps(runDir).sort((a, b) => b - a);
  for (const step of steps.slice(keep)) {
    if (step === protect) continue;
    removeCheckpointDir(runDir, checkpointDirName(step));
  }
}

/** Steps of every `ckpt-<step>` directory in runDir (complete or not), unsorted. */
export function listCheckpointSteps(runDir: string): number[] {
  if (!existsSync(runDir)) return [];
  const out: number[] = [];
  for (const name of readdirSync(runDir)) {
    const step = parseCheckpointDirName(name);
    if (step !== undefined && statSync(join(runDir, name)).isDirectory()) out.push(step);
  }
  return out;
}

function sha256File(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 22);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

function isRngState(x: unknown): x is RngState {
  return Array.isArray(x) && x.length === 4 && x.every((v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff);
}

/** Reads and checks state.json and every file it lists (size, then SHA-256). Throws UserError saying what is wrong. */
export function verifyCheckpoint(dir: string): CheckpointState {
  const statePath = join(dir, STATE_FILE);
  if (!existsSync(statePath)) throw new UserError(`${dir}: incomplete checkpoint: ${STATE_FILE} is missing`);
  let state: unknown;
  try {
    state = JSON.parse(readFileSync(statePath, 'utf8'));
  } catch (e) {
    throw new UserError(`${statePath}: corrupt checkpoint state: ${describeError(e)}`);
  }
  const bad = (what: string): never => {
    throw new UserError(`${statePath}: ${what}`);
  };
  if (typeof state !== 'object' || state === null) return bad('expected a JSON object');
  const s = state as Partial<CheckpointState>;
  if (s.format !== CHECKPOINT_FORMAT) bad(`format is ${JSON.stringify(s.format)}, expected "${CHECKPOINT_FORMAT}" (not an lmforge checkpoint?)`);
  if (s.version !== CHECKPOINT_VERSION && s.version !== 1) {
    bad(`checkpoint format version ${String(s.version)}, this lmforge reads versions 1 and ${CHECKPOINT_VERSION}`);
  }
  if (!Number.isInteger(s.step) || (s.step as number) < 0) bad('field "step": expected an integer ≥ 0');
  if (s.version === 1) {
    // Version 1: AdamW was the only optimizer and the sampler's RNG the only task state.
    const v1 = state as { optimizerStep?: unknown; samplerRng?: unknown };
    if (!Number.isInteger(v1.optimizerStep)) bad('field "optimizerStep": expected an integer');
    if (!isRngState(v1.samplerRng)) bad('field "samplerRng": expected four unsigned 32-bit integers');
    s.optimizer = { kind: 'adamw', version: 1, step: v1.optimizerStep as number };
    s.task = { samplerRng: v1.samplerRng };
  }
  const o = s.optimizer as Partial<CheckpointState['optimizer']> | undefined;
  if (typeof o !== 'object' || o === null || typeof o.kind !== 'string' || !Number.isInteger(o.version) || !Number.isInteger(o.step)) {
    bad('field "optimizer": expected {kind: string, version: integer, step: integer}');
  }
  if (typeof s.task !== 'object' || s.task === null || Array.isArray(s.task)) bad('field "task": expected an object');
  const rng = (s.task as Record<string, unknown>).samplerRng;
  if (rng !== undefined && !isRngState(rng)) bad('field "task.samplerRng": expected four unsigned 32-bit integers');
  if (!(s.bestValLoss === null || typeof s.bestValLoss === 'number')) bad('field "bestValLoss": expected a number or null');
  if (typeof s.config !== 'object' || s.config === null) bad('field "config": expected an object');
  if (typeof s.files !== 'object' || s.files === null) bad('field "files": expected an object');
  const files = s.files as Record<string, FileRecord>;
  for (const required of [MODEL_FILE, OPTIMIZER_FILE]) if (!files[required]) bad(`field "files" does not list ${required}`);
  for (const [name, rec] of Object.entries(files)) {
    if (!/^[A-Za-z0-9_.-]+$/.test(name) || name.startsWith('.')) bad(`field "files": ${JSON.stringify(name)} is not a plain file name`);
    if (!Number.isSafeInteger(rec?.bytes) || typeof rec?.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(rec.sha256)) {
      bad(`field "files.${name}": expected {bytes: integer, sha256: 64 hex digits}`);
    }
    const p = join(dir, name);
    if (!existsSync(p)) throw new UserError(`${p}: missing (listed in ${STATE_FILE})`);
    if (!statSync(p).isFile()) throw new UserError(`${p}: not a file (listed in ${STATE_FILE} as one)`);
    const size = statSync(p).size;
    if (size !== rec.bytes) {
      throw new UserError(`${p}: ${size} bytes, but ${STATE_FILE} records ${rec.bytes} (${size < rec.bytes ? 'truncated' : 'overwritten'} file)`);
    }
    const sha = sha256File(p);
    if (sha !== rec.sha256) throw new UserError(`${p}: SHA-256 ${sha.slice(0, 12)}… does not match ${rec.sha256.slice(0, 12)}… in ${STATE_FILE} (corrupt file)`);
  }
  return { ...(s as CheckpointState), extra: s.extra ?? {} };
}

/** Verifies and loads a checkpoint directory. */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const state = verifyCheckpoint(dir);
  const modelPath = join(dir, MODEL_FILE);
  const model = readSafetensors(modelPath);
  const params = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of model.tensors) {
    if (t.data instanceof Float32Array) params.set(name, { shape: t.shape, data: t.data });
    else if (t.data instanceof Float64Array) params.set(name, { shape: t.shape, data: Float32Array.from(t.data) });
    else throw new UserError(`${modelPath}: tensor "${name}" has dtype ${t.dtype}, expected a float dtype`);
  }
  const optPath = join(dir, OPTIMIZER_FILE);
  const opt = readSafetensors(optPath);
  const tensors: OptimizerState['tensors'] = new Map();
  for (const [name, t] of opt.tensors) {
    const owner = name.slice(0, name.lastIndexOf('.'));
    if (!params.has(owner)) throw new UserError(`${optPath}: tensor "${name}" is the state of no parameter in ${MODEL_FILE}`);
    if (!(t.data instanceof Float32Array)) throw new UserError(`${optPath}: tensor "${name}" has dtype ${t.dtype}, expected F32`);
    tensors.set(name, { shape: t.shape, data: t.data });
  }
  return { dir, state, params, optimizer: { ...state.optimizer, tensors } };
}

export interface LatestCheckpoint {
  dir: string;
  step: number;
  state: CheckpointState;
  /** Newer checkpoint directories that failed verification, with the reason (print these). */
  skipped: { dir: string; reason: string }[];
}

/**
 * The newest checkpoint (by step) that verifies, or null when there is none. Newer ones that fail are listed in
 * `skipped` with the reason. The newest complete checkpoint wins over the `latest` pointer, which can lag by one
 * save when a process is killed between the directory rename and the pointer update.
 */
export function findLatestComplete(runDir: string): LatestCheckpoint | null {
  const skipped: LatestCheckpoint['skipped'] = [];
  for (const step of listCheckpointSteps(runDir).sort((a, b) => b - a)) {
    const dir = join(runDir, checkpointDirName(step));
    try {
      const state = verifyCheckpoint(dir);
      if (state.step !== step) throw new UserError(`${join(dir, STATE_FILE)}: step ${state.step} does not match the directory name`);
      return { dir, step, state, skipped };
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      skipped.push({ dir, reason: e.message });
    }
  }
  return null;
}

/** The checkpoint the `latest` file points at (for tools; resuming uses findLatestComplete). */
export function readLatestPointer(runDir: string): string | undefined {
  const p = join(runDir, LATEST_FILE);
  if (!existsSync(p)) return undefined;
  const name = readFileSync(p, 'utf8').trim();
  return parseCheckpointDirName(name) === undefined ? undefined : join(runDir, name);
}
