// Decoding speed, lmforge beside PyTorch in one run: greedy generation with a KV cache, batch 1, same architecture
// and thread count on both sides (the PyTorch side keeps past keys/values as Hugging Face's GPT-2 does). Prints the
// prompt's prefill time, the median ms per new token, tokens/s and peak RSS, with the ratios.
// Usage: npm run bench -- decode [small] [gpt2] [--prompt=64] [--new=128]
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { intFlag } from './_args.js';
import { cpuName } from './_cpu.js';
import { DECODE_CASES } from './_gpt_cases.js';
import { printRow, runJSON, type SideFigures } from './_side_by_side.js';
import { PYTHON, torchBlasNote, torchEnv } from './_torch.js';

interface Figures extends SideFigures {
  prefillMs: number;
  ms: number;
}

export async function run(args: string[]): Promise<void> {
  const prompt = intFlag('decode', args, 'prompt', 64);
  const fresh = intFlag('decode', args, 'new', 128);
  const names = args.filter((a) => !a.startsWith('--'));
  const cases = DECODE_CASES.filter((c) => names.length === 0 || names.includes(c.name));
  const threads = availableParallelism();
  const worker = fileURLToPath(new URL('./_decode_worker.js', import.meta.url));
  const torchScript = fileURLToPath(new URL('../../bench/torch_decode.py', import.meta.url));
  const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  console.log(`Greedy KV-cache decoding, batch 1, ${prompt}-token prompt then ${fresh} new tokens (median per token, after a warm-up run); ${threads} threads each; PyTorch on ${torchBlasNote()}`);
  if (!hasTorch) console.log('PyTorch not importable by /usr/bin/python3: comparison skipped (apt-get install python3-torch)');
  console.log('case  | lmforge prefill ms  ms/token  tok/s  RSS MiB | PyTorch prefill ms  ms/token  tok/s  RSS MiB | speed ratio  memory ratio');
  const result: Record<string, { tokens_per_s: number | null; torch_tokens_per_s: number | null; ms_per_token: number | null; torch_ms_per_token: number | null }> = {};
  for (const c of cases) {
    const ours = runJSON<Figures>(process.execPath, [worker, c.name, String(prompt), String(fresh)]);
    const theirs = hasTorch ? runJSON<Figures>(PYTHON, [torchScript, c.name, String(prompt), String(fresh), String(threads)], torchEnv(threads)) : 'skipped';
    printRow(c.name, ours, theirs, (f) => `${f.prefillMs.toFixed(1).padStart(18)} ${f.ms.toFixed(2).padStart(9)} ${f.tokensPerS.toFixed(0).padStart(6)} ${f.peakRssMiB.toFixed(0).padStart(8)}`, 44);
    const fig = (f: Figures | string): Figures | null => (typeof f === 'string' ? null : f);
    result[c.name] = { tokens_per_s: fig(ours)?.tokensPerS ?? null, torch_tokens_per_s: fig(theirs)?.tokensPerS ?? null, ms_per_token: fig(ours)?.ms ?? null, torch_ms_per_token: fig(theirs)?.ms ?? null };
  }
  for (const c of cases) console.log(`  ${c.name}: ${c.what}`);
  console.log(`RESULT ${JSON.stringify({ cpu: cpuName(), threads, prompt, new_tokens: fresh, cases: result })}`);
}
