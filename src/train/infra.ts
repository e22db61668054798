// Infrastructure figures of a training run: the peak FLOP/s that MFU is measured against — given in the config, or
// measured once on this machine with the native fp32 GEMM and cached — and the run's MFU, energy and CO₂ for
// provenance.json. The cache: $LMFORGE_CACHE_DIR, else $XDG_CACHE_HOME/lmforge, else ~/.cache/lmforge, file
// peak-flops.json, one entry per CPU model and thread count. Not the energy meter itself (util/energy.ts).
//
// A measured peak is a lower bound: other processes on the cores only slow the GEMM down, so a calibration under
// load reads low, and a run on quieter cores can then go faster than "the peak" (MFU above 100%). A run whose
// achieved FLOP/s exceed a measured peak therefore recalibrates, and if the GEMM still reads lower, the peak becomes
// the rate the run achieved, marked `observed` in the cache and the run's record: MFU never exceeds 1 against a
// measured peak. A peak given in the config is the user's figure and is kept (the run says when it is exceeded).
import { existsSync, readFileSync } from 'node:fs';
import { homedir, loadavg } from 'node:os';
import { join } from 'node:path';
import * as lm from '../core/index.js';
import { tryLoadAddon } from '../core/native/addon.js';
import { writeFileAtomic } from '../util/atomic.js';
import { cpuName } from '../util/cpu.js';
import { co2Grams, type EnergyReading } from '../util/energy.js';
import { ensureDir } from '../util/fs.js';
import type { InfraFigures } from '../util/provenance.js';

export const PEAK_CACHE_FILE = 'peak-flops.json';

export function cacheDir(): string {
  return process.env.LMFORGE_CACHE_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'lmforge');
}

/** The cache entry's key: the CPU (model, family, cores) and the native thread count the GEMM ran with. */
export function peakKey(): string {
  const threads = tryLoadAddon()?.cpuInfo().threads ?? 1;
  return `${cpuName()} | ${lm.getBackend()} | threads ${threads}`;
}

export interface PeakEntry {
  flops: number;
  measured_at: string;
  /** GEMM size of the measurement (absent for an observed peak). */
  n?: number;
  /** gemm: the native GEMM's best rate; observed: a training run went this fast, above the GEMM's reading. */
  kind?: 'gemm' | 'observed';
  /** The 1-minute load average when it was measured: a busy machine reads low (older entries lack it). */
  load_average?: number;
}

function readCache(): Record<string, PeakEntry> {
  const path = join(cacheDir(), PEAK_CACHE_FILE);
  if (!existsSync(path)) return {};
  try {
    const c: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return typeof c === 'object' && c !== null ? (c as Record<string, PeakEntry>) : {};
  } catch {
    return {}; // a damaged cache is measured again
  }
}

/**
 * The best fp32 GEMM rate of the native backend on n×n×n products over about `seconds` (2n³ FLOPs each): the
 * machine's practical peak, which is what MFU should be a fraction of. The best of several calls, since a
 * contended core only ever makes a call slower.
 */
export function measureGemmPeak(n = 1024, seconds = 1): number {
  const rng = new lm.Rng(1);
  return lm.noGrad(() => lm.tidy(() => {
    const a = lm.randn([n, n], rng);
    const b = lm.randn([n, n], rng);
    lm.tidy(() => lm.matmul(a, b).dispose()); // warm-up: packing buffers, threads
    let best = 0;
    const t0 = performance.now();
    for (let i = 0; i < 3 || performance.now() - t0 < seconds * 1000; i++) {
      const s = performance.now();
      lm.tidy(() => lm.matmul(a, b).dispose());
      const dt = (performance.now() - s) / 1000;
      best = Math.max(best, (2 * n * n * n) / dt);
      if (i > 200) break;
    }
    return best;
  }));
}

/** This machine's cached peak, or null when it was never measured. */
export function cachedPeak(): number | null {
  const e = readCache()[peakKey()];
  return e && Number.isFinite(e.flops) && e.flops > 0 ? e.flops : null;
}

/** Writes one entry of the cache (an unwritable cache costs only a measurement next time). */
function writeEntry(key: string, entry: PeakEntry): void {
  try {
    const dir = cacheDir();
    ensureDir(dir, 'cache folder');
    writeFileAtomic(join(dir, PEAK_CACHE_FILE), JSON.stringify({ ...readCache(), [key]: entry }, null, 2) + '\n');
  } catch {
    // an unwritable cache: measured again next time, nothing else lost
  }
}

/**
 * Measures the GEMM peak now and caches it with the load average it was measured at. The cache keeps the highest
 * figure: other processes on the cores only ever slow a measurement down, so each calibration can only bring the
 * figure closer to the true peak. Returns the cached (highest) figure.
 */
export function calibratePeak(seconds = 1): number {
  const key = peakKey();
  const load = loadavg()[0] ?? 0;
  const measured = measureGemmPeak(1024, seconds);
  const old = readCache()[key];
  if (old && old.flops > measured) return old.flops;
  writeEntry(key, { flops: measured, measured_at: new Date().toISOString(), n: 1024, kind: 'gemm', load_average: load });
  return measured;
}

/** This machine's cache entry (for its CPU, backend and threads), or null. */
export function cachedPeakEntry(): PeakEntry | null {
  return readCache()[peakKey()] ?? null;
}

export interface PeakFlops {
  flops: number | null;
  source: InfraFigures['peak_source'];
}

/**
 * The rule that keeps MFU at or below 1 against a measured peak: when a run achieved more FLOP/s than a measured
 * peak (cache or calibrated), the peak was measured low, and the best that is known is the higher of a fresh
 * measurement and what the run achieved. `remeasure` gives the fresh figure (the GEMM, about a second); a peak given
 * in the config, or one the run stayed below, comes back unchanged.
 */
export function peakAfterRun(peak: PeakFlops, achievedFlops: number, remeasure: () => number): { peak: PeakFlops; raised: boolean } {
  const measuredPeak = peak.source === 'cache' || peak.source === 'calibrated' || peak.source === 'observed';
  if (!measuredPeak || peak.flops === null || !(achievedFlops > peak.flops)) return { peak, raised: false };
  const fresh = remeasure();
  return fresh >= achievedFlops ? { peak: { flops: fresh, source: 'calibrated' }, raised: true } : { peak: { flops: achievedFlops, source: 'observed' }, raised: true };
}

/**
 * After a run: applies peakAfterRun with the native GEMM as the fresh measurement and keeps the result in the cache
 * (a raised peak only ever goes up), saying so in one line. Returns the peak the run's MFU is measured against.
 */
export function reconcilePeak(peak: PeakFlops, achievedFlops: number, log?: (line: string) => void): PeakFlops {
  const before = cachedPeakEntry();
  const r = peakAfterRun(peak, achievedFlops, () => calibratePeak());
  const gf = (x: number): string => `${(x / 1e9).toFixed(1)} GFLOP/s`;
  if (!r.raised) {
    if (peak.source === 'config' && peak.flops !== null && achievedFlops > peak.flops) {
      log?.(`peak: the run achieved ${gf(achievedFlops)}, above the configured peak_flops ${gf(peak.flops)} (MFU above 100%: the given peak is low)`);
    }
    return peak;
  }
  if (r.peak.source === 'observed') {
    writeEntry(peakKey(), { flops: achievedFlops, measured_at: new Date().toISOString(), kind: 'observed', load_average: loadavg()[0] ?? 0 });
  }
  const was = before?.load_average === undefined ? '' : ` (measured at load average ${before.load_average.toFixed(2)})`;
  log?.(`peak: the run achieved ${gf(achievedFlops)}, above the measured peak ${gf(peak.flops!)}${was}; recalibrated now (load average ${(loadavg()[0] ?? 0).toFixed(2)}): ` +
    (r.peak.source === 'observed' ? `the GEMM read lower, so the peak is the observed ${gf(achievedFlops)} (cached, marked observed)` : `${gf(r.peak.flops!)}`));
  return r.peak;
}

/**
 * The peak for MFU: a positive config value as given; 0 for none (no MFU); null for this machine's — the cached
 * measurement, else measured now (about a second) and cached. $LMFORGE_PEAK_FLOPS overrides a null config.
 */
export function resolvePeakFlops(configured: number | null, log?: (line: string) => void): PeakFlops {
  if (configured !== null) return configured > 0 ? { flops: configured, source: 'config' } : { flops: null, source: 'none' };
  const env = Number(process.env.LMFORGE_PEAK_FLOPS);
  if (process.env.LMFORGE_PEAK_FLOPS && Number.isFinite(env) && env > 0) return { flops: env, source: 'config' };
  const entry = cachedPeakEntry();
  if (entry && Number.isFinite(entry.flops) && entry.flops > 0) return { flops: entry.flops, source: entry.kind === 'observed' ? 'observed' : 'cache' };
  const flops = calibratePeak();
  log?.(`peak: ${(flops / 1e9).toFixed(1)} GFLOP/s fp32 GEMM measured on this machine (cached in ${join(cacheDir(), PEAK_CACHE_FILE)}; set peak_flops to give it)`);
  return { flops, source: 'calibrated' };
}

/** The run's infrastructure record: MFU over the training steps' time, energy, CO₂. */
export function infraFigures(peak: PeakFlops, flopsPerToken: number, tokens: number, trainSeconds: number, energy: EnergyReading, gridGPerKWh: number): InfraFigures {
  return {
    peak_flops: peak.flops, peak_source: peak.source, flops_per_token: flopsPerToken, tokens, train_s: trainSeconds,
    mfu: peak.flops && trainSeconds > 0 ? (flopsPerToken * tokens) / trainSeconds / peak.flops : null,
    energy_j: energy.joules, energy_source: energy.source, energy_detail: energy.detail, co2_g: co2Grams(energy.joules, gridGPerKWh), grid_g_per_kwh: gridGPerKWh,
  };
}
