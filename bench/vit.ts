// ViT training throughput, lmforge beside PyTorch (Debian's python3-torch, the same architecture, the same threads)
// in one run: images/s of the Fashion-MNIST recipe's model (configs/vision/vit-fashion-mnist.yaml) on real,
// augmented batches. The sides alternate for --rounds rounds (default 3) and each side's best round counts, so a
// burst of load from other processes on a shared machine does not decide the ratio. Bar: lmforge ≥ 1.5× PyTorch.
// Beside wall-clock images/s each side reports its CPU time per iteration (all its threads), and the RESULT carries
// the CPU-time ratio and the 1-minute load average, so that a figure measured on a busy machine says so.
// Usage: npm run bench -- vit [--iters=N] [--rounds=N] [--threads=N] [--data=DIR] [--shape=JSON]
// (--threads: both sides' threads, default all cores; one thread each is the comparison that load disturbs least)
import { spawnSync } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { intFlag, stringFlag } from './_args.js';
import { cpuName } from './_cpu.js';
import { printRow, runJSON, type SideFigures } from './_side_by_side.js';
import { PYTHON, torchBlasNote, torchEnv } from './_torch.js';

interface Figures extends SideFigures {
  ms: number;
  /** Median CPU ms per iteration, user + system over all threads. */
  cpuMs: number;
  loss: number;
}

/** The model and batch of the recipe config (kept in step with configs/vision/vit-fashion-mnist.yaml). */
const RECIPE = { image_size: 28, patch_size: 7, n_layer: 4, n_head: 4, n_embd: 96, stem: 'conv', stem_channels: 32, batch_size: 128 };

export async function run(args: string[]): Promise<void> {
  const iters = intFlag('vit', args, 'iters', 20);
  const rounds = intFlag('vit', args, 'rounds', 3);
  const data = stringFlag(args, 'data') ?? '../shared/data/fashion-mnist';
  const shape = { ...RECIPE, ...(JSON.parse(stringFlag(args, 'shape') ?? '{}') as object) };
  const threads = intFlag('vit', args, 'threads', availableParallelism());
  const worker = fileURLToPath(new URL('./_vit_worker.js', import.meta.url));
  const torchScript = fileURLToPath(new URL('../../bench/vit_torch.py', import.meta.url));
  const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  console.log(`ViT training on Fashion-MNIST batches, ${threads} threads each; median ms/iter of ${iters} after 2 warm-up iterations, best of ${rounds} alternating rounds; PyTorch on ${torchBlasNote()}`);
  console.log(`model: ${JSON.stringify(shape)}`);
  if (!hasTorch) console.log('PyTorch not importable by /usr/bin/python3: comparison skipped (apt-get install python3-torch)');
  console.log(`CPU: ${cpuName()}`);
  console.log('round | lmforge ms/iter  img/s  CPU ms  RSS MiB | PyTorch ms/iter  img/s  CPU ms  RSS MiB | speed ratio  memory ratio  load');
  const cells = (f: Figures): string => `${f.ms.toFixed(1).padStart(9)} ${f.tokensPerS.toFixed(0).padStart(8)} ${f.cpuMs.toFixed(0).padStart(7)} ${f.peakRssMiB.toFixed(0).padStart(8)}`;
  let bestOurs: Figures | null = null, bestTheirs: Figures | null = null;
  let leastCpuOurs = Infinity, leastCpuTheirs = Infinity;
  const loads: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const ours = runJSON<Figures>(process.execPath, [worker, data, String(iters), JSON.stringify(shape), String(threads)]);
    const theirs = hasTorch ? runJSON<Figures>(PYTHON, [torchScript, data, String(iters), String(threads), JSON.stringify(shape)], torchEnv(threads)) : 'skipped';
    loads.push(loadavg()[0]!);
    printRow(String(r + 1), ours, theirs, cells, 39);
    console.log(`      load average ${loads[r]!.toFixed(2)}`);
    if (typeof ours !== 'string') leastCpuOurs = Math.min(leastCpuOurs, ours.cpuMs);
    if (typeof theirs !== 'string') leastCpuTheirs = Math.min(leastCpuTheirs, theirs.cpuMs);
    if (typeof ours !== 'string' && (!bestOurs || ours.tokensPerS > bestOurs.tokensPerS)) bestOurs = ours;
    if (typeof theirs !== 'string' && (!bestTheirs || theirs.tokensPerS > bestTheirs.tokensPerS)) bestTheirs = theirs;
  }
  const ratio = bestOurs && bestTheirs ? bestOurs.tokensPerS / bestTheirs.tokensPerS : null;
  // PyTorch CPU time over ours: > 1 when lmforge needs less CPU per image.
  const cpuRatio = Number.isFinite(leastCpuOurs) && Number.isFinite(leastCpuTheirs) ? leastCpuTheirs / leastCpuOurs : null;
  const load = Math.max(...loads);
  console.log(`best: lmforge ${bestOurs?.tokensPerS.toFixed(0) ?? 'n/a'} images/s, PyTorch ${bestTheirs?.tokensPerS.toFixed(0) ?? 'n/a'} images/s, ratio ${ratio?.toFixed(2) ?? 'n/a'}× (bar ≥ 1.5×); CPU ms/iter lmforge ${leastCpuOurs.toFixed(0)}, PyTorch ${leastCpuTheirs.toFixed(0)} (ratio ${cpuRatio?.toFixed(2) ?? 'n/a'}×); load average up to ${load.toFixed(2)}`);
  console.log(`RESULT ${JSON.stringify({ cpu: cpuName(), threads, shape, lmforge_images_per_s: bestOurs?.tokensPerS ?? null, torch_images_per_s: bestTheirs?.tokensPerS ?? null, ratio, lmforge_cpu_ms_per_iter: Number.isFinite(leastCpuOurs) ? leastCpuOurs : null, torch_cpu_ms_per_iter: Number.isFinite(leastCpuTheirs) ? leastCpuTheirs : null, cpu_time_ratio: cpuRatio, bar: 1.5, pass: ratio !== null && ratio >= 1.5, load_average: load })}`);
}
