// Distributed training on this machine, against one process: `lmforge train --config configs/shakespeare-char-cpu.yaml`
// for N steps in one process and under `mpirun -np N` with --dp=2 and 4 (replicated and ZeRO-1), comparing their
// loss curves step by step; the model-parallel layouts (tp, pp with both schedules, ep) through their parity child
// (test/train/distributed/mp-child.js, which compares logits, loss, gradients and a training run's losses); the bytes
// each rank sent per step beside each layout's formula; and the scaling model (docs/scaling-model.md) fed with this
// machine's all-reduce latency/bandwidth and the compute of n concurrent one-process runs (the contention the dp
// ranks meet), its predicted tokens/s beside the measured, with the error.
// Usage: npm run bench -- distributed [--steps=50] [--mp-steps=STEPS] [--text=FILE] (--mp-steps: the model-parallel
// parity child's training run, which trains both sides of four layouts). Every rank uses one thread; ranks are
// oversubscribed on small machines (4 ranks on 2 cores), so tokens/s here measure contention, not scaling.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareCharData } from '../src/data/prepare.js';
import { gptCost } from '../src/models/gpt-cost.js';
import { GPT } from '../src/models/gpt.js';
import { mpiAddonStatus } from '../src/train/distributed/comm.js';
import { allReduceBytes, fitLatencyBandwidth, predictStep } from '../src/train/distributed/scaling.js';
import { readMetrics } from '../src/train/metrics.js';
import { TRAIN_ALIASES, trainSpec } from '../src/train/train-config.js';
import { loadConfig } from '../src/util/config.js';
import { cpuName } from '../src/util/cpu.js';
import { intFlag, median, stringFlag } from './_args.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(root, 'dist/src/cli/main.js');
const CONFIG = join(root, 'configs/shakespeare-char-cpu.yaml');
const MP_CHILD = join(root, 'dist/test/train/distributed/mp-child.js');
const MPIRUN = ['--allow-run-as-root', '--oversubscribe', '--mca', 'mpi_yield_when_idle', '1', '--bind-to', 'none', '-x', 'OMP_NUM_THREADS=1'];

interface Run {
  losses: Map<number, number>;
  bytesPerStep: number | null;
  tokensPerS: number;
  stdout: string;
}

function launch(n: number, args: string[]): { ok: boolean; stdout: string; stderr: string } {
  const r = n === 1
    ? spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' }, maxBuffer: 1 << 26 })
    : spawnSync('mpirun', [...MPIRUN, '-np', String(n), process.execPath, ...args], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' }, maxBuffer: 1 << 26 });
  return { ok: r.status === 0, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function train(n: number, out: string, common: string[], extra: string[]): Run {
  const r = launch(n, [CLI, 'train', ...common, `--out_dir=${out}`, ...extra]);
  if (!r.ok) throw new Error(`train ${extra.join(' ')} on ${n} ranks failed:\n${(r.stderr || r.stdout).trim().split('\n').slice(-6).join('\n')}`);
  const recs = readMetrics(join(out, 'metrics.jsonl')).filter((m) => typeof m.loss === 'number');
  const bytes = recs.map((m) => m.comm_bytes).filter((b): b is number => typeof b === 'number');
  const tps = recs.filter((m) => m.step >= 5).map((m) => m.tokens_per_s as number);
  return { losses: new Map(recs.map((m) => [m.step, m.loss as number])), bytesPerStep: bytes.length ? median(bytes) : null, tokensPerS: median(tps), stdout: r.stdout };
}

/**
 * n one-process runs at once with batch_size `rows` (what each rank of dp = n computes), no MPI; returns the median
 * over steps ≥ 5 of the slowest run's ms for that step.
 */
async function concurrentSingles(n: number, common: string[], out: string, rows: number): Promise<number> {
  const one = (i: number): Promise<string> => new Promise((done, fail) => {
    const dir = `${out}-${i}`;
    const child = spawn(process.execPath, [CLI, 'train', ...common, `--out_dir=${dir}`, `--batch_size=${rows}`], { env: { ...process.env, OMP_NUM_THREADS: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? done(dir) : fail(new Error(`concurrent one-process run ${i} of ${n} failed:\n${err.trim().split('\n').slice(-6).join('\n')}`))));
  });
  const dirs = await Promise.all(Array.from({ length: n }, (_, i) => one(i)));
  const ms = dirs.map((d) => new Map(readMetrics(join(d, 'metrics.jsonl')).filter((m) => typeof m.ms_per_iter === 'number').map((m) => [m.step, m.ms_per_iter as number])));
  const steps = [...ms[0]!.keys()].filter((k) => k >= 5 && ms.every((m) => m.has(k)));
  return median(steps.map((k) => Math.max(...ms.map((m) => m.get(k)!))));
}

function maxDiff(a: Map<number, number>, b: Map<number, number>): number {
  if (a.size !== b.size) throw new Error(`loss curves of different lengths: ${a.size} vs ${b.size}`);
  let d = 0;
  for (const [k, v] of a) d = Math.max(d, Math.abs(v - b.get(k)!));
  return d;
}

interface MpLine { rank: number; mode: string; logits: number; loss: number; grad: number; curve: number; bytes_per_step: number; bytes_theory: number }

export async function run(args: string[]): Promise<void> {
  const steps = intFlag('distributed', args, 'steps', 50);
  const mpSteps = intFlag('distributed', args, 'mp-steps', steps);
  const skip = mpiAddonStatus();
  if (!skip.available) throw new Error(`bench/distributed: the MPI addon is not available (${skip.error}); install openmpi-bin libopenmpi-dev and rebuild`);
  console.log(`CPU: ${cpuName()}; every rank runs one thread; load average ${loadavg()[0]!.toFixed(1)} at the start`);
  const work = mkdtempSync(join(tmpdir(), 'lmforge-bench-dist-'));
  process.once('exit', () => rmSync(work, { recursive: true, force: true })); // ~140 MB of runs and checkpoints
  const text = stringFlag(args, 'text') ?? join(root, '../shared/data/tinyshakespeare/input.txt');
  const data = join(work, 'data');
  prepareCharData({ input: text, outDir: data, valFraction: 0.1 });
  const common = ['--config', CONFIG, `--data_dir=${data}`, `--max_iters=${steps}`, '--eval_interval=100000', '--eval_iters=1', '--full_val=false',
    '--checkpoint_interval=0', '--log_interval=1', '--threads=1', '--overwrite'];

  // --- data parallel against one process ---
  const single = train(1, join(work, 'single'), common, []);
  console.log(`one process: ${steps} steps, loss ${single.losses.get(0)!.toFixed(4)} → ${single.losses.get(steps - 1)!.toFixed(4)}, ${single.tokensPerS.toFixed(0)} tok/s`);
  const cfg = loadConfig(trainSpec, CONFIG, [], TRAIN_ALIASES);
  const model = new GPT({ ...cfg.model, vocab_size: 65 }, cfg.seed);
  const P = model.numParameters();
  const flopsPerToken = gptCost(model.config).flopsPerToken;
  model.dispose();
  const dpDiff: Record<string, number> = {};
  const zeroDiff: Record<string, number> = {};
  const bytesPerStep: Record<string, number | null> = {};
  const bytesTheory: Record<string, number | null> = {};
  const measuredTps: Record<string, number> = { '1': single.tokensPerS };
  const zeroState: Record<string, string> = {};
  for (const n of [2, 4]) {
    for (const zero of [0, 1]) {
      const layout = `dp${n}${zero ? '_zero1' : ''}`;
      const r = train(n, join(work, layout), common, [`--dp=${n}`, `--zero=${zero}`]);
      const d = maxDiff(single.losses, r.losses);
      (zero ? zeroDiff : dpDiff)[String(n)] = d;
      bytesPerStep[layout] = r.bytesPerStep;
      // Ring all-reduce of the float32 gradients (ZeRO-1: reduce-scatter + all-gather of the same bytes).
      bytesTheory[layout] = allReduceBytes(4 * P, n);
      if (!zero) measuredTps[String(n)] = r.tokensPerS;
      const state = /optimizer state per rank ([\d./ ]+ MB)/.exec(r.stdout)?.[1] ?? '?';
      if (zero) zeroState[String(n)] = state;
      console.log(`${layout.padEnd(9)} max |loss − one process| over ${steps} steps ${d.toExponential(2)}; bytes/step/rank ${r.bytesPerStep?.toFixed(0)} vs 2(N−1)/N·4P = ${bytesTheory[layout]!.toFixed(0)}; optimizer state per rank ${state}; ${r.tokensPerS.toFixed(0)} tok/s`);
    }
  }

  // --- model parallel layouts (their parity child, when this build has it) ---
  let tp2: number | null = null;
  const pp2: Record<string, number | null> = { gpipe: null, '1f1b': null };
  let ep2: number | null = null;
  if (existsSync(MP_CHILD)) {
    const r = launch(2, [MP_CHILD, 'all', String(mpSteps), data, 'recipe']);
    if (!r.ok) console.log(`model-parallel parity child failed:\n${(r.stderr || r.stdout).trim().split('\n').slice(-6).join('\n')}`);
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('MP ')).map((l) => JSON.parse(l.slice(3)) as MpLine);
    const worst = (mode: string): number | null => {
      const ls = lines.filter((l) => l.mode === mode);
      return ls.length ? Math.max(...ls.map((l) => Math.max(l.logits, l.loss, l.grad, l.curve))) : null;
    };
    tp2 = worst('tp');
    pp2.gpipe = worst('pp-gpipe');
    pp2['1f1b'] = worst('pp-1f1b');
    ep2 = worst('ep');
    for (const mode of ['tp', 'pp-gpipe', 'pp-1f1b', 'ep']) {
      const ls = lines.filter((l) => l.mode === mode);
      if (!ls.length) continue;
      // The busiest rank (pipeline stages differ), with its own formula.
      const busiest = ls.reduce((a, b) => (b.bytes_per_step > a.bytes_per_step ? b : a));
      const key = `${mode.replace('pp-', 'pp2_')}${mode === 'tp' ? '2' : mode === 'ep' ? '2' : ''}`;
      bytesPerStep[key] = busiest.bytes_per_step;
      bytesTheory[key] = busiest.bytes_theory;
      console.log(`${key.padEnd(9)} max difference from one process (logits, loss, gradients, ${mpSteps}-step losses) ${worst(mode)!.toExponential(2)}; bytes/step/rank ${busiest.bytes_per_step.toFixed(0)} vs formula ${busiest.bytes_theory.toFixed(0)}`);
    }
  } else {
    console.log(`tensor/pipeline/expert parallel: not in this build (${MP_CHILD} missing); their figures are null`);
  }

  // --- the scaling model against this machine ---
  const link: Record<string, { latency: number; bandwidth: number }> = {};
  for (const n of [2, 4]) {
    const r = launch(n, [join(root, 'dist/bench/_allreduce_worker.js')]);
    const line = r.stdout.split('\n').find((l) => l.startsWith('ALLREDUCE '));
    if (!line) throw new Error(`all-reduce measurement on ${n} ranks failed:\n${r.stderr.slice(-500)}`);
    const { samples } = JSON.parse(line.slice(10)) as { samples: { bytes: number; seconds: number }[] };
    link[String(n)] = fitLatencyBandwidth(samples.map((s) => ({ steps: 2 * (n - 1), bytes: allReduceBytes(s.bytes, n), seconds: s.seconds })));
    console.log(`all-reduce on ${n} ranks: α ${(link[String(n)]!.latency * 1e6).toFixed(1)} µs per step, β ${(link[String(n)]!.bandwidth / 1e9).toFixed(2)} GB/s (fit over 4 KiB–4 MiB)`);
  }
  // Compute under the same contention as the dp runs: n independent one-process runs at once, each on its rank's
  // B/n rows (no MPI). A synchronous step waits for its slowest rank, so each step's compute is the slowest of the
  // n runs' step i (they start together and stay roughly aligned); the median over steps ≥ 5 is the rank's compute.
  const cores = availableParallelism();
  const tokensPerStep = cfg.data.batch_size * cfg.model.block_size;
  const shape = { params: P, layers: cfg.model.n_layer, hidden: cfg.model.n_embd, flopsPerToken, wireBytes: 4 };
  const predicted: Record<string, number> = {};
  const predictedIdeal: Record<string, number> = {};
  const predictionError: Record<string, number> = {};
  const concurrentMs: Record<string, number> = {};
  for (const n of [2, 4]) {
    const stepMs = await concurrentSingles(n, common, join(work, `alone${n}`), cfg.data.batch_size / n);
    const computeS = stepMs / 1e3;
    concurrentMs[String(n)] = stepMs;
    const layout = { dp: n, tp: 1, pp: 1, microBatches: 1, tokensPerStep, overlap: 0 };
    // achievedFlops such that the model's compute, tokensPerStep·F/(n·R), is the measured straggler time.
    const contended = { devices: n, achievedFlops: (tokensPerStep * flopsPerToken) / (n * computeS), peakFlops: cfg.peak_flops || 1, ...link[String(n)]! };
    const p = predictStep(shape, contended, layout);
    // The old assumption, kept for comparison: each rank computes at the one-process rate × min(1, cores/n).
    const achieved = single.tokensPerS * flopsPerToken;
    const ideal = predictStep(shape, { devices: n, achievedFlops: achieved * Math.min(1, cores / n), peakFlops: cfg.peak_flops || achieved, ...link[String(n)]! }, layout);
    predicted[String(n)] = p.tokensPerS;
    predictedIdeal[String(n)] = ideal.tokensPerS;
    predictionError[String(n)] = p.tokensPerS / measuredTps[String(n)]! - 1;
    console.log(`scaling model, dp=${n}: predicted ${p.tokensPerS.toFixed(0)} tok/s (compute ${(p.computeS * 1e3).toFixed(1)} ms: the slowest of ${n} concurrent one-process runs of ${cfg.data.batch_size / n} rows, + all-reduce ${(p.dpS * 1e3).toFixed(2)} ms), measured ${measuredTps[String(n)]!.toFixed(0)} tok/s: ${(100 * predictionError[String(n)]!).toFixed(0)}%; ` +
      `with each rank at the one-process rate × min(1, ${cores} cores / ${n}) it would say ${ideal.tokensPerS.toFixed(0)} tok/s (load average ${loadavg()[0]!.toFixed(1)})`);
  }

  console.log(`RESULT ${JSON.stringify({
    cpu: cpuName(), steps, mp_steps: mpSteps, params: P,
    dp_max_loss_diff: dpDiff, zero1_max_loss_diff: zeroDiff, zero1_state_per_rank: zeroState,
    tp2_max_diff: tp2, pp2_max_diff: pp2, ep2_max_diff: ep2,
    bytes_per_step: bytesPerStep, bytes_theory: bytesTheory,
    tokens_per_s: measuredTps, predicted_tokens_per_s: predicted, prediction_error: predictionError, predicted_tokens_per_s_core_share: predictedIdeal,
    concurrent_compute_ms: concurrentMs, link, load_average: loadavg()[0],
  })}`);
}
