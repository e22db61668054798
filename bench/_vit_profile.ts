// Where a ViT training step's time goes, by native kernel (a development aid beside bench vit): wraps every kernel of the
// native table with a timer and runs the bench's ViT steps. Each kernel's CPU time (all threads, from getrusage) is
// printed beside its wall time: on a machine shared with other busy processes wall time also counts the slices the
// process waited for a core, CPU time does not.
// Usage: node dist/bench/_vit_profile.js [steps] [threads] [data dir (default ../shared/data/fashion-mnist)]
import { loadavg } from 'node:os';
import * as lm from '../src/core/index.js';
import { loadNativeBackend, nativeKernels } from '../src/core/native/index.js';
import { vitBench, vitStep } from './_vit_step.js';

const steps = Number(process.argv[2] ?? 10);
loadNativeBackend();
lm.setThreads(Number(process.argv[3] ?? 1));
const shape = { image_size: 28, patch_size: 7, n_layer: 4, n_head: 4, n_embd: 96, stem: 'conv' as const, stem_channels: 32 };
const B = 128;
const bench = vitBench(shape, B, process.argv[4] ?? '../shared/data/fashion-mnist');
const acc = new Map<string, { ms: number; cpuMs: number; n: number }>();
let timing = false;
const kernels = nativeKernels as unknown as Record<string, (...a: unknown[]) => unknown>;
for (const [name, fn] of Object.entries(kernels)) {
  kernels[name] = (...a: unknown[]): unknown => {
    const t0 = performance.now();
    const c0 = timing ? process.cpuUsage() : null;
    const r = fn(...a);
    if (c0) {
      const c = process.cpuUsage(c0);
      let key = name;
      if (name === 'matmul') {
        const m = a[0] as { batch: number; M: number; N: number; K: number; transA: boolean; transB: boolean; accumulate: boolean };
        key += ` b${m.batch} M${m.M} N${m.N} K${m.K} ${m.transA ? 'T' : 'N'}${m.transB ? 'T' : 'N'}${m.accumulate ? ' +=' : ''}`;
      } else if (name === 'binary') {
        key += ` ${String(a[0])} [${(a[4] as number[]).join(', ')}]`;
      } else if (name === 'unary' || name === 'unaryBackward') {
        key += ` ${String(a[0])} n=${String(name === 'unary' ? a[3] : a[5])}`;
      }
      const e = acc.get(key) ?? { ms: 0, cpuMs: 0, n: 0 };
      e.ms += performance.now() - t0;
      e.cpuMs += (c.user + c.system) / 1000;
      e.n++;
      acc.set(key, e);
    }
    return r;
  };
}
let total = 0, totalCpu = 0;
for (let it = 0; it < steps + 2; it++) {
  timing = it >= 2;
  const b = bench.batcher.next();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  vitStep(bench, b, it);
  if (timing) {
    total += performance.now() - t0;
    const c = process.cpuUsage(c0);
    totalCpu += (c.user + c.system) / 1000;
  }
}
const rows = [...acc].sort((a, b) => b[1].cpuMs - a[1].cpuMs);
const inK = rows.reduce((s, [, e]) => s + e.ms, 0);
const inKCpu = rows.reduce((s, [, e]) => s + e.cpuMs, 0);
const per = (x: number): string => (x / steps).toFixed(1);
console.log(`per step: wall ${per(total)} ms (kernels ${per(inK)}), CPU ${per(totalCpu)} ms (kernels ${per(inKCpu)}, outside ${per(totalCpu - inKCpu)}); load average ${loadavg()[0]!.toFixed(2)}`);
console.log('   CPU ms  wall ms calls  kernel');
for (const [k, e] of rows) {
  if (e.cpuMs / steps > 0.2) console.log(`${(e.cpuMs / steps).toFixed(2).padStart(8)} ${(e.ms / steps).toFixed(2).padStart(8)} ${(e.n / steps).toFixed(0).padStart(5)}  ${k}`);
}
