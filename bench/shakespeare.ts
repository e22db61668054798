// What the CPU recipe reaches, seed by seed: lmforge's `train --config configs/shakespeare-char-cpu.yaml` beside
// nanoGPT's own train.py (from a checkout you give; run with Debian's python3-torch) on the same recipe and text.
// Both report their step-2000 evaluation (20 random batches, as nanoGPT's README command) and the loss over the
// whole val split in consecutive 64-token windows, which is what the 20-batch figure estimates without its noise.
// Usage: npm run bench -- shakespeare --nanogpt=DIR [--seeds=1337,2,3] [--jobs=2] [--text=FILE]
// Each run uses one thread; `jobs` runs go side by side. Losses do not depend on timing, so jobs only change wall time.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pool } from './_cli.js';
import { intFlag, stringFlag } from './_args.js';
import { PYTHON, torchEnv } from './_torch.js';

interface Result {
  seed: number;
  val_loss: number;
  val_loss_full: number;
  seconds: number;
}

const root = fileURLToPath(new URL('../../', import.meta.url));
const BAR = 1.89;

function runProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}\n${(err || out).trim().split('\n').slice(-5).join('\n')}`))));
  });
}

async function lmforge(seed: number, work: string): Promise<Result> {
  const t0 = performance.now();
  const out = await runProcess(process.execPath, [join(root, 'dist/src/cli/main.js'), 'train', '--config', 'configs/shakespeare-char-cpu.yaml',
    `--data_dir=${join(work, 'lmforge-data')}`, `--out_dir=${join(work, `lmforge-${seed}`)}`, `--seed=${seed}`, '--threads=1',
    '--checkpoint_interval=0', '--log_interval=1000', '--full_val=true'], process.env);
  const last = /step 2000: train loss [\d.]+, val loss ([\d.]+)/.exec(out);
  const full = /step 2000: val loss over the whole val split ([\d.]+)/.exec(out);
  if (!last || !full) throw new Error(`lmforge seed ${seed}: no step-2000 evaluation in its output:\n${out.slice(-500)}`);
  return { seed, val_loss: Number(last[1]), val_loss_full: Number(full[1]), seconds: (performance.now() - t0) / 1000 };
}

async function nanogpt(seed: number, dir: string, work: string, script: string): Promise<Result> {
  const out = await runProcess(PYTHON, [script, 'train', dir, join(work, 'nanogpt'), String(seed)], torchEnv(1));
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`nanoGPT seed ${seed}: no RESULT line:\n${out.slice(-500)}`);
  return JSON.parse(line.slice(7)) as Result;
}

function stats(xs: number[]): string {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
  return `${mean.toFixed(4)} ± ${sd.toFixed(4)}`;
}

export async function run(args: string[]): Promise<void> {
  const dir = stringFlag(args, 'nanogpt');
  if (!dir || !existsSync(join(dir, 'train.py'))) {
    throw new Error('bench/shakespeare: --nanogpt=DIR must name a nanoGPT checkout (with train.py, configurator.py, config/, data/shakespeare_char/prepare.py)');
  }
  const seeds = (stringFlag(args, 'seeds') ?? '1337,2,3').split(',').map(Number);
  if (seeds.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`bench/shakespeare: --seeds expects comma-separated integers, got ${stringFlag(args, 'seeds')}`);
  const jobs = intFlag('shakespeare', args, 'jobs', 2);
  const text = stringFlag(args, 'text') ?? join(root, '../shared/data/tinyshakespeare/input.txt');
  const work = mkdtempSync(join(tmpdir(), 'lmforge-bench-shakespeare-'));
  const script = join(root, 'bench/nanogpt_seed.py');

  // Each side prepares the text its own way; the ids must agree (same 65 characters, first 90% train, last 10% val).
  const prep = spawnSync(process.execPath, [join(root, 'dist/src/cli/main.js'), 'prepare', '--input', text, '--out', join(work, 'lmforge-data')], { encoding: 'utf8' });
  if (prep.status !== 0) throw new Error(`lmforge prepare failed: ${prep.stderr}`);
  await runProcess(PYTHON, [script, 'prepare', dir, join(work, 'nanogpt'), text], torchEnv(1));
  const same = ['train', 'val'].every((split) => {
    const ours = readFileSync(join(work, 'lmforge-data', `${split}.bin`));
    const theirs = readFileSync(join(work, 'nanogpt', 'data', 'shakespeare_char', `${split}.bin`));
    const ids = new Uint16Array(ours.buffer, ours.byteOffset + ours.length - theirs.length, theirs.length / 2);
    return Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength).equals(theirs);
  });
  console.log(`nanoGPT's CPU recipe on ${text}, seeds ${seeds.join(', ')}; ${jobs} runs side by side, one thread each`);
  console.log(`token ids of both preparations identical: ${same ? 'yes' : 'NO'}`);

  const tasks = seeds.flatMap((s) => [() => lmforge(s, work), () => nanogpt(s, dir, work, script)]);
  const results = await pool(tasks, jobs);
  const ours = results.filter((_, i) => i % 2 === 0);
  const theirs = results.filter((_, i) => i % 2 === 1);
  console.log('val loss at step 2000:  20 random batches (the recipe\'s own figure)  |  whole val split');
  console.log('seed  | lmforge   nanoGPT | lmforge   nanoGPT');
  seeds.forEach((s, i) => {
    console.log(`${String(s).padEnd(5)} | ${ours[i]!.val_loss.toFixed(4).padStart(7)}   ${theirs[i]!.val_loss.toFixed(4).padStart(7)} | ${ours[i]!.val_loss_full.toFixed(4).padStart(7)}   ${theirs[i]!.val_loss_full.toFixed(4).padStart(7)}`);
  });
  console.log(`mean ± sd, 20 batches: lmforge ${stats(ours.map((r) => r.val_loss))}, nanoGPT ${stats(theirs.map((r) => r.val_loss))}`);
  console.log(`mean ± sd, whole val:  lmforge ${stats(ours.map((r) => r.val_loss_full))}, nanoGPT ${stats(theirs.map((r) => r.val_loss_full))}`);
  const under = (rs: Result[]): string => `${rs.filter((r) => r.val_loss <= BAR).length}/${rs.length}`;
  console.log(`seeds with the 20-batch val loss ≤ ${BAR}: lmforge ${under(ours)}, nanoGPT ${under(theirs)}`);
  const secs = (rs: Result[]): string => (rs.reduce((a, r) => a + r.seconds, 0) / rs.length).toFixed(0);
  console.log(`mean wall seconds per run (${jobs} side by side, not a speed benchmark; see \`bench -- gpt\`): lmforge ${secs(ours)}, nanoGPT ${secs(theirs)}`);
}
