// Optimizers side by side on the CPU recipe (configs/shakespeare-char-cpu.yaml: 4 layers, 128 wide, block 64,
// batch 12) on real Tiny Shakespeare, each trained by the library's train() into a temp dir for --steps steps per
// seed: val loss per seed, optimizer-state bytes, ms/step, and the first eval step at which its seed-mean val loss
// reaches AdamW's seed-mean final val loss. ms/step is the mean of the loop's per-step timing over the steps after
// the first 10% (evaluations excluded, Shampoo's root refreshes included). Not a tuning study: one learning rate per optimizer, from the table below.
// Usage: npm run bench -- optimizers [--steps=300] [--seeds=1337,2] [--optimizers=adamw,adafactor,lion,muon,shampoo]
//        [--text=FILE]. The schedule is the recipe's shape squeezed into --steps: warmup min(100, steps/10), cosine
// decay to lr/10 at the last step. Evaluations every max(1, steps/12) steps on the recipe's 20 batches.
//
// Learning rates (optim.* overrides; each optimizer otherwise keeps its published defaults):
//   adamw      lr 1e-3                 the recipe's (nanoGPT's)
//   adafactor  lr 3e-2, scaled by RMS  relative_step=false (the schedule's lr instead of ρ_t = min(1e-2, 1/√t)), step
//                                      ×max(1e-3, RMS(param)); tuned over 3e-3…5e-2 at 300 steps, seed 1337 (the
//                                      paper's relative step reached 2.44 against AdamW's 2.39 there)
//   lion       lr 3e-4, wd 0.3         the paper: 3–10× below AdamW's lr, decay raised so lr·λ stays about AdamW's
//   muon       lr 0.02, AdamW 1e-3     Muon's published 0.02 on hidden matrices; embeddings, head, gains on AdamW 1e-3
//   shampoo    lr 1e-3, AdamW grafting the step norm of AdamW at AdamW's lr; blocks of 128, roots every 10 steps
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNativeBackend } from '../src/core/native/index.js';
import { prepareCharData } from '../src/data/prepare.js';
import { GPT } from '../src/models/gpt.js';
import { makeOptimizer } from '../src/optim/config.js';
import { readMetrics } from '../src/train/metrics.js';
import { TRAIN_ALIASES, trainSpec } from '../src/train/train-config.js';
import { modelConfigOf, readMeta, train } from '../src/train/trainer.js';
import { objectLayer, readConfigFile, resolveConfigWithAliases } from '../src/util/config.js';
import { intFlag, stringFlag } from './_args.js';
import { cpuName } from './_cpu.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** optim.* overrides per optimizer (see the table above). */
const TABLE: Record<string, Record<string, unknown>> = {
  adamw: { name: 'adamw', lr: 1e-3 },
  adafactor: { name: 'adafactor', adafactor_relative_step: false, lr: 3e-2 },
  lion: { name: 'lion', lr: 3e-4, weight_decay: 0.3 },
  muon: { name: 'muon', lr: 0.02, muon_adamw_lr: 1e-3 },
  shampoo: { name: 'shampoo', lr: 1e-3, shampoo_graft: 'adamw' },
};

interface Row {
  val_loss: number[];
  state_bytes: number;
  ms_per_step: number;
  /** Seed-mean val loss at each eval step. */
  curve: Map<number, number>;
  steps_to_adamw_loss: number | null;
}

export async function run(args: string[]): Promise<void> {
  loadNativeBackend();
  const steps = intFlag('optimizers', args, 'steps', 300);
  const seeds = (stringFlag(args, 'seeds') ?? '1337,2').split(',').map(Number);
  if (seeds.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`bench/optimizers: --seeds expects comma-separated integers, got ${stringFlag(args, 'seeds')}`);
  const names = (stringFlag(args, 'optimizers') ?? Object.keys(TABLE).join(',')).split(',');
  const unknown = names.filter((n) => !(n in TABLE));
  if (unknown.length > 0) throw new Error(`bench/optimizers: --optimizers: unknown ${unknown.join(', ')} (known: ${Object.keys(TABLE).join(', ')})`);
  if (!names.includes('adamw')) names.unshift('adamw'); // the reference every other row is measured against
  const work = mkdtempSync(join(tmpdir(), 'lmforge-bench-optimizers-'));
  const text = stringFlag(args, 'text') ?? join(root, '../shared/data/tinyshakespeare/input.txt');
  writeFileSync(join(work, 'input.txt'), readFileSync(text, 'utf8'));
  prepareCharData({ input: join(work, 'input.txt'), outDir: join(work, 'data'), valFraction: 0.1 });
  const recipe = readConfigFile(join(root, 'configs/shakespeare-char-cpu.yaml'));
  const evalInterval = Math.max(1, Math.floor(steps / 12));
  console.log(`bench optimizers: ${steps} steps, seeds ${seeds.join(',')}, eval every ${evalInterval} steps; CPU ${cpuName()}`);

  const rows = new Map<string, Row>();
  for (const name of names) {
    const curves: Map<number, number>[] = [];
    const row: Row = { val_loss: [], state_bytes: 0, ms_per_step: 0, curve: new Map(), steps_to_adamw_loss: null };
    const ms: number[] = [];
    for (const seed of seeds) {
      const lr = Number(TABLE[name]!.lr ?? 1e-3);
      const c = resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, recipe, objectLayer({
        data_dir: join(work, 'data'), out_dir: join(work, `${name}-${seed}`), seed, max_iters: steps, eval_interval: evalInterval,
        log_interval: 1, checkpoint_interval: 0, full_val: false,
        optim: { ...TABLE[name], warmup_iters: Math.min(100, Math.floor(steps / 10)), lr_decay_iters: steps, min_lr: lr / 10 },
      }, 'bench/optimizers'));
      if (row.state_bytes === 0) {
        const model = new GPT(modelConfigOf(c, readMeta(c.data.dir).vocab_size), seed);
        const opt = makeOptimizer(model.namedTrainableParameters(), c.optim);
        row.state_bytes = opt.stateBytes();
        opt.dispose();
        model.dispose();
      }
      const r = train(c, { log: () => {} });
      row.val_loss.push(r.valLoss ?? NaN);
      const metrics = readMetrics(join(c.out_dir, 'metrics.jsonl'));
      const curve = new Map<number, number>();
      for (const m of metrics) {
        if (typeof m.val_loss === 'number') curve.set(m.step, m.val_loss);
        if (typeof m.ms_per_iter === 'number' && m.step >= steps / 10) ms.push(m.ms_per_iter);
      }
      curves.push(curve);
    }
    for (const step of curves[0]!.keys()) row.curve.set(step, curves.reduce((a, cu) => a + (cu.get(step) ?? NaN), 0) / curves.length);
    // A mean, not a median: Shampoo's root refreshes every N steps are part of its cost per step.
    row.ms_per_step = ms.reduce((a, b) => a + b, 0) / ms.length;
    rows.set(name, row);
    console.log(`${name.padEnd(10)} val loss ${row.val_loss.map((v) => v.toFixed(4)).join(', ')}  state ${(row.state_bytes / 1024).toFixed(1)} KiB  ${row.ms_per_step.toFixed(1)} ms/step`);
  }
  const target = rows.get('adamw')!.val_loss.reduce((a, b) => a + b, 0) / seeds.length;
  const out: Record<string, Omit<Row, 'curve'>> = {};
  for (const [name, row] of rows) {
    row.steps_to_adamw_loss = [...row.curve].find(([, v]) => v <= target)?.[0] ?? null;
    console.log(`${name.padEnd(10)} reaches AdamW's final val loss ${target.toFixed(4)} at step ${row.steps_to_adamw_loss ?? '— (not within the run)'}`);
    const { curve: _curve, ...rest } = row;
    out[name] = { ...rest, ms_per_step: Number(rest.ms_per_step.toFixed(2)) };
  }
  console.log(`RESULT ${JSON.stringify({ optimizers: out })}`);
}
