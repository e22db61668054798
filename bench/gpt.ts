// GPT training throughput, lmforge beside PyTorch (Debian's python3-torch, same architecture, same threads) in
// one run: tokens/s and peak RSS for nanoGPT's CPU recipe, its GPU config and a GPT-2-small shape. With
// --contended each case runs twice, quiet and then beside a busy-loop process that occupies one core (as a
// browser, an editor or a CI job would), and both ratios are printed.
// Usage: npm run bench -- gpt [case ...] [--iters N] [--contended]   (cases: cpu, gpu, gpt2; default all)
// With --bf16: lmforge in bf16 mixed precision and in fp32 beside PyTorch fp32 per case (default gpt2 only), and
// with --recipe-val also the CPU recipe's whole-split val loss in bf16 and fp32 (2 seeds, or --seeds=a,b,…; --jobs=N
// runs N recipe runs at a time, one thread each).
import { spawn, spawnSync } from 'node:child_process';
import { cpuName } from './_cpu.js';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { intFlag } from './_args.js';
import { GPT_CASES, type GptCase } from './_gpt_cases.js';
import { recipeVal, type RecipeVal } from './_gpt_recipe_val.js';
import { printRow, runJSON, type SideFigures } from './_side_by_side.js';
import { PYTHON, torchBlasNote, torchEnv } from './_torch.js';

interface Figures extends SideFigures {
  ms: number;
  loss: number;
}

const worker = fileURLToPath(new URL('./_gpt_worker.js', import.meta.url));
const torchScript = fileURLToPath(new URL('../../bench/torch_gpt.py', import.meta.url));
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

export async function run(args: string[]): Promise<void> {
  const itersFlag = args.indexOf('--iters');
  const iters = itersFlag >= 0 ? Number(args[itersFlag + 1]) : undefined;
  const names = args.filter((a, i) => !a.startsWith('--') && (itersFlag < 0 || i !== itersFlag + 1));
  const contended = args.includes('--contended');
  const unknown = names.filter((n) => !GPT_CASES.some((c) => c.name === n));
  if (unknown.length > 0) throw new Error(`bench/gpt: unknown case ${unknown.join(', ')} (cases: ${GPT_CASES.map((c) => c.name).join(', ')})`);
  if (args.includes('--bf16')) {
    await runBf16(args, GPT_CASES.filter((c) => (names.length === 0 ? c.name === 'gpt2' : names.includes(c.name))), iters);
    return;
  }
  const cases = GPT_CASES.filter((c) => names.length === 0 || names.includes(c.name));
  const threads = availableParallelism();
  console.log(`GPT training, ${threads} threads each; median ms/iter after 2 warm-up iterations; peak RSS of the whole process; PyTorch on ${torchBlasNote()}`);
  if (!hasTorch) console.log('PyTorch not importable by /usr/bin/python3: comparison skipped (apt-get install python3-torch)');
  console.log(`CPU: ${cpuName()}`);
  console.log('case  | lmforge ms/iter  tok/s   RSS MiB | PyTorch ms/iter  tok/s   RSS MiB | speed ratio  memory ratio');
  const result: Record<string, Record<string, number | null>> = {};
  const ratioOf = (a: Figures | string, b: Figures | string): number | null => (typeof a === 'string' || typeof b === 'string' ? null : a.tokensPerS / b.tokensPerS);
  for (const c of cases) {
    const n = String(iters ?? c.iters);
    const side = (): [Figures | string, Figures | string] => [
      runJSON<Figures>(process.execPath, [worker, c.name, n]),
      hasTorch ? runJSON<Figures>(PYTHON, [torchScript, c.name, n, String(threads)], torchEnv(threads)) : 'skipped',
    ];
    const cells = (f: Figures): string => `${f.ms.toFixed(1).padStart(9)} ${f.tokensPerS.toFixed(0).padStart(8)} ${f.peakRssMiB.toFixed(0).padStart(8)}`;
    const [ours, theirs] = side();
    printRow(c.name, ours, theirs, cells, 31);
    result[c.name] = { quiet_ratio: ratioOf(ours, theirs), lmforge_tok_s: typeof ours === 'string' ? null : ours.tokensPerS, torch_tok_s: typeof theirs === 'string' ? null : theirs.tokensPerS };
    if (contended) {
      // A busy loop in its own process takes one core for the whole contended run of both sides.
      const busy = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
      try {
        const [o2, t2] = side();
        printRow(`${c.name}+`, o2, t2, cells, 31);
        Object.assign(result[c.name]!, { contended_ratio: ratioOf(o2, t2), lmforge_contended_tok_s: typeof o2 === 'string' ? null : o2.tokensPerS, torch_contended_tok_s: typeof t2 === 'string' ? null : t2.tokensPerS });
      } finally {
        busy.kill('SIGKILL');
      }
    }
  }
  for (const c of cases) console.log(`  ${c.name}: ${c.what}`);
  if (contended) console.log('  name+: the same case while a busy-loop process occupies one core');
  const first = result[cases[0]?.name ?? ''];
  console.log(`RESULT ${JSON.stringify({ cpu: cpuName(), threads, cases: result, quiet_ratio: first?.quiet_ratio ?? null, contended_ratio: first?.contended_ratio ?? null })}`);
}

/** `--bf16`: lmforge bf16 and fp32 beside PyTorch fp32 for each case, then (with --recipe-val) the recipe's val loss. */
async function runBf16(args: string[], cases: GptCase[], iters: number | undefined): Promise<void> {
  const threads = availableParallelism();
  const seedsFlag = args.find((a) => a.startsWith('--seeds='));
  const seeds = (seedsFlag?.slice('--seeds='.length) ?? '1337,1338').split(',').map(Number);
  if (seeds.length === 0 || seeds.some((s) => !Number.isInteger(s))) throw new Error(`bench/gpt: --seeds expects integers separated by commas, got ${seedsFlag}`);
  const jobs = intFlag('gpt', args, 'jobs', 1);
  const kernel = runJSON<Figures & { kernel: string }>(process.execPath, [worker, 'cpu', '1', 'bf16']);
  const kernelName = typeof kernel === 'string' ? 'unknown' : kernel.kernel;
  console.log(`GPT training, bf16 mixed precision (kernel ${kernelName}) and fp32 lmforge beside PyTorch fp32 on ${torchBlasNote()}; ${threads} threads each; median ms/iter after 2 warm-up iterations`);
  if (!hasTorch) console.log('PyTorch not importable by /usr/bin/python3: comparison skipped (apt-get install python3-torch)');
  console.log(`CPU: ${cpuName()}`);
  console.log('case  | bf16 ms/iter   tok/s | fp32 ms/iter   tok/s | torch ms/iter   tok/s | bf16/torch  bf16/fp32  load');
  const tok = (f: Figures | string): number | null => (typeof f === 'string' ? null : f.tokensPerS);
  const cell = (f: Figures | string): string => (typeof f === 'string' ? '(failed)'.padEnd(20) : `${f.ms.toFixed(1).padStart(12)} ${f.tokensPerS.toFixed(0).padStart(7)}`);
  const ratio = (a: number | null, b: number | null): string => (a !== null && b !== null ? `${(a / b).toFixed(2)}×` : 'n/a');
  const result: Record<string, Record<string, number | null>> = {};
  for (const c of cases) {
    const n = String(iters ?? c.iters);
    const bf16 = runJSON<Figures>(process.execPath, [worker, c.name, n, 'bf16']);
    const fp32 = runJSON<Figures>(process.execPath, [worker, c.name, n, 'fp32']);
    const torch: Figures | string = hasTorch ? runJSON<Figures>(PYTHON, [torchScript, c.name, n, String(threads)], torchEnv(threads)) : 'skipped';
    const load = loadavg()[0]!;
    console.log(`${c.name.padEnd(5)} | ${cell(bf16)} | ${cell(fp32)} | ${cell(torch)} | ${ratio(tok(bf16), tok(torch)).padStart(10)} ${ratio(tok(bf16), tok(fp32)).padStart(10)}  ${load.toFixed(2)}`);
    for (const [side, f] of [['lmforge bf16', bf16], ['lmforge fp32', fp32], ['PyTorch', torch]] as const) {
      if (typeof f === 'string' && f !== 'skipped') console.log(`  ${side} failed: ${f}`);
    }
    const b = tok(bf16);
    const t = tok(torch);
    result[c.name] = { bf16_tok_s: b, fp32_tok_s: tok(fp32), torch_fp32_tok_s: t, bf16_vs_torch: b !== null && t !== null ? b / t : null, load_average: load };
  }
  for (const c of cases) console.log(`  ${c.name}: ${c.what}`);
  let recipe: (RecipeVal & { mean_diff: number }) | null = null;
  if (args.includes('--recipe-val')) {
    console.log(`CPU recipe (configs/shakespeare-char-cpu.yaml, 2000 steps) in fp32 and bf16, seeds ${seeds.join(', ')}, ${jobs} at a time${jobs > 1 ? ' on 1 thread each' : ''}: whole-split val loss`);
    const r = await recipeVal(seeds, jobs);
    const mean = (xs: number[]): number => xs.reduce((x, y) => x + y, 0) / xs.length;
    recipe = { ...r, mean_diff: mean(r.bf16) - mean(r.fp32) };
    console.log(`recipe: mean bf16 ${mean(r.bf16).toFixed(4)} − mean fp32 ${mean(r.fp32).toFixed(4)} = ${recipe.mean_diff.toFixed(4)} (bar: |diff| ≤ 0.01)`);
  }
  const gpt2 = result.gpt2;
  console.log(`RESULT ${JSON.stringify({
    cpu: cpuName(), threads, bf16_kernel: kernelName, load_average: loadavg()[0], cases: result, cpu_recipe_val: recipe,
    bars: {
      gpt2_bf16_vs_torch_ge_2: gpt2?.bf16_vs_torch == null ? null : gpt2.bf16_vs_torch >= 2,
      recipe_val_within_0_01: recipe === null ? null : Math.abs(recipe.mean_diff) <= 0.01,
    },
  })}`);
}
