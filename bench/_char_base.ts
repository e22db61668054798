// The Tiny Shakespeare char-level base model that the lowrank and lora benchmarks share: prepared and trained once
// through the CLI (`prepare`, then `train --config configs/shakespeare-char-cpu.yaml`, the 2000-step CPU recipe) and
// cached under runs/; a later benchmark reuses it. Also the small helpers both use to drive the CLI.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(root, 'dist/src/cli/main.js');
export const BASE_DATA = join(root, 'data/bench-shakespeare-char');
export const BASE_RUN = join(root, 'runs/bench-base-char');

/** Runs `lmforge args…` and returns its stdout; a failure throws with the tail of its output. */
export function lmforge(args: string[], options: { echo?: boolean } = {}): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (options.echo) process.stdout.write(r.stdout);
  if (r.status !== 0) throw new Error(`lmforge ${args.join(' ')}: exit ${r.status}\n${(r.stderr || r.stdout).trim().split('\n').slice(-6).join('\n')}`);
  return r.stdout;
}

/** The base run directory, trained now (about 2000 steps of the CPU recipe) if not cached. */
export function ensureCharBase(log: (line: string) => void = console.log): string {
  if (existsSync(join(BASE_RUN, 'model.safetensors'))) {
    log(`base: reusing ${BASE_RUN} (delete it to retrain)`);
    return BASE_RUN;
  }
  if (!existsSync(join(BASE_DATA, 'val.bin'))) lmforge(['prepare', '--input', join(root, '../shared/data/tinyshakespeare/input.txt'), '--out', BASE_DATA]);
  log(`base: training ${BASE_RUN} with configs/shakespeare-char-cpu.yaml (2000 steps; a few minutes)`);
  const out = lmforge(['train', '--config', 'configs/shakespeare-char-cpu.yaml', `--out_dir=${BASE_RUN}`, `--data.dir=${BASE_DATA}`, '--checkpoint_interval=0', '--log_interval=500', '--overwrite']);
  log(out.trim().split('\n').slice(-2).join('\n'));
  return BASE_RUN;
}
