// Mixture of experts against the dense MLP, in two parts.
// (a) layer: forward + backward tokens/s of one MoE layer (8 experts, top-2, expert hidden = dense hidden / 2, so each
//     token's active multiply-adds equal the dense MLP's; second choice always dispatched and no capacity limit, so
//     no token does less work than in the dense layer) against the dense MLP, timed alternately in one process.
// (b) study: Tiny Shakespeare (char), the CPU recipe's model (configs/shakespeare-char-cpu.yaml: 4 layers, 128 wide,
//     block 64) at batch 24 × 64 tokens (--batch) for 1000 steps, each run trained by the library's train(): dense vs
//     MoE 8×top-2 (expert hidden 256 = 512/2, so equal active parameters and FLOPs per token; every layer, capacity
//     factor 1.25, GShard's random second expert, z-loss 1e-3) on the same batches for each seed, MoE without the
//     balance loss, and MoE at the published balance coefficient 1e-2 (first seed each). Val loss over the whole val
//     split per seed, seed mean ± spread (max − min), the MoE − dense difference against twice the larger spread (and
//     per seed, same batches), and the busiest expert's load over the mean after warmup (the LR warmup, min(100,
//     steps/10) steps): from metrics.jsonl, the mean over steps of each step's per-layer max/mean, averaged over layers
//     (worst layer and per layer printed too). Load is first choices (what the balance loss evens out); the figures over
//     every dispatched choice and over the loads summed across the steps (the router's lasting preference, without the
//     step's sampling noise) are printed beside it.
// Why batch 24, not the recipe's 12: 768 tokens a step give each expert ~96 first choices, and that sampling noise
//     alone puts a perfectly balanced router's per-step max/mean at ~1.15 (1.10 at 1536 tokens; measured by drawing
//     batches of the text), and the dense seed spread at 12 × 1000 steps was 0.048. MoE papers train on far more tokens
//     a step. Why balance coefficient 3e-2 (--balance), not Switch's 1e-2: at 1e-2 the router keeps a lasting preference
//     (recipe batch, 1000 steps: loads summed over the run 1.184× the mean, per step 1.381×); measured at batch 12,
//     300 steps, seed 1337: summed 1.316 / 1.078 / 1.051 and val loss 2.3942 / 2.3954 / 2.4003 at 1e-2 / 3e-2 / 5e-2,
//     so 3e-2 removes the preference at no visible cost in loss. The study prints 1e-2's figures beside it.
// Usage: npm run bench -- moe [--part=layer|study|all] [--steps=1000] [--batch=24] [--balance=3e-2] [--seeds=1337,2]
//        [--reps=60] [--text=FILE] [--variants=dense,moe,moe_no_balance,moe_balance_1e_2] [--work=DIR]
//        (the last two variants run the first seed only; --work keeps the runs in DIR and reuses those finished there)
// The schedule is the recipe's squeezed into --steps: warmup min(100, steps/10), cosine decay to lr/10 at the last step.
// Time on the shared 2-core machine (five engineers' jobs beside it, load average 6–18): the six runs took 67 min
// (dense 0.9–1.2 s/step, MoE 0.4–0.6 s/step as the load fell), the layer part 30 s. Same seed → same batches and the
// same result (the runs are deterministic), so --work can finish a study in parts or re-print it without training.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lm from '../src/core/index.js';
import { loadNativeBackend } from '../src/core/native/index.js';
import { prepareCharData } from '../src/data/prepare.js';
import { GPT } from '../src/models/gpt.js';
import type { BlockConfig } from '../src/nn/attention.js';
import type { ForwardContext } from '../src/nn/context.js';
import { MLP } from '../src/nn/mlp.js';
import { MoE, type MoEConfig } from '../src/nn/moe.js';
import { readMetrics } from '../src/train/metrics.js';
import { TRAIN_ALIASES, trainSpec, type TrainConfig } from '../src/train/train-config.js';
import { modelConfigOf, readMeta, train } from '../src/train/trainer.js';
import { objectLayer, readConfigFile, resolveConfigWithAliases } from '../src/util/config.js';
import { intFlag, median, stringFlag } from './_args.js';
import { cpuName } from './_cpu.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

interface LayerShape {
  name: string;
  tokens: number;
  C: number;
  H: number;
}

/** Forward + backward tokens/s of the dense MLP and of the MoE layer of equal active FLOPs, timed alternately. */
function layerThroughput(s: LayerShape, reps: number): { dense: number; moe: number; ratio: number } {
  const block: BlockConfig = {
    n_layer: 4, n_head: 4, n_embd: s.C, bias: false, activation: 'gelu', norm: 'layernorm', norm_eps: 1e-5, mlp: 'gelu', mlp_hidden: s.H,
  };
  const moeKeys: MoEConfig = {
    moe_experts: 8, moe_top_k: 2, moe_layers: 'all', moe_capacity_factor: 0, moe_eval_capacity_factor: 0, moe_balance_coef: 1e-2,
    moe_z_coef: 1e-3, moe_expert_dropout: 0, moe_expert_hidden: s.H / 2, moe_second_policy: 'all', moe_router_jitter: 0,
  };
  const rng = new lm.Rng(7);
  const dense = new MLP(block, rng);
  const moe = new MoE({ ...block, ...moeKeys }, rng, 0);
  const x = lm.keep(lm.requireGrad(lm.randn([s.tokens / 64, 64, s.C], rng, 1)));
  const w = lm.keep(lm.randn([s.tokens / 64, 64, s.C], rng, 1));
  const step = (which: 'dense' | 'moe'): number => {
    const t0 = performance.now();
    lm.tidy(() => {
      const ctx: ForwardContext = { dropout: 0, seed: 1, rope: null, cache: null, aux: {}, metrics: {} };
      const y = which === 'dense' ? dense.forward(x, ctx) : moe.forward(x, ctx);
      let loss = lm.sum(lm.mul(y, w));
      for (const a of Object.values(ctx.aux)) loss = lm.add(loss, a);
      lm.backward(loss);
    });
    for (const p of [...dense.parameters(), ...moe.parameters(), x]) {
      p.grad?.dispose();
      p.grad = null;
    }
    return performance.now() - t0;
  };
  for (let i = 0; i < 3; i++) {
    step('dense');
    step('moe');
  }
  const td: number[] = [];
  const tm: number[] = [];
  for (let i = 0; i < reps; i++) {
    td.push(step('dense'));
    tm.push(step('moe'));
  }
  dense.dispose();
  moe.dispose();
  x.dispose();
  w.dispose();
  const d = s.tokens / (median(td) / 1000);
  const m = s.tokens / (median(tm) / 1000);
  return { dense: d, moe: m, ratio: m / d };
}

interface Run {
  val: number;
  /** Mean over logged steps after warmup of the per-layer max/mean load (averaged over layers; worst layer). */
  load: number | null;
  loadWorst: number | null;
  /** The same over every dispatched choice (second choices too), averaged over layers. */
  loadAll: number | null;
  /** Each layer's first-choice counts summed over the steps after warmup, max/mean: mean over layers, worst layer. */
  loadSum: number | null;
  loadSumWorst: number | null;
  dropped: number | null;
  msPerStep: number;
}

/**
 * Per MoE layer, max/mean of its first-choice loads summed over the given steps (moe_load_l<layer>_<e>), or null when
 * the records have none. Summing removes most of one step's sampling noise (with 768 tokens a perfectly balanced router
 * still shows max/mean ≈ 1.14 per step), leaving the router's lasting preference.
 */
/** Per MoE layer, the mean over the given steps of that step's max/mean first-choice load. */
function perStepLoads(recs: readonly Record<string, unknown>[], nLayer: number, E: number): number[] {
  const out: number[] = [];
  for (let l = 0; l < nLayer; l++) {
    const xs: number[] = [];
    for (const r of recs) {
      const f = Array.from({ length: E }, (_, e) => r[`moe_load_l${l}_${e}`]);
      if (f.every((v): v is number => typeof v === 'number')) xs.push((Math.max(...f) * E) / f.reduce((a, b) => a + b, 0));
    }
    if (xs.length) out.push(mean(xs));
  }
  return out;
}

function summedLoads(recs: readonly Record<string, unknown>[], nLayer: number, E: number): number[] | null {
  const out: number[] = [];
  for (let l = 0; l < nLayer; l++) {
    const tot = new Array<number>(E).fill(0);
    let seen = false;
    for (const r of recs) {
      for (let e = 0; e < E; e++) {
        const v = r[`moe_load_l${l}_${e}`];
        if (typeof v === 'number') {
          tot[e]! += v;
          seen = true;
        }
      }
    }
    if (seen) out.push((Math.max(...tot) * E) / tot.reduce((a, b) => a + b, 0));
  }
  return out.length ? out : null;
}

/**
 * The whole-val-split loss of a run already finished in c.out_dir with the same seed, steps, batch, model and
 * optimizer settings (train-config.json and the final record of metrics.jsonl), or null.
 */
function finishedRun(c: TrainConfig, steps: number): number | null {
  const cfg = join(c.out_dir, 'train-config.json');
  const met = join(c.out_dir, 'metrics.jsonl');
  if (!existsSync(cfg) || !existsSync(met)) return null;
  const key = (o: { seed: unknown; max_iters: unknown; data: { batch_size: unknown }; model: unknown; optim: unknown }): string =>
    JSON.stringify([o.seed, o.max_iters, o.data.batch_size, o.model, o.optim]);
  const saved = JSON.parse(readFileSync(cfg, 'utf8')) as Parameters<typeof key>[0];
  if (key(saved) !== key(c)) return null;
  const last = readMetrics(met).find((r) => r.step === steps && typeof r.val_loss_full === 'number');
  return last ? (last.val_loss_full as number) : null;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const spread = (xs: readonly number[]): number => Math.max(...xs) - Math.min(...xs);

export async function run(args: string[]): Promise<void> {
  loadNativeBackend();
  const part = stringFlag(args, 'part') ?? 'all';
  if (!['layer', 'study', 'all'].includes(part)) throw new Error(`bench/moe: --part expects layer, study or all, got ${part}`);
  const steps = intFlag('moe', args, 'steps', 1000);
  const reps = intFlag('moe', args, 'reps', 60);
  const batch = intFlag('moe', args, 'batch', 24);
  const balanceCoef = Number(stringFlag(args, 'balance') ?? '3e-2');
  if (!(balanceCoef >= 0)) throw new Error(`bench/moe: --balance expects a number ≥ 0, got ${stringFlag(args, 'balance')}`);
  const seeds = (stringFlag(args, 'seeds') ?? '1337,2').split(',').map(Number);
  if (seeds.length < 1 || seeds.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`bench/moe: --seeds expects comma-separated integers, got ${stringFlag(args, 'seeds')}`);
  console.log(`bench moe: CPU ${cpuName()} (timings on a shared machine; ratios are from alternating runs in one process)`);
  const result: Record<string, unknown> = { cpu: cpuName() };

  if (part !== 'study') {
    const shapes: LayerShape[] = [
      { name: 'recipe', tokens: 768, C: 128, H: 512 },
      { name: 'wide', tokens: 2048, C: 256, H: 1024 },
    ];
    const layer: Record<string, unknown> = {};
    for (const s of shapes) {
      const r = layerThroughput(s, reps);
      console.log(`layer ${s.name} (${s.tokens} tokens, C ${s.C}, dense H ${s.H} vs 8 experts × H ${s.H / 2}, top-2): dense ${r.dense.toFixed(0)} tok/s, MoE ${r.moe.toFixed(0)} tok/s, MoE/dense ${r.ratio.toFixed(3)} (bar ≥ 0.6)`);
      layer[s.name] = { tokens: s.tokens, C: s.C, H: s.H, dense_tok_s: Math.round(r.dense), moe_tok_s: Math.round(r.moe), ratio: Number(r.ratio.toFixed(3)) };
    }
    result.layer = layer;
  }

  if (part !== 'layer') {
    // --work=DIR keeps the runs there, and a later call with the same DIR reuses every run that finished with the same
    // config (same seed → same run), so a study cut short on a busy machine is completed rather than started over.
    const workFlag = stringFlag(args, 'work');
    const work = workFlag ?? mkdtempSync(join(tmpdir(), 'lmforge-bench-moe-'));
    mkdirSync(work, { recursive: true });
    if (!existsSync(join(work, 'data', 'meta.json'))) {
      const text = stringFlag(args, 'text') ?? join(root, '../shared/data/tinyshakespeare/input.txt');
      writeFileSync(join(work, 'input.txt'), readFileSync(text, 'utf8'));
      prepareCharData({ input: join(work, 'input.txt'), outDir: join(work, 'data'), valFraction: 0.1 });
    }
    console.log(`runs under ${work}`);
    const recipe = readConfigFile(join(root, 'configs/shakespeare-char-cpu.yaml'));
    const warmup = Math.min(100, Math.floor(steps / 10));
    const evalInterval = steps; // one evaluation, at the end (the whole val split)
    console.log(`study: ${steps} steps per run, batch ${batch} × 64 tokens, balance coefficient ${balanceCoef}, seeds ${seeds.join(',')}, val loss over the whole val split at the end`);
    const moeModel = { moe_experts: 8, moe_top_k: 2, moe_expert_hidden: 256, moe_layers: 'all', moe_capacity_factor: 1.25, moe_balance_coef: balanceCoef };
    const variants: Record<string, { model: Record<string, unknown>; seeds: number[] }> = {
      dense: { model: {}, seeds },
      moe: { model: moeModel, seeds },
      moe_no_balance: { model: { ...moeModel, moe_balance_coef: 0 }, seeds: seeds.slice(0, 1) },
      // The published coefficient beside the study's (first seed only; absent when --balance is 1e-2 itself).
      ...(balanceCoef === 1e-2 ? {} : { moe_balance_1e_2: { model: { ...moeModel, moe_balance_coef: 1e-2 }, seeds: seeds.slice(0, 1) } }),
    };
    const only = (stringFlag(args, 'variants') ?? Object.keys(variants).join(',')).split(',');
    const unknown = only.filter((n) => !(n in variants));
    if (unknown.length > 0) throw new Error(`bench/moe: --variants: unknown ${unknown.join(', ')} (known: ${Object.keys(variants).join(', ')})`);
    const runs: Record<string, Run[]> = {};
    for (const [name, v] of Object.entries(variants).filter(([n]) => only.includes(n))) {
      runs[name] = [];
      for (const seed of v.seeds) {
        const c = resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, recipe, objectLayer({
          data_dir: join(work, 'data'), out_dir: join(work, `${name}-${seed}`), seed, max_iters: steps, eval_interval: evalInterval,
          log_interval: 1, checkpoint_interval: 0, full_val: true, batch_size: batch, model: v.model,
          optim: { warmup_iters: warmup, lr_decay_iters: steps, min_lr: 1e-4 },
        }, 'bench/moe'));
        if (seed === v.seeds[0]) {
          const m = new GPT(modelConfigOf(c, readMeta(c.data.dir).vocab_size), seed);
          console.log(`${name}: ${(m.numParametersNonEmbedding() / 1e6).toFixed(3)}M parameters (non-embedding)`);
          m.dispose();
        }
        const done = finishedRun(c, steps);
        const val = done ?? train(c, { log: () => {} }).valLossFull;
        if (done !== null) console.log(`${name} seed ${seed}: reusing the finished run in ${c.out_dir}`);
        const recs = readMetrics(join(c.out_dir, 'metrics.jsonl'));
        const after = recs.filter((m) => m.step >= warmup && typeof m.moe_load_max === 'number');
        const avg = (key: string): number | null => (after.length ? mean(after.map((m) => m[key] as number)) : null);
        const ms = recs.filter((m) => typeof m.ms_per_iter === 'number' && m.step >= steps / 10).map((m) => m.ms_per_iter as number);
        const summed = summedLoads(after, c.model.n_layer, 8);
        const row: Run = {
          val: val ?? NaN, load: avg('moe_load_max'), loadWorst: avg('moe_load_max_worst'), loadAll: avg('moe_load_max_all'),
          loadSum: summed && mean(summed), loadSumWorst: summed && Math.max(...summed), dropped: avg('moe_dropped'), msPerStep: median(ms),
        };
        runs[name].push(row);
        if (row.load !== null) console.log(`  per layer, per-step max/mean after warmup: ${perStepLoads(after, c.model.n_layer, 8).map((v) => v.toFixed(3)).join(', ')}; summed: ${summed?.map((v) => v.toFixed(3)).join(', ')}`);
        console.log(`${name} seed ${seed}: val loss ${row.val.toFixed(4)}${row.load === null ? '' : `, load max/mean after warmup ${row.load.toFixed(3)} (worst layer ${row.loadWorst!.toFixed(3)}; every dispatched choice ${row.loadAll!.toFixed(3)}; summed over the steps ${row.loadSum?.toFixed(3) ?? '—'}, worst layer ${row.loadSumWorst?.toFixed(3) ?? '—'}), dropped ${(100 * row.dropped!).toFixed(2)}%`}, ${row.msPerStep.toFixed(1)} ms/step`);
      }
    }
    const summary: Record<string, unknown> = {};
    for (const [name, rs] of Object.entries(runs)) {
      const vals = rs.map((r) => r.val);
      summary[name] = {
        val_loss: vals.map((v) => Number(v.toFixed(4))), mean: Number(mean(vals).toFixed(4)), spread: Number(spread(vals).toFixed(4)),
        load_max_over_mean: rs[0]!.load === null ? null : Number(mean(rs.map((r) => r.load!)).toFixed(3)),
        load_max_over_mean_worst_layer: rs[0]!.loadWorst === null ? null : Number(mean(rs.map((r) => r.loadWorst!)).toFixed(3)),
        load_max_over_mean_all_choices: rs[0]!.loadAll === null ? null : Number(mean(rs.map((r) => r.loadAll!)).toFixed(3)),
        load_max_over_mean_summed: rs[0]!.loadSum === null ? null : Number(mean(rs.map((r) => r.loadSum!)).toFixed(3)),
        load_max_over_mean_summed_worst_layer: rs[0]!.loadSumWorst === null ? null : Number(mean(rs.map((r) => r.loadSumWorst!)).toFixed(3)),
        dropped: rs[0]!.dropped === null ? null : Number(mean(rs.map((r) => r.dropped!)).toFixed(4)),
        ms_per_step: Number(mean(rs.map((r) => r.msPerStep)).toFixed(1)),
      };
      console.log(`${name.padEnd(15)} val loss ${vals.map((v) => v.toFixed(4)).join(', ')}  mean ${mean(vals).toFixed(4)} ± spread ${spread(vals).toFixed(4)}`);
    }
    if (!runs.dense || !runs.moe) {
      result.study = { steps, batch, balance_coef: balanceCoef, seeds, ...summary };
      console.log(`RESULT ${JSON.stringify(result)}`);
      return;
    }
    const d = runs.dense.map((r) => r.val);
    const m = runs.moe.map((r) => r.val);
    const gain = mean(d) - mean(m);
    const twice = 2 * Math.max(spread(d), spread(m));
    console.log(`MoE − dense: ${(-gain).toFixed(4)} (MoE lower by ${gain.toFixed(4)}) against 2× seed spread ${twice.toFixed(4)}: ${gain > twice ? 'holds' : 'does not hold'}`);
    // Each seed's dense and MoE runs see the same batches, so the per-seed difference removes the data-order part of the spread.
    const paired = d.map((v, i) => Number((v - m[i]!).toFixed(4)));
    console.log(`per seed, dense − MoE (same batches): ${paired.join(', ')}`);
    const load = mean(runs.moe.map((r) => r.load ?? Number.NaN));
    console.log(`busiest expert with the balance loss (${balanceCoef}): ${load.toFixed(3)}× the mean per step after warmup (bar ≤ 1.3): ${load <= 1.3 ? 'holds' : 'does not hold'}`);
    const noBalance = runs.moe_no_balance?.[0]?.load;
    if (noBalance != null) console.log(`without the balance loss: ${noBalance.toFixed(3)}× (${noBalance > 1.3 ? 'shows the imbalance' : 'no imbalance shown'})`);
    result.study = {
      steps, batch, balance_coef: balanceCoef, seeds, ...summary, moe_gain: Number(gain.toFixed(4)), twice_spread: Number(twice.toFixed(4)), paired_gain: paired,
      gain_holds: gain > twice, load_holds: load <= 1.3, ...(noBalance == null ? {} : { no_balance_shows_imbalance: noBalance > 1.3 }),
    };
  }
  console.log(`RESULT ${JSON.stringify(result)}`);
}
