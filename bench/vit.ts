// ViT training throughput, lmforge beside PyTorch (Debian's python3-torch, the same architecture, the same threads)
// in one run: images/s of the Fashion-MNIST recipe's model (configs/vision/vit-fashion-mnist.yaml) on real,
// augmented batches. The sides alternate for --rounds rounds (default 7), each round running lmforge then PyTorch
// back to back, so the two figures of a round saw about the same load. Every round is printed; the ratio is the
// median of the per-round ratios (and the images/s the medians of each side), so one noisy round cannot decide it.
// Bar: lmforge ≥ 1.5× PyTorch, both in fp32.
// Beside wall-clock images/s each side reports its CPU time per iteration (all its threads), and the RESULT carries
// the CPU-time ratio and the 1-minute load average, so that a figure measured on a busy machine says so.
// --bf16 adds a third run per round, lmforge with bf16 mixed-precision matmuls (`precision: bf16`), reported on
// its own row and in its own RESULT fields beside PyTorch fp32; it never replaces the fp32 ratio.
// Usage: npm run bench -- vit [--iters=N] [--rounds=N] [--threads=N] [--data=DIR] [--shape=JSON] [--bf16]
// (--threads: both sides' threads, default all cores; one thread each is the comparison that load disturbs least)
import { spawnSync } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { intFlag, median, stringFlag } from './_args.js';
import { cpuName } from './_cpu.js';
import { runJSON, type SideFigures } from './_side_by_side.js';
import { PYTHON, torchBlasNote, torchEnv } from './_torch.js';

interface Figures extends SideFigures {
  ms: number;
  /** Median CPU ms per iteration, user + system over all threads. */
  cpuMs: number;
  loss: number;
}

/** One alternating round: each side's figures (or why it failed) and the load average after it. */
interface Round {
  ours: Figures | string;
  theirs: Figures | string;
  bf16: Figures | string | null;
  load: number;
}

/** The model and batch of the recipe config (kept in step with configs/vision/vit-fashion-mnist.yaml). */
const RECIPE = { image_size: 28, patch_size: 7, n_layer: 4, n_head: 4, n_embd: 96, stem: 'conv', stem_channels: 32, batch_size: 128 };

const ok = (f: Figures | string | null): f is Figures => f !== null && typeof f !== 'string';

/** The median of the defined values, or null when there are none. */
function medianOf(xs: (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null);
  return v.length > 0 ? median(v) : null;
}

export async function run(args: string[]): Promise<void> {
  const iters = intFlag('vit', args, 'iters', 20);
  const rounds = intFlag('vit', args, 'rounds', 7);
  const data = stringFlag(args, 'data') ?? '../shared/data/fashion-mnist';
  const shape = { ...RECIPE, ...(JSON.parse(stringFlag(args, 'shape') ?? '{}') as object) };
  const threads = intFlag('vit', args, 'threads', availableParallelism());
  const bf16 = args.includes('--bf16');
  const worker = fileURLToPath(new URL('./_vit_worker.js', import.meta.url));
  const torchScript = fileURLToPath(new URL('../../bench/vit_torch.py', import.meta.url));
  const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  console.log(`ViT training on Fashion-MNIST batches, ${threads} threads each; median ms/iter of ${iters} after 2 warm-up iterations per run, ${rounds} alternating rounds (ratio: median of the rounds' ratios); PyTorch on ${torchBlasNote()}`);
  console.log(`model: ${JSON.stringify(shape)}`);
  if (!hasTorch) console.log('PyTorch not importable by /usr/bin/python3: comparison skipped (apt-get install python3-torch)');
  console.log(`CPU: ${cpuName()}`);
  console.log(`round | lmforge fp32 ms/iter  img/s  CPU ms  RSS MiB | PyTorch fp32 ms/iter  img/s  CPU ms  RSS MiB | fp32 ratio  CPU ratio${bf16 ? ' | lmforge bf16 ms/iter  img/s | bf16/torch' : ''}  load`);
  const cells = (f: Figures | string | null): string => (ok(f)
    ? `${f.ms.toFixed(1).padStart(14)} ${f.tokensPerS.toFixed(0).padStart(6)} ${f.cpuMs.toFixed(0).padStart(7)} ${f.peakRssMiB.toFixed(0).padStart(8)}`
    : `(${String(f).slice(0, 36)})`.padEnd(38));
  const rows: Round[] = [];
  for (let r = 0; r < rounds; r++) {
    const ours = runJSON<Figures>(process.execPath, [worker, data, String(iters), JSON.stringify(shape), String(threads), 'fp32']);
    const theirs = hasTorch ? runJSON<Figures>(PYTHON, [torchScript, data, String(iters), String(threads), JSON.stringify(shape)], torchEnv(threads)) : 'skipped';
    const mixed = bf16 ? runJSON<Figures>(process.execPath, [worker, data, String(iters), JSON.stringify(shape), String(threads), 'bf16']) : null;
    const row: Round = { ours, theirs, bf16: mixed, load: loadavg()[0]! };
    rows.push(row);
    const ratio = ok(ours) && ok(theirs) ? `${(ours.tokensPerS / theirs.tokensPerS).toFixed(2)}×` : 'n/a';
    const cpuRatio = ok(ours) && ok(theirs) ? `${(theirs.cpuMs / ours.cpuMs).toFixed(2)}×` : 'n/a';
    const mixedCell = ok(mixed) ? `${mixed.ms.toFixed(1).padStart(20)} ${mixed.tokensPerS.toFixed(0).padStart(6)}` : `(${String(mixed).slice(0, 25)})`.padEnd(27);
    const mixedRatio = ok(mixed) && ok(theirs) ? `${(mixed.tokensPerS / theirs.tokensPerS).toFixed(2)}×` : 'n/a';
    const bf16Cells = bf16 ? ` | ${mixedCell} | ${mixedRatio.padStart(10)}` : '';
    console.log(`${String(r + 1).padEnd(5)} | ${cells(ours)} | ${cells(theirs)} | ${ratio.padStart(10)} ${cpuRatio.padStart(10)}${bf16Cells}  ${row.load.toFixed(2)}`);
    for (const [side, f] of [['lmforge fp32', ours], ['PyTorch', theirs], ['lmforge bf16', mixed]] as const) {
      if (typeof f === 'string' && f !== 'skipped') console.log(`  ${side} failed: ${f}`);
    }
  }
  const ratios = rows.map((r) => (ok(r.ours) && ok(r.theirs) ? r.ours.tokensPerS / r.theirs.tokensPerS : null));
  const ratio = medianOf(ratios);
  const oursIps = medianOf(rows.map((r) => (ok(r.ours) ? r.ours.tokensPerS : null)));
  const theirsIps = medianOf(rows.map((r) => (ok(r.theirs) ? r.theirs.tokensPerS : null)));
  const oursCpu = medianOf(rows.map((r) => (ok(r.ours) ? r.ours.cpuMs : null)));
  const theirsCpu = medianOf(rows.map((r) => (ok(r.theirs) ? r.theirs.cpuMs : null)));
  // PyTorch CPU time over ours: > 1 when lmforge needs less CPU per image.
  const cpuRatio = oursCpu !== null && theirsCpu !== null ? theirsCpu / oursCpu : null;
  const bf16Ratio = bf16 ? medianOf(rows.map((r) => (ok(r.bf16) && ok(r.theirs) ? r.bf16.tokensPerS / r.theirs.tokensPerS : null))) : null;
  const bf16Ips = bf16 ? medianOf(rows.map((r) => (ok(r.bf16) ? r.bf16.tokensPerS : null))) : null;
  const load = Math.max(...rows.map((r) => r.load));
  const fmt = (x: number | null, digits = 0): string => (x === null ? 'n/a' : x.toFixed(digits));
  console.log(`median of ${rounds} rounds: lmforge fp32 ${fmt(oursIps)} images/s, PyTorch fp32 ${fmt(theirsIps)} images/s, ratio ${fmt(ratio, 2)}× (bar ≥ 1.5×; rounds ${ratios.map((x) => fmt(x, 2)).join(', ')}); CPU ms/iter lmforge ${fmt(oursCpu)}, PyTorch ${fmt(theirsCpu)} (ratio ${fmt(cpuRatio, 2)}×); load average up to ${load.toFixed(2)}`);
  if (bf16) console.log(`bf16 row (lmforge precision: bf16 against PyTorch fp32; not the fp32 bar): ${fmt(bf16Ips)} images/s, ratio ${fmt(bf16Ratio, 2)}×`);
  const round = (r: Round): object => ({
    lmforge_images_per_s: ok(r.ours) ? r.ours.tokensPerS : null,
    torch_images_per_s: ok(r.theirs) ? r.theirs.tokensPerS : null,
    ratio: ok(r.ours) && ok(r.theirs) ? r.ours.tokensPerS / r.theirs.tokensPerS : null,
    ...(bf16 ? { lmforge_bf16_images_per_s: ok(r.bf16) ? r.bf16.tokensPerS : null } : {}),
    load_average: r.load,
  });
  console.log(`RESULT ${JSON.stringify({
    cpu: cpuName(), threads, shape, lmforge_images_per_s: oursIps, torch_images_per_s: theirsIps, ratio, ratio_of: 'median of per-round ratios',
    lmforge_cpu_ms_per_iter: oursCpu, torch_cpu_ms_per_iter: theirsCpu, cpu_time_ratio: cpuRatio,
    ...(bf16 ? { bf16: { lmforge_bf16_images_per_s: bf16Ips, bf16_vs_torch_fp32: bf16Ratio } } : {}),
    rounds: rows.map(round), bar: 1.5, bars: { vit_ge_1_5x: ratio !== null && ratio >= 1.5 }, load_average: load,
  })}`);
}
