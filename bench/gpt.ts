// GPT training throughput, lmforge beside PyTorch (Debian's python3-torch, same architecture, same threads) in
// one run: tokens/s and peak RSS for nanoGPT's CPU recipe, its GPU config and a GPT-2-small shape. With
// --contended each case runs twice, quiet and then beside a busy-loop process that occupies one core (as a
// browser, an editor or a CI job would), and both ratios are printed.
// Usage: npm run bench -- gpt [case ...] [--iters N] [--contended]   (cases: cpu, gpu, gpt2; default all)
import { spawn, spawnSync } from 'node:child_process';
import { cpuName } from './_cpu.js';
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
  const contended = args.includes('--contended');
  const cases = GPT_CASES.filter((c) => names.length === 0 || names.includes(c.name));
  const threads = availableParallelism();
  const worker = fileURLToPath(new URL('./_gpt_worker.js', import.meta.url));
  const torchScript = fileURLToPath(new URL('../../bench/torch_gpt.py', import.meta.url));
  const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
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
