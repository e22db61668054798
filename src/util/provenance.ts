// provenance.json: what a run was made from and what it cost, written by `lmforge train` at the end of a run and
// read by the registry — the code version, the data files' SHA-256, the machine, and the infrastructure figures
// (MFU against a calibrated peak, energy, CO₂). One owner of the format; not the measuring (train/infra.ts).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic.js';
import { UserError, describeError } from './errors.js';
import type { CodeVersion } from './git.js';
import { sha256File } from './hash.js';

export const PROVENANCE_FILE = 'provenance.json';

export interface FileFingerprint {
  bytes: number;
  sha256: string;
}

/** Energy, CO₂ and utilisation of one run (or of the part of it this process trained, after a resume). */
export interface InfraFigures {
  /** Peak FLOP/s that MFU is measured against, and where it came from. */
  peak_flops: number | null;
  /** observed: a measured peak the run outran (it was measured on busy cores), raised to what the run achieved. */
  peak_source: 'config' | 'calibrated' | 'cache' | 'observed' | 'none';
  /** Training FLOPs per token (nanoGPT/PaLM estimate) and tokens trained by this process. */
  flops_per_token: number;
  tokens: number;
  /** Seconds spent in training steps (evaluation and checkpoints excluded) and MFU over them. */
  train_s: number;
  mfu: number | null;
  /** Joules used: RAPL package energy where readable, else CPU seconds × watts per core (see energy_detail). */
  energy_j: number;
  energy_source: 'rapl' | 'cpu-time-model';
  energy_detail: Record<string, number | string>;
  /** Grams of CO₂-equivalent: energy (kWh) × grid intensity (g/kWh). */
  co2_g: number;
  grid_g_per_kwh: number;
}

export interface RunProvenance {
  lmforge_provenance: 1;
  lmforge_version: string;
  code: CodeVersion | null;
  started: string;
  finished: string;
  wall_s: number;
  cpu: string;
  resumed: boolean;
  /** The data directory the run trained on and its files' fingerprints at the time. */
  data: { dir: string; files: Record<string, FileFingerprint> };
  infra: InfraFigures | null;
}

export function writeProvenance(runDir: string, p: RunProvenance): void {
  writeFileAtomic(join(runDir, PROVENANCE_FILE), JSON.stringify(p, null, 2) + '\n');
}

/** The run's provenance.json, or null when it has none (a run of an older lmforge, or one still training). */
export function readProvenance(runDir: string): RunProvenance | null {
  const path = join(runDir, PROVENANCE_FILE);
  if (!existsSync(path)) return null;
  let p: unknown;
  try {
    p = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${describeError(e)})`);
  }
  if (typeof p !== 'object' || p === null || (p as { lmforge_provenance?: unknown }).lmforge_provenance !== 1) {
    throw new UserError(`${path}: expected an lmforge provenance file (field lmforge_provenance: 1)`);
  }
  return p as RunProvenance;
}

/** Size and SHA-256 of the data files a data directory holds (token files, meta, tokenizer). */
export function fingerprintDataDir(dir: string): Record<string, FileFingerprint> {
  const out: Record<string, FileFingerprint> = {};
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return out;
  const names = ['train.bin', 'val.bin', 'meta.json'];
  const meta = join(dir, 'meta.json');
  if (existsSync(meta)) {
    let file: unknown;
    try {
      const m = JSON.parse(readFileSync(meta, 'utf8')) as { tokenizer?: { file?: unknown } } | null;
      file = m?.tokenizer?.file;
    } catch {
      // an unreadable meta.json is still fingerprinted as bytes below
    }
    if (typeof file === 'string' && !file.includes('/')) names.push(file);
  }
  for (const n of names) {
    const p = join(dir, n);
    if (existsSync(p) && statSync(p).isFile()) out[n] = { bytes: statSync(p).size, sha256: sha256File(p) };
  }
  return out;
}
