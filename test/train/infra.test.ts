// Infrastructure figures: RAPL energy deltas (with a counter wrap) from a fake powercap tree, the CPU-time model,
// CO₂, and the peak FLOP/s that MFU uses — given, none, from the environment, measured once and then cached.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useNativeBackendOrWarn } from '../../src/core/native/index.js';
import { co2Grams, EnergyMeter } from '../../src/util/energy.js';
import { infraFigures, PEAK_CACHE_FILE, resolvePeakFlops } from '../../src/train/infra.js';

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
