// The Tiny Shakespeare char-level base models the lowrank and lora benchmarks start from: prepared and trained once
// through the CLI (`prepare`, then `train --config configs/shakespeare-char-cpu.yaml`, the 2000-step CPU recipe, as
// is or widened) and cached under runs/; a later benchmark reuses them. Also the small helpers both use to drive the CLI.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(root, 'dist/src/cli/main.js');
export const BASE_DATA = join(root, 'data/bench-shakespeare-char');
export const BASE_RUN = join(root, 'runs/bench-base-char');

/** A base: its run directory and the overrides of the CPU recipe it is trained with. */
export interface CharBase {
  run: string;
  /** What it is, for the log line. */
  label: string;
  /** `lmforge train` flags on top of configs/shakespeare-char-cpu.yaml. */
  overrides: readonly string[];
}

/** The CPU recipe as is: 4 layers × 128 wide, block 64, 2000 steps (0.80M parameters). */
export const SMALL_CHAR_BASE: CharBase = { run: BASE_RUN, label: '2000 steps; a few minutes', overrides: [] };

/**
 * The same recipe widened to 3 layers × 384 (6 heads), block 64, 1500 steps (5.36M parameters, ~25 min on 2 busy
 * cores). For LoRA: adapters grow as d·r and weights as d², so at 384 wide ≤ 2% of the parameters allows r ≈ 5 on
 * every Linear where 128 wide allows r = 1; depth does not change that share and costs time, so it stays shallow.
 */
export const WIDE_CHAR_BASE: CharBase = {
  run: join(root, 'runs/bench-base-char-wide'),
  label: '3 layers × 384, 1500 steps; ~25 min on busy cores',
  overrides: ['--model.n_layer=3', '--model.n_head=6', '--model.n_embd=384', '--model.block_size=64', '--max_iters=1500', '--optim.lr_decay_iters=1500'],
};

/** Runs `lmforge args…` and returns its stdout; a failure throws with the tail of its output. */
export function lmforge(args: string[], options: { echo?: boolean } = {}): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (options.echo) process.stdout.write(r.stdout);
  if (r.status !== 0) throw new Error(`lmforge ${args.join(' ')}: exit ${r.status}\n${(r.stderr || r.stdout).trim().split('\n').slice(-6).join('\n')}`);
  return r.stdout;
}

/** The base run directory, trained now with the CPU recipe (and the base's overrides) if not cached. */
export function ensureCharBase(log: (line: string) => void = console.log, base: CharBase = SMALL_CHAR_BASE): string {
  if (existsSync(join(base.run, 'model.safetensors'))) {
    log(`base: reusing ${base.run} (delete it to retrain)`);
    return base.run;
  }
  if (!existsSync(join(BASE_DATA, 'val.bin'))) lmforge(['prepare', '--input', join(root, '../shared/data/tinyshakespeare/input.txt'), '--out', BASE_DATA]);
  log(`base: training ${base.run} with configs/shakespeare-char-cpu.yaml ${base.overrides.join(' ')} (${base.label})`);
  const out = lmforge(['train', '--config', 'configs/shakespeare-char-cpu.yaml', `--out_dir=${base.run}`, `--data.dir=${BASE_DATA}`, ...base.overrides, '--checkpoint_interval=0', '--log_interval=500', '--overwrite']);
  log(out.trim().split('\n').slice(-2).join('\n'));
  return base.run;
}
