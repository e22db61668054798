// Benchmark: reversible blocks (model.reversible) beside the standard stack at depths 2 … 16, same width, batch and
// weights shape: the activation memory a training forward keeps for backward (live bytes after the forward), and
// the median step time (forward + backward). Reversible memory should stay flat in depth and cost about one extra
// forward per block in time. Not a test: it prints figures and a last line `RESULT {json}`.
// Usage: npm run bench -- reversible [--width=N (default 128)] [--block=N (default 128)] [--batch=N (default 8)] [--max-layers=N (default 16)] [--threads=N (default 2)]
import * as lm from '../src/core/index.js';
import { loadNativeBackend } from '../src/core/native/index.js';
import { GPT } from '../src/models/gpt.js';
import { cpuName } from './_cpu.js';
import { intFlag, median } from './_args.js';

interface Side {
  /** MiB held after the forward pass (what backward needs), beyond the weights. */
  activationMiB: number;
  /** Median milliseconds of forward + backward. */
  ms: number;
}

function measure(nLayer: number, reversible: boolean, C: number, T: number, B: number): Side {
  const m = new GPT({ vocab_size: 65, block_size: T, n_layer: nLayer, n_head: 4, n_embd: C, reversible }, 1);
  const rng = new lm.Rng(3);
  const ids = Array.from({ length: B * T }, () => Math.floor(rng.uniform() * 65));
  let kept = 0;
  const times: number[] = [];
  for (let rep = 0; rep < 4; rep++) {
    lm.tidy(() => {
      const idx = lm.tensor(ids, [B, T], 'int32');
      const t0 = performance.now();
      const before = lm.memory.liveBytes;
      const out = m.forward(idx, idx);
      kept = lm.memory.liveBytes - before;
      lm.backward(out.loss!);
      if (rep > 0) times.push(performance.now() - t0);
    });
    for (const p of m.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }
  m.dispose();
  return { activationMiB: kept / 2 ** 20, ms: median(times) };
}

export async function run(args: string[]): Promise<void> {
  const C = intFlag('reversible', args, 'width', 128);
  const T = intFlag('reversible', args, 'block', 128);
  const B = intFlag('reversible', args, 'batch', 8);
  const maxLayers = intFlag('reversible', args, 'max-layers', 16);
  const threads = intFlag('reversible', args, 'threads', 2);
  if (!loadNativeBackend().loaded) throw new Error('bench/reversible: the native addon is not built (npm install)');
  lm.setBackend('native');
  lm.setThreads(threads);
  console.log(`reversible vs standard blocks: width ${C}, block ${T}, batch ${B}, ${threads} threads, ${cpuName()}`);
  console.log('layers | standard MiB | reversible MiB | standard ms | reversible ms');
  const rows: { layers: number; standard: Side; reversible: Side }[] = [];
  for (let L = 2; L <= maxLayers; L *= 2) {
    const standard = measure(L, false, C, T, B);
    const reversible = measure(L, true, C, T, B);
    rows.push({ layers: L, standard, reversible });
    console.log(`${String(L).padStart(6)} | ${standard.activationMiB.toFixed(2).padStart(12)} | ${reversible.activationMiB.toFixed(2).padStart(14)} | ${standard.ms.toFixed(1).padStart(11)} | ${reversible.ms.toFixed(1).padStart(13)}`);
  }
  const first = rows[0]!;
  const last = rows[rows.length - 1]!;
  const growth = (s: (r: (typeof rows)[number]) => number): number => +(s(last) / s(first)).toFixed(3);
  console.log(`RESULT ${JSON.stringify({
    bench: 'reversible', cpu: cpuName(), threads, width: C, block: T, batch: B,
    rows: rows.map((r) => ({ layers: r.layers, standard_mib: +r.standard.activationMiB.toFixed(3), reversible_mib: +r.reversible.activationMiB.toFixed(3), standard_ms: +r.standard.ms.toFixed(2), reversible_ms: +r.reversible.ms.toFixed(2) })),
    memory_growth: { standard: growth((r) => r.standard.activationMiB), reversible: growth((r) => r.reversible.activationMiB) },
    time_ratio_at_max_layers: +(last.reversible.ms / last.standard.ms).toFixed(3),
  })}`);
}
