// Energy used by a piece of work: Intel RAPL package counters (/sys/class/powercap/intel-rapl:N/energy_uj, in µJ,
// wrapping at max_energy_range_uj) where readable, else a documented model — the process's CPU seconds (all its
// threads, user + system) × watts per busy core. And CO₂ from energy × grid intensity. Not a power profiler.
//
// RAPL counts the whole package (every process on the socket), so on a shared machine it over-states one job's
// energy; the model counts only this process but guesses the watts. Which one was used is recorded with the figure.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const POWERCAP_ROOT = '/sys/class/powercap';
/** Points the meter at another powercap tree (a copy, a container's bind mount, a test's fake one). */
export const POWERCAP_ENV = 'LMFORGE_POWERCAP_ROOT';

/** The powercap tree read: the option, else $LMFORGE_POWERCAP_ROOT, else /sys/class/powercap. */
export function powercapRoot(given?: string): string {
  return given ?? (process.env[POWERCAP_ENV] || POWERCAP_ROOT);
}
/** Default of the CPU-time model: a busy server core draws on the order of 10 W (a 250 W, 24-core package ≈ 10 W/core). */
export const DEFAULT_WATTS_PER_CORE = 10;
/** Default grid intensity, g CO₂e per kWh: a round figure near the world average; set your grid's. */
export const DEFAULT_GRID_G_PER_KWH = 400;

export interface EnergyOptions {
  /** 'auto': RAPL when readable, else the model. */
  source: 'auto' | 'rapl' | 'model';
  wattsPerCore: number;
  /** Where the powercap tree is (default: powercapRoot()). */
  powercapRoot?: string;
}

export interface EnergyReading {
  joules: number;
  source: 'rapl' | 'cpu-time-model';
  detail: Record<string, number | string>;
}

interface RaplDomain {
  name: string;
  path: string;
  maxRange: number;
  last: number;
  total: number;
}

/** The top-level RAPL package domains (intel-rapl:N, not their sub-domains intel-rapl:N:M, which they include). */
function raplDomains(root: string): RaplDomain[] {
  if (!existsSync(root)) return [];
  const out: RaplDomain[] = [];
  for (const name of readdirSync(root).sort()) {
    if (!/^intel-rapl:\d+$/.test(name)) continue;
    const path = join(root, name, 'energy_uj');
    try {
      const last = Number(readFileSync(path, 'utf8').trim());
      const maxRange = Number(readFileSync(join(root, name, 'max_energy_range_uj'), 'utf8').trim());
      if (!Number.isFinite(last) || !Number.isFinite(maxRange) || maxRange <= 0) continue;
      out.push({ name, path, maxRange, last, total: 0 });
    } catch {
      // energy_uj is root-only on recent kernels: unreadable, so not this domain
    }
  }
  return out;
}

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/**
 * Measures energy from start() to read(). Call sample() now and then during long work: a RAPL counter wraps at
 * max_energy_range_uj (about 262 kJ, an hour or so at 70 W), and a delta is exact only across at most one wrap.
 */
export class EnergyMeter {
  private readonly domains: RaplDomain[];
  private readonly cpu0: number;
  private readonly t0 = performance.now();

  constructor(private readonly opts: EnergyOptions) {
    const root = powercapRoot(opts.powercapRoot);
    this.domains = opts.source === 'model' ? [] : raplDomains(root);
    if (opts.source === 'rapl' && this.domains.length === 0) {
      throw new Error(`energy source rapl: no readable ${root}/intel-rapl:N/energy_uj (use source auto or model)`);
    }
    this.cpu0 = cpuSeconds();
  }

  /** Folds the counters' progress since the last sample into the totals (handles one wrap per domain). */
  sample(): void {
    for (const d of this.domains) {
      let now: number;
      try {
        now = Number(readFileSync(d.path, 'utf8').trim());
      } catch {
        continue;
      }
      if (!Number.isFinite(now)) continue;
      d.total += now >= d.last ? now - d.last : now + d.maxRange - d.last; // wrapped once past max_energy_range_uj
      d.last = now;
    }
  }

  read(): EnergyReading {
    const cpu = cpuSeconds() - this.cpu0;
    const wall = (performance.now() - this.t0) / 1000;
    if (this.domains.length > 0) {
      this.sample();
      const joules = this.domains.reduce((s, d) => s + d.total, 0) / 1e6;
      return { joules, source: 'rapl', detail: { domains: this.domains.map((d) => d.name).join(','), scope: 'whole package (every process on it)', cpu_s: cpu, wall_s: wall } };
    }
    return { joules: cpu * this.opts.wattsPerCore, source: 'cpu-time-model', detail: { cpu_s: cpu, wall_s: wall, watts_per_core: this.opts.wattsPerCore } };
  }
}

/** Grams of CO₂e for joules at a grid intensity in g/kWh (1 kWh = 3.6e6 J). */
export function co2Grams(joules: number, gridGPerKWh: number): number {
  return (joules / 3.6e6) * gridGPerKWh;
}
