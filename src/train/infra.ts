// Infrastructure figures of a training run: the peak FLOP/s that MFU is measured against — given in the config, or
// measured once on this machine with the native fp32 GEMM and cached — and the run's MFU, energy and CO₂ for
// provenance.json. The cache: $LMFORGE_CACHE_DIR, else $XDG_CACHE_HOME/lmforge, else ~/.cache/lmforge, file
// peak-flops.json, one entry per CPU model and thread count. Not the energy meter itself (util/energy.ts).
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
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
function peakKey(): string {
  const threads = tryLoadAddon()?.cpuInfo().threads ?? 1;
  return `${cpuName()} | ${lm.getBackend()} | threads ${threads}`;
}

interface PeakEntry {
  flops: number;
  measured_at: string;
  n: number;
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

/**
 * Measures the GEMM peak now and caches it. The cache keeps the highest measurement: other processes on the cores
 * only ever slow a measurement down, so each calibration can only bring the figure closer to the true peak.
 * Returns the cached (highest) figure.
 */
export function calibratePeak(seconds = 1): number {
  const key = peakKey();
  const measured = measureGemmPeak(1024, seconds);
  const old = readCache()[key];
  const flops = old && old.flops > measured ? old.flops : measured;
  try {
    const dir = cacheDir();
    ensureDir(dir, 'cache folder');
    writeFileAtomic(join(dir, PEAK_CACHE_FILE), JSON.stringify({ ...readCache(), [key]: { flops, measured_at: new Date().toISOString(), n: 1024 } }, null, 2) + '\n');
  } catch {
    // an unwritable cache: measured again next time, nothing else lost
  }
  return flops;
}

export interface PeakFlops {
  flops: number | null;
  source: InfraFigures['peak_source'];
}

/**
 * The peak for MFU: a positive config value as given; 0 for none (no MFU); null for this machine's — the cached
 * measurement, else measured now (about a second) and cached. $LMFORGE_PEAK_FLOPS overrides a null config.
 */
export function resolvePeakFlops(configured: number | null, log?: (line: string) => void): PeakFlops {
  if (configured !== null) return configured > 0 ? { flops: configured, source: 'config' } : { flops: null, source: 'none' };
  const env = Number(process.env.LMFORGE_PEAK_FLOPS);
  if (process.env.LMFORGE_PEAK_FLOPS && Number.isFinite(env) && env > 0) return { flops: env, source: 'config' };
  const cached = cachedPeak();
  if (cached !== null) return { flops: cached, source: 'cache' };
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
