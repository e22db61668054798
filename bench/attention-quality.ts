// Benchmark: quality at long context on real code (issue 12's second bar): the same small GPT at T = 4096 on the
// Python standard library's source (configs/stdlib-code-long.yaml, data from src/data/stdlib-code.ts) with dense,
// Routing and LSH attention in every layer, each trained by the library's train() for the same steps and seeds:
// the whole-val-split loss per seed and the training tokens/s (mean over the steps after the first 10%, evaluations
// excluded). Builds data/stdlib-code first when it is missing. Not a test: it prints figures.
// Usage: npm run bench -- attention-quality [--steps=N (default 60)] [--seeds=1337,2] [--variants=dense,routing,lsh]
//        [--block=N (default 4096)] [--layers=N (default 4)] [--threads=N (default 2)]
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNativeBackend } from '../src/core/native/index.js';
import { prepareStdlibCode } from '../src/data/stdlib-code.js';
import { readMetrics } from '../src/train/metrics.js';
import { TRAIN_ALIASES, trainSpec } from '../src/train/train-config.js';
import { train } from '../src/train/trainer.js';
import { objectLayer, readConfigFile, resolveConfigWithAliases } from '../src/util/config.js';
import { intFlag, stringFlag } from './_args.js';
import { cpuName } from './_cpu.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const VARIANTS = ['dense', 'routing', 'lsh'] as const;
type Variant = (typeof VARIANTS)[number];

export async function run(args: string[]): Promise<void> {
  if (!loadNativeBackend().loaded) throw new Error('bench/attention-quality: the native addon is not built (npm install)');
  const steps = intFlag('attention-quality', args, 'steps', 60);
  const block = intFlag('attention-quality', args, 'block', 4096);
  const layers = intFlag('attention-quality', args, 'layers', 4);
  const threads = intFlag('attention-quality', args, 'threads', 2);
  const seeds = (stringFlag(args, 'seeds') ?? '1337,2').split(',').map(Number);
  if (seeds.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`bench/attention-quality: --seeds expects comma-separated integers, got ${stringFlag(args, 'seeds')}`);
  const variants = (stringFlag(args, 'variants') ?? VARIANTS.join(',')).split(',') as Variant[];
  const unknown = variants.filter((v) => !VARIANTS.includes(v));
  if (unknown.length > 0) throw new Error(`bench/attention-quality: --variants: unknown ${unknown.join(', ')} (known: ${VARIANTS.join(', ')})`);
  const dataDir = join(root, 'data/stdlib-code');
  if (!existsSync(join(dataDir, 'val.bin'))) await prepareStdlibCode(dataDir, 4096, (l) => console.log(l));
  const recipe = readConfigFile(join(root, 'configs/stdlib-code-long.yaml'));
  const work = mkdtempSync(join(tmpdir(), 'lmforge-bench-attention-quality-'));
  console.log(`bench attention-quality: configs/stdlib-code-long.yaml at block ${block}, ${layers} layers, ${steps} steps, seeds ${seeds.join(',')}, ${threads} threads; CPU ${cpuName()}`);
  const valLoss: Record<string, number[]> = {};
  const tokensPerS: Record<string, number> = {};
  for (const v of variants) {
    const rates: number[] = [];
    valLoss[v] = [];
    for (const seed of seeds) {
      const c = resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, recipe, objectLayer({
        data_dir: dataDir, out_dir: join(work, `${v}-${seed}`), seed, threads, max_iters: steps, eval_interval: steps, log_interval: 1,
        model: { attention: v, block_size: block, n_layer: layers },
        optim: { warmup_iters: Math.max(1, Math.floor(steps / 10)), lr_decay_iters: steps },
      }, 'bench/attention-quality'));
      const t0 = performance.now();
      const r = train(c, { log: () => {} });
      const loss = r.valLossFull ?? r.valLoss ?? Number.NaN;
      valLoss[v].push(loss);
      for (const m of readMetrics(join(c.out_dir, 'metrics.jsonl'))) {
        if (typeof m.ms_per_iter === 'number' && m.step >= steps / 10) rates.push((block * c.data.batch_size) / (m.ms_per_iter / 1000));
      }
      console.log(`${v.padEnd(8)} seed ${String(seed).padEnd(5)} val loss (whole split) ${loss.toFixed(4)}  ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
    tokensPerS[v] = rates.reduce((a, b) => a + b, 0) / rates.length;
    console.log(`${v.padEnd(8)} training ${tokensPerS[v]!.toFixed(0)} tokens/s`);
  }
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  if (valLoss.dense) {
    for (const v of variants.filter((x) => x !== 'dense')) {
      const gap = (mean(valLoss[v]!) / mean(valLoss.dense) - 1) * 100;
      console.log(`${v}: val loss ${gap >= 0 ? '+' : ''}${gap.toFixed(2)}% against dense, ${(tokensPerS[v]! / tokensPerS.dense!).toFixed(2)}× its tokens/s`);
    }
  }
  const round = (x: number, d: number): number => Number(x.toFixed(d));
  console.log(`RESULT ${JSON.stringify({
    block, layers, steps, seeds,
    val_loss: Object.fromEntries(Object.entries(valLoss).map(([k, xs]) => [k, xs.map((x) => round(x, 4))])),
    tokens_per_s: Object.fromEntries(Object.entries(tokensPerS).map(([k, x]) => [k, round(x, 1)])),
  })}`);
}
