// Infrastructure figures: RAPL energy deltas (with a counter wrap) from a fake powercap tree, the CPU-time model,
// CO₂, and the peak FLOP/s that MFU uses — given, none, from the environment, measured once and then cached.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useNativeBackendOrWarn } from '../../src/core/native/index.js';
import { prepareCharData } from '../../src/data/prepare.js';
import { co2Grams, EnergyMeter, POWERCAP_ENV } from '../../src/util/energy.js';
import { readProvenance } from '../../src/util/provenance.js';
import { ProgressTracker } from '../../src/train/metrics.js';
import { infraFigures, PEAK_CACHE_FILE, peakAfterRun, peakKey, reconcilePeak, resolvePeakFlops, type PeakEntry } from '../../src/train/infra.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

test('energy: RAPL package counters summed over packages, sub-domains ignored, a wrap past max_energy_range_uj counted once', () => {
  const root = mkdtempSync(join(tmpdir(), 'lmf-rapl-'));
  const dom = (name: string, uj: number, max: number): void => {
    mkdirSync(join(root, name), { recursive: true });
    writeFileSync(join(root, name, 'energy_uj'), `${uj}\n`);
    writeFileSync(join(root, name, 'max_energy_range_uj'), `${max}\n`);
  };
  dom('intel-rapl:0', 900_000, 1_000_000);
  dom('intel-rapl:1', 100, 1_000_000);
  dom('intel-rapl:0:0', 5, 1_000_000); // the core sub-domain is inside package 0: not added again
  const m = new EnergyMeter({ source: 'auto', wattsPerCore: 10, powercapRoot: root });
  writeFileSync(join(root, 'intel-rapl:0', 'energy_uj'), '50000\n'); // wrapped: 900,000 → 1,000,000 → 50,000 = 150,000 µJ
  m.sample();
  writeFileSync(join(root, 'intel-rapl:0', 'energy_uj'), '250000\n'); // +200,000 µJ
  writeFileSync(join(root, 'intel-rapl:1', 'energy_uj'), '1000100\n'); // +1,000,000 µJ
  const r = m.read();
  assert.equal(r.source, 'rapl');
  assert.ok(Math.abs(r.joules - 1.35) < 1e-9, `${r.joules}`);
  assert.equal(r.detail.domains, 'intel-rapl:0,intel-rapl:1');
  rmSync(root, { recursive: true });
});

test('energy: without readable RAPL, CPU seconds × watts per core; source rapl refuses; CO₂ from the grid intensity', () => {
  const none = join(tmpdir(), 'lmf-no-powercap');
  const m = new EnergyMeter({ source: 'auto', wattsPerCore: 12, powercapRoot: none });
  const c0 = process.cpuUsage();
  let x = 0;
  while (process.cpuUsage(c0).user < 30_000) x += Math.sqrt(x + 1); // burn 30 ms of CPU (however busy the machine is)
  const r = m.read();
  assert.equal(r.source, 'cpu-time-model');
  assert.ok((r.detail.cpu_s as number) > 0.02, JSON.stringify(r.detail));
  assert.ok(Math.abs(r.joules - 12 * (r.detail.cpu_s as number)) < 1e-9);
  assert.throws(() => new EnergyMeter({ source: 'rapl', wattsPerCore: 10, powercapRoot: none }), /no readable .*energy_uj/);
  assert.equal(co2Grams(3.6e6, 400), 400);
  const f = infraFigures({ flops: 1e11, source: 'config' }, 1e6, 1e5, 2, { joules: 7200, source: 'cpu-time-model', detail: {} }, 250);
  assert.equal(f.mfu, 0.5); // 1e6 FLOPs/token × 1e5 tokens / 2 s / 1e11
  assert.equal(f.co2_g, 0.5);
});

test('peak FLOP/s: given, none, from $LMFORGE_PEAK_FLOPS, else measured with the native GEMM and cached', () => {
  useNativeBackendOrWarn();
  const dir = mkdtempSync(join(tmpdir(), 'lmf-cache-'));
  const saved = { cache: process.env.LMFORGE_CACHE_DIR, peak: process.env.LMFORGE_PEAK_FLOPS };
  process.env.LMFORGE_CACHE_DIR = dir;
  delete process.env.LMFORGE_PEAK_FLOPS;
  try {
    assert.deepEqual(resolvePeakFlops(2e11), { flops: 2e11, source: 'config' });
    assert.deepEqual(resolvePeakFlops(0), { flops: null, source: 'none' });
    process.env.LMFORGE_PEAK_FLOPS = '3e11';
    assert.deepEqual(resolvePeakFlops(null), { flops: 3e11, source: 'config' });
    delete process.env.LMFORGE_PEAK_FLOPS;
    const lines: string[] = [];
    const measured = resolvePeakFlops(null, (l) => lines.push(l));
    assert.equal(measured.source, 'calibrated');
    assert.ok(measured.flops !== null && measured.flops > 1e9 && measured.flops < 1e14, `${measured.flops}`);
    assert.match(lines[0] ?? '', /GFLOP\/s fp32 GEMM measured on this machine/);
    assert.ok(existsSync(join(dir, PEAK_CACHE_FILE)));
    assert.deepEqual(resolvePeakFlops(null), { flops: measured.flops, source: 'cache' });
    const cache = JSON.parse(readFileSync(join(dir, PEAK_CACHE_FILE), 'utf8')) as Record<string, { flops: number }>;
    assert.match(Object.keys(cache)[0] ?? '', /cores \| native \| threads \d+$/);
  } finally {
    if (saved.cache === undefined) delete process.env.LMFORGE_CACHE_DIR;
    else process.env.LMFORGE_CACHE_DIR = saved.cache;
    if (saved.peak !== undefined) process.env.LMFORGE_PEAK_FLOPS = saved.peak;
    rmSync(dir, { recursive: true });
  }
});

/** Runs fn with $LMFORGE_CACHE_DIR at a fresh folder (and no $LMFORGE_PEAK_FLOPS), then puts both back. */
function withCache(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-cache-'));
  const saved = { cache: process.env.LMFORGE_CACHE_DIR, peak: process.env.LMFORGE_PEAK_FLOPS };
  process.env.LMFORGE_CACHE_DIR = dir;
  delete process.env.LMFORGE_PEAK_FLOPS;
  try {
    fn(dir);
  } finally {
    if (saved.cache === undefined) delete process.env.LMFORGE_CACHE_DIR;
    else process.env.LMFORGE_CACHE_DIR = saved.cache;
    if (saved.peak !== undefined) process.env.LMFORGE_PEAK_FLOPS = saved.peak;
    rmSync(dir, { recursive: true });
  }
}

test('peak after a run: a measured peak the run outran is remeasured, else raised to the observed rate; a given one is kept', () => {
  let calls = 0;
  const remeasure = (x: number) => (): number => {
    calls++;
    return x;
  };
  // Below the peak: nothing to do, nothing measured.
  assert.deepEqual(peakAfterRun({ flops: 1e10, source: 'cache' }, 5e9, remeasure(1)), { peak: { flops: 1e10, source: 'cache' }, raised: false });
  assert.equal(calls, 0);
  // Outran a cached peak measured on busy cores; the fresh GEMM reads higher than the run: the fresh figure.
  assert.deepEqual(peakAfterRun({ flops: 1e10, source: 'cache' }, 2e10, remeasure(3e10)), { peak: { flops: 3e10, source: 'calibrated' }, raised: true });
  // The fresh GEMM still reads below the run (still busy): the observed rate, so MFU = 1 rather than above it.
  assert.deepEqual(peakAfterRun({ flops: 1e10, source: 'calibrated' }, 2e10, remeasure(1.5e10)), { peak: { flops: 2e10, source: 'observed' }, raised: true });
  // The user's figure stays the user's, even when the run beats it.
  assert.deepEqual(peakAfterRun({ flops: 1e10, source: 'config' }, 2e10, remeasure(3e10)), { peak: { flops: 1e10, source: 'config' }, raised: false });
  assert.deepEqual(peakAfterRun({ flops: null, source: 'none' }, 2e10, remeasure(3e10)), { peak: { flops: null, source: 'none' }, raised: false });
  assert.equal(calls, 2);
  for (const [peak, achieved, fresh] of [[1e9, 5e9, 2e9], [1e9, 5e9, 9e9], [4e9, 5e9, 1e8]] as const) {
    const r = peakAfterRun({ flops: peak, source: 'cache' }, achieved, () => fresh);
    assert.ok(achieved / r.peak.flops! <= 1, `MFU ${achieved / r.peak.flops!} from peak ${peak}, fresh ${fresh}`);
  }
});

test('progress lines: a step faster than a measured peak raises it (MFU ≤ 100%); a given peak is kept', () => {
  const opts = { maxSteps: 10, tokensPerStep: 1000, flopsPerToken: 1e6, peakFlops: 1e8, skip: 0, smoothing: 1 };
  // 1000 tokens in 5 ms = 2e5 tokens/s × 1e6 FLOPs = 2e11 FLOP/s, far above the 1e8 peak.
  const measured = new ProgressTracker({ ...opts, peakMeasured: true });
  assert.equal(measured.update(0, 1, 1e-3, 5).mfu, 1);
  assert.ok(Math.abs(measured.observedPeak! - 2e11) < 1, `${measured.observedPeak}`);
  assert.equal(measured.update(1, 1, 1e-3, 10).mfu, 0.5, 'later steps are measured against the raised peak');
  const given = new ProgressTracker({ ...opts, peakMeasured: false });
  assert.ok(Math.abs(given.update(0, 1, 1e-3, 5).mfu! - 2000) < 1e-6);
  assert.equal(given.observedPeak, null);
});

test('peak cache: records the load average at calibration; reconcilePeak recalibrates and marks an observed peak', () => {
  useNativeBackendOrWarn();
  withCache((dir) => {
    const file = join(dir, PEAK_CACHE_FILE);
    const first = resolvePeakFlops(null);
    assert.equal(first.source, 'calibrated');
    const entry = (): PeakEntry => (JSON.parse(readFileSync(file, 'utf8')) as Record<string, PeakEntry>)[peakKey()]!;
    assert.equal(entry().kind, 'gemm');
    assert.ok(typeof entry().load_average === 'number' && entry().load_average! >= 0, JSON.stringify(entry()));
    // A peak measured absurdly low (as on cores busy with other work): a run at 1e7 FLOP/s outruns it; the fresh GEMM does not read that low.
    writeFileSync(file, JSON.stringify({ [peakKey()]: { flops: 1e6, measured_at: 'then', n: 1024, kind: 'gemm', load_average: 15 } }));
    const lines: string[] = [];
    const fresh = reconcilePeak({ flops: 1e6, source: 'cache' }, 1e7, (l) => lines.push(l));
    assert.equal(fresh.source, 'calibrated');
    assert.ok(fresh.flops! > 1e7 && entry().flops === fresh.flops, `${fresh.flops} ${JSON.stringify(entry())}`);
    assert.match(lines[0] ?? '', /above the measured peak 0\.0 GFLOP\/s \(measured at load average 15\.00\); recalibrated now/);
    // A run faster than any GEMM this machine does (so, here, above the fresh measurement too): the observed rate, marked.
    const observed = reconcilePeak({ flops: fresh.flops, source: 'cache' }, 1e15, (l) => lines.push(l));
    assert.deepEqual(observed, { flops: 1e15, source: 'observed' });
    assert.equal(entry().kind, 'observed');
    assert.equal(entry().flops, 1e15);
    assert.match(lines[1] ?? '', /the peak is the observed 1000000\.0 GFLOP\/s \(cached, marked observed\)/);
    assert.deepEqual(resolvePeakFlops(null), { flops: 1e15, source: 'observed' });
    // A configured peak is never rewritten: the run says it is exceeded.
    assert.deepEqual(reconcilePeak({ flops: 1e6, source: 'config' }, 1e7, (l) => lines.push(l)), { flops: 1e6, source: 'config' });
    assert.match(lines[2] ?? '', /above the configured peak_flops/);
    assert.equal(entry().flops, 1e15);
  });
});

test('lmforge train: a stale low cached peak gives MFU ≤ 100% (recalibrated); energy from a fake RAPL tree via $LMFORGE_POWERCAP_ROOT', () => {
  useNativeBackendOrWarn();
  withCache((cache) => {
    const dir = mkdtempSync(join(tmpdir(), 'lmf-infra-run-'));
    writeFileSync(join(dir, 'text.txt'), readFileSync(join(ROOT, '../shared/data/tinyshakespeare/input.txt'), 'utf8').slice(0, 20_000));
    prepareCharData({ input: join(dir, 'text.txt'), outDir: join(dir, 'data'), valFraction: 0.1, invalidUtf8: 'error', instructions: false, onNotice: () => undefined });
    writeFileSync(join(cache, PEAK_CACHE_FILE), JSON.stringify({ [peakKey()]: { flops: 1e6, measured_at: 'then', n: 1024, kind: 'gemm', load_average: 15 } }));
    const rapl = join(dir, 'powercap', 'intel-rapl:0');
    mkdirSync(rapl, { recursive: true });
    writeFileSync(join(rapl, 'energy_uj'), '1000\n');
    writeFileSync(join(rapl, 'max_energy_range_uj'), '262143328850\n');
    const r = spawnSync(process.execPath, [MAIN, 'train', '--config', join(ROOT, 'configs/shakespeare-char-cpu.yaml'), `--out_dir=${join(dir, 'run')}`, `--data.dir=${join(dir, 'data')}`,
      '--max_iters=6', '--eval_interval=6', '--eval_iters=1', '--log_interval=2', '--full_val=false', '--model.n_layer=1', '--model.n_embd=32', '--model.n_head=2', '--no-register'],
    { encoding: 'utf8', env: { ...process.env, LMFORGE_CACHE_DIR: cache, [POWERCAP_ENV]: join(dir, 'powercap') } });
    assert.equal(r.status, 0, r.stderr);
    const out = r.stdout + r.stderr;
    const mfus = [...out.matchAll(/MFU ([\d.]+)%/g)].map((m) => Number(m[1]));
    assert.ok(mfus.length >= 3 && mfus.every((m) => m <= 100), `MFU figures ${mfus.join(', ')}\n${out}`);
    assert.match(out, /above the measured peak 0\.0 GFLOP\/s \(measured at load average 15\.00\); recalibrated now/);
    const infra = readProvenance(join(dir, 'run'))!.infra!;
    assert.ok(infra.mfu! > 0 && infra.mfu! <= 1 && infra.peak_flops! > 1e6, JSON.stringify(infra));
    assert.ok(infra.peak_source === 'calibrated' || infra.peak_source === 'observed', infra.peak_source);
    // The fake package counter did not move: RAPL read, 0 J.
    assert.equal(infra.energy_source, 'rapl');
    assert.equal(infra.energy_j, 0);
    rmSync(dir, { recursive: true });
  });
});
