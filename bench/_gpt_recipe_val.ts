// The CPU recipe in bf16 against fp32 (bench/gpt.ts --bf16 --recipe-val): configs/shakespeare-char-cpu.yaml trained
// through the CLI once per precision and seed, each run's loss over the whole val split read from its metrics.jsonl.
// The question is whether bf16 matmuls cost quality: the bar is a seed-mean difference within 0.01.
// Not a throughput figure (the recipe's matrices are too small for bf16 to pay). The runs go `jobs` at a time, each
// on one thread when jobs > 1 (on a busy shared machine one 2-thread run is not faster than a 1-thread one).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BASE_DATA, lmforge, root } from './_char_base.js';
import { lmforge as lmforgeAsync, pool } from './_cli.js';

export type Precision = 'fp32' | 'bf16';

/** Whole-split val loss per seed, for each precision, in the seeds' order. */
export type RecipeVal = Record<Precision, number[]>;

/** The last `val_loss_full` a run's metrics.jsonl holds; an error naming the file when there is none. */
export function wholeSplitValLoss(runDir: string): number {
  const file = join(runDir, 'metrics.jsonl');
  let last: number | null = null;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const rec = JSON.parse(line) as { val_loss_full?: unknown };
    if (typeof rec.val_loss_full === 'number') last = rec.val_loss_full;
  }
  if (last === null) throw new Error(`${file}: no val_loss_full record (was the run trained with full_val: true?)`);
  return last;
}

/** Trains the recipe for every seed in fp32 and in bf16 (runs/bench-bf16-recipe/…), logging each result. */
export async function recipeVal(seeds: readonly number[], jobs: number, log: (line: string) => void = console.log): Promise<RecipeVal> {
  if (!existsSync(join(BASE_DATA, 'val.bin'))) lmforge(['prepare', '--input', join(root, '../shared/data/tinyshakespeare/input.txt'), '--out', BASE_DATA]);
  const cells = seeds.flatMap((seed) => (['fp32', 'bf16'] as const).map((precision) => ({ seed, precision })));
  const losses = await pool(cells.map(({ seed, precision }) => async (): Promise<number> => {
    const run = join(root, 'runs/bench-bf16-recipe', `${precision}-seed${seed}`);
    const t0 = performance.now();
    await lmforgeAsync(['train', '--config', 'configs/shakespeare-char-cpu.yaml', `--precision=${precision}`, `--seed=${seed}`, `--out_dir=${run}`,
      `--data.dir=${BASE_DATA}`, '--full_val=true', '--checkpoint_interval=0', '--log_interval=500', '--peak_flops=0', '--overwrite',
      ...(jobs > 1 ? ['--threads=1'] : [])]);
    const loss = wholeSplitValLoss(run);
    log(`recipe ${precision} seed ${seed}: whole-split val loss ${loss.toFixed(4)} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    return loss;
  }), jobs);
  const out: RecipeVal = { fp32: [], bf16: [] };
  cells.forEach((c, i) => out[c.precision].push(losses[i]!));
  return out;
}
