// What low-rank factorization costs: the Tiny Shakespeare char model (bench/_char_base.ts, cached under runs/) is
// factorized by `lmforge lowrank` at several ranks and energies, each result loaded back through the run directory
// (as sample/eval read it), and its loss over the whole val split (consecutive 64-token windows) printed beside the
// dense model's: parameters, compression, val loss and perplexity, and the eval throughput of each.
// Optionally (--recover=N) the factorized model at one setting is fine-tuned N steps by the training loop to show
// how much of the loss it wins back. Usage: npm run bench -- lowrank [--ranks=8,16,32,48] [--energies=0.5,…]
// [--recover=200] [--recover-at=energy:0.8]
import { join } from 'node:path';
import { loadNativeBackend } from '../src/core/native/index.js';
import { saveLowRankGPT } from '../src/models/low-rank-io.js';
import type { GPT } from '../src/models/gpt.js';
import { lowRankLayers, type RankSelection } from '../src/nn/low-rank.js';
import { makeOptimizer, optimSpec, scheduleOf } from '../src/optim/config.js';
import { runLoop } from '../src/train/loop.js';
import { RunDir } from '../src/train/run-dir.js';
import { fullSplitLoss, NextTokenTask } from '../src/train/tasks/next-token.js';
import { openTokenFile } from '../src/train/token-reader.js';
import { defaultsOf } from '../src/util/config.js';
import { stringFlag } from './_args.js';
import { BASE_DATA, ensureCharBase, lmforge, root } from './_char_base.js';
import { cpuName } from './_cpu.js';

interface Row {
  setting: string;
  params: number;
  compression: number;
  factorized_layers: number;
  /** Mean rank over the factorized layers. */
  mean_rank: number;
  val_loss: number;
  val_ppl: number;
  ppl_increase_pct: number;
  eval_tokens_per_s: number;
}

const EVAL_BATCH = 32;

function valLoss(model: GPT): { loss: number; tokensPerSecond: number } {
  const file = openTokenFile(join(BASE_DATA, 'val.bin'), { vocabSize: model.config.vocab_size });
  const T = model.config.block_size;
  const t0 = performance.now();
  const loss = fullSplitLoss(model, file, EVAL_BATCH, T);
  const seconds = (performance.now() - t0) / 1000;
  return { loss, tokensPerSecond: (Math.floor((file.count - 1) / T) * T) / seconds };
}

function list(text: string | undefined, fallback: number[], what: string): number[] {
  if (text === undefined) return fallback;
  const xs = text.split(',').filter((s) => s !== '').map(Number);
  if (xs.some((x) => !Number.isFinite(x))) throw new Error(`bench/lowrank: --${what} expects comma-separated numbers, got ${text}`);
  return xs;
}

/** Fine-tunes a factorized model in place for `steps` steps with the training loop (AdamW 3e-4, warmup then cosine to 3e-5). */
function recover(model: GPT, steps: number, outDir: string): void {
  const vocabSize = model.config.vocab_size;
  const train = openTokenFile(join(BASE_DATA, 'train.bin'), { vocabSize });
  const val = openTokenFile(join(BASE_DATA, 'val.bin'), { vocabSize });
  const task = new NextTokenTask(model, train, val, { batchSize: 12, evalIters: 20, seed: 1337, fullVal: false });
  const optim = { ...defaultsOf(optimSpec), lr: 3e-4, weight_decay: 0.0, warmup_iters: 20, lr_decay_iters: steps, min_lr: 3e-5 };
  const optimizer = makeOptimizer(model.namedTrainableParameters(), optim);
  try {
    runLoop(task, optimizer, {
      maxIters: steps, gradientAccumulationSteps: 1, gradClip: 1, nanPolicy: 'stop', evalInterval: steps, logInterval: Math.max(1, Math.floor(steps / 4)),
      checkpointInterval: 0, keepCheckpoints: 1, peakFlops: 0, seed: 1337, schedule: scheduleOf(optim), config: { recover: steps, optim },
    }, { runDir: outDir, resume: false, log: (l) => console.log(`  ${l}`) });
  } finally {
    optimizer.dispose();
  }
}

export async function run(args: string[]): Promise<void> {
  loadNativeBackend();
  const ranks = list(stringFlag(args, 'ranks'), [8, 16, 32, 48], 'ranks');
  const energies = list(stringFlag(args, 'energies'), [0.5, 0.7, 0.8, 0.9, 0.95], 'energies');
  const recoverSteps = Number(stringFlag(args, 'recover') ?? 0);
  const recoverAt = stringFlag(args, 'recover-at') ?? 'energy:0.8';
  console.log(`lowrank: truncated-SVD factorization of a Tiny Shakespeare char model, val loss over the whole val split; ${cpuName()}`);
  console.log('(timings under contention: the CPU is shared; losses do not depend on timing)');
  const base = ensureCharBase();
  const dense = new RunDir(base).loadModel();
  const denseParams = dense.numParameters();
  const d = valLoss(dense);
  dense.dispose();
  console.log(`dense: ${denseParams.toLocaleString('en-US')} parameters, val loss ${d.loss.toFixed(4)}, ppl ${Math.exp(d.loss).toFixed(3)}, eval ${Math.round(d.tokensPerSecond).toLocaleString('en-US')} tok/s`);
  const settings: { tag: string; flag: string[]; selection: RankSelection }[] = [
    ...ranks.map((r) => ({ tag: `rank=${r}`, flag: ['--rank', String(r)], selection: { rank: r } as RankSelection })),
    ...energies.map((e) => ({ tag: `energy=${e}`, flag: ['--energy', String(e)], selection: { energy: e } as RankSelection })),
  ];
  const rows: Row[] = [];
  const skipped: string[] = [];
  console.log(`\n${'setting'.padEnd(14)} ${'params'.padStart(9)} ${'compr.'.padStart(7)} ${'layers'.padStart(6)} ${'mean r'.padStart(7)} ${'val loss'.padStart(9)} ${'ppl'.padStart(7)} ${'Δppl'.padStart(8)} ${'eval tok/s'.padStart(11)}`);
  console.log(`${'dense'.padEnd(14)} ${denseParams.toString().padStart(9)} ${'1.00×'.padStart(7)} ${'0'.padStart(6)} ${'-'.padStart(7)} ${d.loss.toFixed(4).padStart(9)} ${Math.exp(d.loss).toFixed(3).padStart(7)} ${'-'.padStart(8)} ${Math.round(d.tokensPerSecond).toString().padStart(11)}`);
  for (const s of settings) {
    const out = join(root, 'runs/bench-lowrank', s.tag.replace(/[=.]/g, '_'));
    try {
      lmforge(['lowrank', '--run', base, ...s.flag, '--out', out, '--overwrite']);
    } catch (e) {
      // A setting at which every layer needs too high a rank to shrink: the CLI writes nothing and says so.
      if (!/no layer gets smaller/.test(String(e))) throw e;
      console.log(`${s.tag.padEnd(14)} no layer gets smaller (each needs rank ≥ in·out/(in + out)): the model stays dense`);
      skipped.push(s.tag);
      continue;
    }
    const model = new RunDir(out).loadModel(); // through the saved layout, as sample/eval read it
    const layers = lowRankLayers(model);
    const params = model.numParameters();
    const v = valLoss(model);
    model.dispose();
    const row: Row = {
      setting: s.tag, params, compression: denseParams / params, factorized_layers: layers.length,
      mean_rank: layers.reduce((n, [, l]) => n + l.rank, 0) / Math.max(1, layers.length),
      val_loss: v.loss, val_ppl: Math.exp(v.loss), ppl_increase_pct: 100 * (Math.exp(v.loss - d.loss) - 1), eval_tokens_per_s: v.tokensPerSecond,
    };
    rows.push(row);
    console.log(`${row.setting.padEnd(14)} ${row.params.toString().padStart(9)} ${`${row.compression.toFixed(2)}×`.padStart(7)} ${String(row.factorized_layers).padStart(6)} ${row.mean_rank.toFixed(1).padStart(7)} ${row.val_loss.toFixed(4).padStart(9)} ${row.val_ppl.toFixed(3).padStart(7)} ${`+${row.ppl_increase_pct.toFixed(1)}%`.padStart(8)} ${Math.round(row.eval_tokens_per_s).toString().padStart(11)}`);
  }
  let recovered: Record<string, number | string> | null = null;
  if (recoverSteps > 0) {
    const [kind, value] = recoverAt.split(':');
    const tag = `${kind}=${value}`;
    const dir = join(root, 'runs/bench-lowrank', tag.replace(/[=.]/g, '_'));
    const row = rows.find((r) => r.setting === tag);
    if (!row) throw new Error(`bench/lowrank: --recover-at=${recoverAt} is not among the settings run`);
    console.log(`\nrecovery: fine-tuning the ${tag} model ${recoverSteps} steps (AdamW 3e-4 cosine, both factors trainable, Tiny Shakespeare train split)`);
    const model = new RunDir(dir).loadModel();
    recover(model, recoverSteps, join(root, 'runs/bench-lowrank', `recover-${tag.replace(/[=.]/g, '_')}`));
    const v = valLoss(model);
    saveLowRankGPT(join(root, 'runs/bench-lowrank', `recovered-${tag.replace(/[=.]/g, '_')}`), model, kind === 'rank' ? { rank: Number(value) } : { energy: Number(value) });
    model.dispose();
    recovered = { setting: tag, steps: recoverSteps, val_loss_before: row.val_loss, val_loss_after: v.loss, dense_val_loss: d.loss, fraction_of_gap_recovered: (row.val_loss - v.loss) / (row.val_loss - d.loss) };
    console.log(`  ${tag}: val loss ${row.val_loss.toFixed(4)} → ${v.loss.toFixed(4)} after ${recoverSteps} steps (dense ${d.loss.toFixed(4)}; ${(100 * (recovered.fraction_of_gap_recovered as number)).toFixed(0)}% of the gap recovered)`);
  }
  const round = (x: number, k = 4): number => Number(x.toFixed(k));
  console.log('RESULT ' + JSON.stringify({
    suite: 'lowrank', cpu: cpuName(), base_run: base,
    dense: { params: denseParams, val_loss: round(d.loss), val_ppl: round(Math.exp(d.loss)), eval_tokens_per_s: Math.round(d.tokensPerSecond) },
    ...(skipped.length ? { stays_dense: skipped } : {}),
    factorized: rows.map((r) => ({ ...r, compression: round(r.compression, 3), mean_rank: round(r.mean_rank, 1), val_loss: round(r.val_loss), val_ppl: round(r.val_ppl), ppl_increase_pct: round(r.ppl_increase_pct, 2), eval_tokens_per_s: Math.round(r.eval_tokens_per_s) })),
    ...(recovered ? { recovered } : {}),
  }));
}
