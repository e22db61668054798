// GPT training throughput, lmforge beside PyTorch (Debian's python3-torch, same architecture, same threads) in
// one run: tokens/s and peak RSS for nanoGPT's CPU recipe, its GPU config and a GPT-2-small shape.
// Usage: npm run bench -- gpt [case ...] [--iters N]   (cases: cpu, gpu, gpt2; default all)
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { GPT_CASES } from './_gpt_cases.js';
import { printRow, runJSON, type SideFigures } from './_side_by_side.js';
import { PYTHON, torchBlasNote, torchEnv } from './_torch.js';

interface Figures extends SideFigures {
  ms: number;
  loss: number;
}

export async function run(args: string[]): Promise<void> {
  const itersFlag = args.indexOf('--iters');
  const iters = itersFlag >= 0 ? Number(args[itersFlag + 1]) : undefined;
  const names = args.filter((a, i) => !a.startsWith('--') && (itersFlag < 0 || i !== itersFlag + 1));
  const cases = GPT_CASES.filter((c) => names.length === 0 || names.includes(c.name));
  const threads = availableParallelism();
  const worker = fileURLToPath(new URL('./_gpt_worker.js', import.meta.url));
  const torchScript = fileURLToPath(new URL('../../bench/torch_gpt.py', import.meta.url));
  const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  console.log(`GPT training, ${threads} threads each; median ms/iter after 2 warm-up iterations; peak RSS of the whole process; PyTorch on ${torchBlasNote()}`);
  if (!hasTorch) console.log('PyTorch not importable by /usr/bin/python3: comparison skipped (apt-get install python3-torch)');
  console.log('case  | lmforge ms/iter  tok/s   RSS MiB | PyTorch ms/iter  tok/s   RSS MiB | speed ratio  memory ratio');
  for (const c of cases) {
    const n = String(iters ?? c.iters);
    const ours = runJSON<Figures>(process.execPath, [worker, c.name, n]);
    const theirs = hasTorch ? runJSON<Figures>(PYTHON, [torchScript, c.name, n, String(threads)], torchEnv(threads)) : 'skipped';
    printRow(c.name, ours, theirs, (f) => `${f.ms.toFixed(1).padStart(9)} ${f.tokensPerS.toFixed(0).padStart(8)} ${f.peakRssMiB.toFixed(0).padStart(8)}`, 31);
  }
  for (const c of cases) console.log(`  ${c.name}: ${c.what}`);
}
