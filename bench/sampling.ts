// Sampled batched generation (the PPO rollout path, serve/generate.ts) with the radix-selection sampler beside the
// comparison-sort sampler it replaced (test/serve/logits-reference.ts), both in one run and alternated so that
// machine load falls on both alike: tokens/s of one batch of rows and of batch-1 decoding of the same prompts, and
// their ratio, per sampler; the greedy ratio beside them as the ceiling (no sampler work at all). Also the sampler
// alone per row ("draw": the choice and its log-probability as the generator makes them). The model is a fresh GPT of the alignment base's shape (4 × 128, block 256), its vocabulary
// V = 4,100 (the base BPE with the chat tokens) and 50,257 (GPT-2's): the sampler's cost grows with V, not with
// the model, and a random model draws as a trained one would as far as the sampler's work goes.
// Usage: npm run bench -- sampling [--rows=16] [--new=48] [--repeats=3] [--vocab=4100,50257]
import { loadavg } from 'node:os';
import * as lm from '../src/core/index.js';
import { Rng } from '../src/core/index.js';
import { loadNativeBackend } from '../src/core/native/index.js';
import { GPT } from '../src/models/gpt.js';
import { generate } from '../src/serve/generate.js';
import { logSoftmaxAt, sampleFrom, samplingProcessors, sampleWithLogprob, type LogitsProcessor } from '../src/serve/logits.js';
import { sampleFromSorted, topKSorted, topPSorted } from '../test/serve/logits-reference.js';
import { intFlag, median, stringFlag } from './_args.js';
import { cpuName } from './_cpu.js';

type Sampler = (logits: Float32Array, rng: Rng) => number;

interface Side {
  name: 'sort' | 'radix' | 'greedy';
  /** The old sampler (then log softmax as a second pass, as before); none = the generator's own draw. */
  sampler?: Sampler;
  processors: LogitsProcessor[];
  greedy: boolean;
}

/** Generated tokens per second of one call. */
function tokensPerSecond(f: () => number): number {
  const t0 = performance.now();
  const n = f();
  return n / ((performance.now() - t0) / 1000);
}

export async function run(args: string[]): Promise<void> {
  loadNativeBackend();
  const rows = intFlag('sampling', args, 'rows', 16);
  const fresh = intFlag('sampling', args, 'new', 48);
  const repeats = intFlag('sampling', args, 'repeats', 3);
  const vocabs = (stringFlag(args, 'vocab') ?? '4100,50257').split(',').map(Number);
  if (vocabs.some((v) => !Number.isInteger(v) || v < 2)) throw new Error(`bench/sampling: --vocab expects comma-separated integers ≥ 2, got ${stringFlag(args, 'vocab')}`);
  console.log(`Sampled generation, ${rows} rows × ≤ ${fresh} new tokens, temperature 1 (as PPO's rollouts) on ${cpuName()} (${lm.getBackend()} backend); sort = the comparison-sort sampler before, radix = now; ${repeats} alternated repeats, medians; load average ${loadavg()[0]!.toFixed(2)} at the start`);
  const result: Record<string, Record<string, number>> = {};
  for (const V of vocabs) {
    const model = new GPT({ vocab_size: V, block_size: 256, n_layer: 4, n_head: 4, n_embd: 128, bias: false });
    const rng = new Rng(V);
    // Prompts of 8 to 24 tokens, so that decoding rather than prefill dominates.
    const prompts = Array.from({ length: rows }, () => Array.from({ length: 8 + Math.floor(rng.uniform() * 17) }, () => Math.floor(rng.uniform() * V)));
    const sides: Side[] = [
      { name: 'sort', sampler: sampleFromSorted, processors: samplingProcessors({ temperature: 1 }), greedy: false },
      { name: 'radix', processors: samplingProcessors({ temperature: 1 }), greedy: false },
      { name: 'greedy', processors: [], greedy: true },
    ];
    const gen = (s: Side, ps: number[][]): number => generate(model, ps, { maxNewTokens: fresh, greedy: s.greedy, processors: s.processors, ...(s.sampler ? { sampler: s.sampler } : {}), seed: 3 }).reduce((n, g) => n + g.tokens.length, 0);
    gen(sides[0]!, prompts.slice(0, 2)); // warm-up
    const batched: Record<string, number[]> = { sort: [], radix: [], greedy: [] };
    const single: Record<string, number[]> = { sort: [], radix: [], greedy: [] };
    for (let r = 0; r < repeats; r++) {
      for (const s of sides) {
        batched[s.name]!.push(tokensPerSecond(() => gen(s, prompts)));
        single[s.name]!.push(tokensPerSecond(() => prompts.reduce((n, p) => n + gen(s, [p]), 0)));
      }
    }
    model.dispose();
    // The sampler alone on one row of normal logits, plus top-k 50 / top-p 0.9 (the server's usual settings).
    const row = Float32Array.from({ length: V }, () => 3 * rng.normal());
    const perRow = (f: () => void): number => {
      const n = Math.max(20, Math.round(2e6 / V));
      const t0 = performance.now();
      for (let i = 0; i < n; i++) f();
      return (performance.now() - t0) / n;
    };
    const r1 = new Rng(1);
    const tkpNew = samplingProcessors({ temperature: 1, topK: 50, topP: 0.9 });
    const tkpOld = [topKSorted(50), topPSorted(0.9)];
    const apply = (ps: LogitsProcessor[], draw: Sampler): number => {
      const x = Float32Array.from(row);
      for (const p of ps) p(x, { tokens: [], promptLength: 0 });
      return logSoftmaxAt(row, draw(x, r1));
    };
    const fig = {
      sampled_batched_tokens_per_s_sort: median(batched.sort!), sampled_batch1_tokens_per_s_sort: median(single.sort!),
      sampled_batched_tokens_per_s_radix: median(batched.radix!), sampled_batch1_tokens_per_s_radix: median(single.radix!),
      greedy_batched_tokens_per_s: median(batched.greedy!), greedy_batch1_tokens_per_s: median(single.greedy!),
      sampled_ratio_sort: median(batched.sort!) / median(single.sort!),
      sampled_ratio_radix: median(batched.radix!) / median(single.radix!),
      greedy_ratio: median(batched.greedy!) / median(single.greedy!),
      draw_ms_per_row_sort: perRow(() => logSoftmaxAt(row, sampleFromSorted(Float32Array.from(row), r1))),
      draw_ms_per_row_radix: perRow(() => sampleWithLogprob(Float32Array.from(row), row, r1)),
      topk50_topp09_draw_ms_per_row_sort: perRow(() => apply(tkpOld, sampleFromSorted)),
      topk50_topp09_draw_ms_per_row_radix: perRow(() => apply(tkpNew, sampleFrom)),
    };
    result[`V${V}`] = fig;
    const f0 = (x: number): string => Math.round(x).toString().padStart(6);
    console.log(`V ${V}: sampled, sort:  batched ${f0(fig.sampled_batched_tokens_per_s_sort)} tokens/s | batch-1 ${f0(fig.sampled_batch1_tokens_per_s_sort)} tokens/s | ${fig.sampled_ratio_sort.toFixed(2)}×`);
    console.log(`V ${V}: sampled, radix: batched ${f0(fig.sampled_batched_tokens_per_s_radix)} tokens/s | batch-1 ${f0(fig.sampled_batch1_tokens_per_s_radix)} tokens/s | ${fig.sampled_ratio_radix.toFixed(2)}×`);
    console.log(`V ${V}: greedy:         batched ${f0(fig.greedy_batched_tokens_per_s)} tokens/s | batch-1 ${f0(fig.greedy_batch1_tokens_per_s)} tokens/s | ${fig.greedy_ratio.toFixed(2)}×`);
    console.log(`V ${V}: one draw (temperature 1): sort ${fig.draw_ms_per_row_sort.toFixed(3)} ms, radix ${fig.draw_ms_per_row_radix.toFixed(3)} ms; top-k 50 + top-p 0.9 + draw: sort ${fig.topk50_topp09_draw_ms_per_row_sort.toFixed(3)} ms, radix ${fig.topk50_topp09_draw_ms_per_row_radix.toFixed(3)} ms`);
  }
  console.log(`RESULT ${JSON.stringify({ cpu: cpuName(), load_average: Number(loadavg()[0]!.toFixed(2)), rows, new_tokens: fresh, repeats, ...result })}`);
}
