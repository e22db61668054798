// Decoding speed, lmforge beside PyTorch in one run: greedy generation with a KV cache, batch 1, same architecture
// and thread count on both sides (the PyTorch side keeps past keys/values as Hugging Face's GPT-2 does). Prints the
// prompt's prefill time, the median ms per new token, tokens/s and peak RSS, with the ratios.
// --quantized: the GPT-2-small shape in fp32, int8 and 4-bit (lmforge quantize's layouts, round-to-nearest weights:
// speed does not depend on how they were rounded) beside PyTorch fp32, then perplexity of a model trained on Tiny
// Shakespeare with GPT-2's BPE (configs/shakespeare-bpe-quant.yaml, trained once and cached under runs/) in fp32,
// int8 and 4-bit GPTQ (group 64, calibrated on its train split) over its whole val split.
// Usage: npm run bench -- decode [small] [gpt2] [--prompt=64] [--new=128] [--quantized]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
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
  if (args.includes('--quantized')) return runQuantized(names.length ? names : ['gpt2'], prompt, fresh);
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

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');

/** Runs an lmforge command from the repository root, echoing its output; throws when it fails. */
function lmforge(args: string[]): void {
  console.log(`$ lmforge ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`bench/decode: lmforge ${args[0]} failed (exit ${r.status})`);
}

/** The perplexity model and its quantized copies (trained, tokenized and quantized once; cached in data/ and runs/). */
type Ppl = Record<'fp32' | 'int8' | 'int4', number | null>;

function perplexities(): { ppl: Ppl; int8Activations: Omit<Ppl, 'fp32'> } {
  const data = join(ROOT, 'data/shakespeare-bpe');
  const run = join(ROOT, 'runs/shakespeare-bpe');
  if (!existsSync(join(data, 'val.bin'))) {
    lmforge(['tokenize', '--tokenizer', join(ROOT, '../shared/data/gpt2-tokenizer'), '--input', join(ROOT, '../shared/data/tinyshakespeare/input.txt'), '--out', data, '--val-fraction', '0.1']);
  }
  if (!existsSync(join(run, 'model.safetensors'))) {
    console.log('training the perplexity model once (configs/shakespeare-bpe-quant.yaml, about 15 minutes on 2 cores)');
    lmforge(['train', '--config', join(ROOT, 'configs/shakespeare-bpe-quant.yaml'), `--out_dir=${run}`, `--data.dir=${data}`, '--overwrite']);
  }
  const dirs = { fp32: run, int8: `${run}-int8`, int4: `${run}-int4` };
  for (const [bits, dir] of [[8, dirs.int8], [4, dirs.int4]] as const) {
    if (!existsSync(join(dir, 'model.safetensors'))) {
      lmforge(['quantize', '--run', run, '--bits', String(bits), '--group-size', '64', '--calibration', join(data, 'train.bin'), '--calibration-tokens', '32768', '--out', dir, '--overwrite']);
    }
  }
  const worker = fileURLToPath(new URL('./_quant_worker.js', import.meta.url));
  // Evaluation batches (many rows) run on the float-activation path; 'all' makes them round activations to int8 as
  // decoding does, to show what that rounding costs too.
  const ppl = (dir: string, what: string, vnni: 'decode' | 'all'): number | null => {
    const r = runJSON<SideFigures & { ppl: number; seconds: number }>(process.execPath, [worker, 'ppl', dir, join(data, 'val.bin')], { ...process.env, LMFORGE_QUANT_VNNI: vnni });
    if (typeof r === 'string') console.log(`  ${what} perplexity failed: ${r}`);
    return typeof r === 'string' ? null : r.ppl;
  };
  return {
    ppl: { fp32: ppl(dirs.fp32, 'fp32', 'decode'), int8: ppl(dirs.int8, 'int8', 'decode'), int4: ppl(dirs.int4, 'int4', 'decode') },
    int8Activations: { int8: ppl(dirs.int8, 'int8 (int8 activations)', 'all'), int4: ppl(dirs.int4, 'int4 (int8 activations)', 'all') },
  };
}

async function runQuantized(names: string[], prompt: number, fresh: number): Promise<void> {
  const threads = availableParallelism();
  const worker = fileURLToPath(new URL('./_decode_worker.js', import.meta.url));
  const qworker = fileURLToPath(new URL('./_quant_worker.js', import.meta.url));
  const torchScript = fileURLToPath(new URL('../../bench/torch_decode.py', import.meta.url));
  const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  const c = DECODE_CASES.find((x) => x.name === names[0]);
  if (!c) throw new Error(`bench/decode: unknown case ${names[0]} (${DECODE_CASES.map((x) => x.name).join(', ')})`);
  console.log(`Quantized decoding: greedy KV-cache, batch 1, ${prompt}-token prompt then ${fresh} new tokens, ${c.what}; ${threads} threads each; PyTorch fp32 on ${torchBlasNote()}`);
  const qdir = (bits: number): string => join(ROOT, `runs/bench-decode/${c.name}-int${bits}`);
  for (const bits of [8, 4]) {
    if (existsSync(join(qdir(bits), 'model.safetensors'))) continue;
    const r = runJSON<SideFigures>(process.execPath, [qworker, 'build', c.name, String(bits), qdir(bits)]);
    if (typeof r === 'string' && !r.includes('"dir"')) throw new Error(`bench/decode: building the int${bits} model failed: ${r}`);
  }
  const rows: [string, Figures | string][] = [
    ['lmforge fp32', runJSON<Figures>(process.execPath, [worker, c.name, String(prompt), String(fresh)])],
    ['lmforge int8', runJSON<Figures>(process.execPath, [worker, c.name, String(prompt), String(fresh), qdir(8)])],
    ['lmforge 4-bit (g64)', runJSON<Figures>(process.execPath, [worker, c.name, String(prompt), String(fresh), qdir(4)])],
    ['PyTorch fp32', hasTorch ? runJSON<Figures>(PYTHON, [torchScript, c.name, String(prompt), String(fresh), String(threads)], torchEnv(threads)) : 'skipped (no torch)'],
  ];
  const fp32 = rows[0]![1];
  console.log('weights              | prefill ms  ms/token   tok/s  RSS MiB | vs lmforge fp32');
  for (const [name, f] of rows) {
    if (typeof f === 'string') {
      console.log(`${name.padEnd(20)} | (${f.slice(0, 120)})`);
      continue;
    }
    const ratio = typeof fp32 === 'string' ? '' : `${(f.tokensPerS / fp32.tokensPerS).toFixed(2)}×`;
    console.log(`${name.padEnd(20)} | ${f.prefillMs.toFixed(1).padStart(10)} ${f.ms.toFixed(2).padStart(9)} ${f.tokensPerS.toFixed(1).padStart(7)} ${f.peakRssMiB.toFixed(0).padStart(8)} | ${ratio.padStart(8)}`);
  }
  const tps = (f: Figures | string): number | null => (typeof f === 'string' ? null : f.tokensPerS);
  const { ppl, int8Activations } = perplexities();
  console.log(`perplexity on the val split of Tiny Shakespeare (GPT-2 BPE): fp32 ${ppl.fp32?.toFixed(3)}, int8 ${ppl.int8?.toFixed(3)}, 4-bit GPTQ g64 ${ppl.int4?.toFixed(3)}`);
  console.log(`  with activations rounded to int8 as decoding does (VNNI): int8 ${int8Activations.int8?.toFixed(3)}, 4-bit ${int8Activations.int4?.toFixed(3)}`);
  const rel = (x: number | null): number | null => (x !== null && ppl.fp32 !== null ? x / ppl.fp32 - 1 : null);
  const speed = (x: number | null): number | null => (x !== null && tps(fp32) !== null ? x / tps(fp32)! : null);
  const result = {
    cpu: cpuName(), threads, case: c.name, prompt, new_tokens: fresh,
    tokens_per_s: { fp32: tps(rows[0]![1]), int8: tps(rows[1]![1]), int4: tps(rows[2]![1]), torch_fp32: tps(rows[3]![1]) },
    speedup_vs_fp32: { int8: speed(tps(rows[1]![1])), int4: speed(tps(rows[2]![1])) },
    ppl,
    ppl_increase: { int8: rel(ppl.int8), int4: rel(ppl.int4) },
    ppl_int8_activations: int8Activations,
  };
  console.log(`bars: int8 ≥ 2.5× fp32 tokens/s (${result.speedup_vs_fp32.int8?.toFixed(2)}×), 4-bit ≥ 4× (${result.speedup_vs_fp32.int4?.toFixed(2)}×); perplexity int8 ≤ +1% (${((result.ppl_increase.int8 ?? NaN) * 100).toFixed(2)}%), 4-bit ≤ +5% (${((result.ppl_increase.int4 ?? NaN) * 100).toFixed(2)}%)`);
  console.log(`RESULT ${JSON.stringify(result)}`);
}
