// Issue 14's training-process ablation: runs (or, when its cells are done, re-reads) the study
// configs/studies/curriculum.yaml — random windows against sequence-length warmup, packing, packing with document
// masking, and temperature mixing at T = 1 and 3, equal tokens, 2 seeds — and prints each variant's whole-split code
// val loss beside the baseline's (Welch's 95% interval), every cell's whole-split Shakespeare val loss (the source the
// mixing cells add) and the mixing cells' planned and realised shares. Usage: npm run bench -- curriculum [--jobs=2]. Last line: RESULT {json}.
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { prepareStdlibCode } from '../src/data/stdlib-code.js';
import { readMetrics } from '../src/train/metrics.js';
import { loadAnyGPT } from '../src/models/quantize-io.js';
import { setThreads } from '../src/core/index.js';
import { loadNativeBackend } from '../src/core/native/index.js';
import { fullSplitLoss } from '../src/train/trainer.js';
import { openTokenFile } from '../src/train/token-reader.js';
import { cpuName } from './_cpu.js';
import { root } from './_char_base.js';
import { lmforge } from './_cli.js';

const STUDY = 'configs/studies/curriculum.yaml';
const OUT = join(root, 'runs/studies/curriculum');
const CODE = join(root, 'data/stdlib-code');
const SHAKESPEARE = join(root, 'data/shakespeare-code');

interface Row { variant: string; val_loss: { mean: number; std: number }; seeds_losses: number[]; vs_baseline: { diff: number; low: number | null; high: number | null; p: number | null } | null; tokens_per_s: number }

const r4 = (x: number): number => +x.toFixed(4);

export async function run(args: string[]): Promise<void> {
  const jobs = Number(args.find((a) => a.startsWith('--jobs='))?.slice(7) ?? '2');
  const load0 = loadavg()[0]!;
  if (!existsSync(join(CODE, 'train.bin'))) await prepareStdlibCode(CODE, 2048, (l) => console.log(l));
  if (!existsSync(join(SHAKESPEARE, 'train.bin'))) {
    await lmforge(['tokenize', '--tokenizer', join(CODE, 'tokenizer.lmf.json'), '--input', join(root, '../shared/data/tinyshakespeare/input.txt'), '--out', SHAKESPEARE, '--val-fraction', '0.1']);
  }
  const out = await lmforge(['study', '--config', STUDY, '--jobs', String(jobs)]);
  console.log(out.split('\n').filter((l) => !l.startsWith('RESULT ')).join('\n'));
  const results = JSON.parse(readFileSync(join(OUT, 'results.json'), 'utf8')) as { rows: Row[]; seeds: number[] };
  const variants: Record<string, unknown> = {};
  loadNativeBackend();
  setThreads(1);
  const shakespeareVal = openTokenFile(join(SHAKESPEARE, 'val.bin'));
  console.log('variant          code val loss (whole split, per seed)   Δ vs windows [95% CI]        shakespeare val (whole)   mix planned → realised');
  for (const row of results.rows) {
    const cells = results.seeds.map((s) => readMetrics(join(OUT, row.variant, `seed-${s}`, 'metrics.jsonl')));
    const lastStep = cells.map((recs) => [...recs].reverse().find((r) => r.loss !== undefined)!);
    // Every cell's final model over the whole Shakespeare val split (the mixed-in source), code-only cells included.
    const shakespeare = results.seeds.map((s) => {
      const model = loadAnyGPT(join(OUT, row.variant, `seed-${s}`));
      try {
        return fullSplitLoss(model, shakespeareVal, 16, model.config.block_size);
      } finally {
        model.dispose();
      }
    });
    const share = (prefix: string): Record<string, number> => Object.fromEntries(Object.entries(lastStep[0] ?? {}).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), r4(v as number)]));
    const firstSeq = cells[0]!.find((r) => r.seq_len !== undefined)?.seq_len ?? 128;
    const v = row.vs_baseline;
    variants[row.variant] = {
      val_loss: row.seeds_losses.map(r4), mean: r4(row.val_loss.mean),
      diff_vs_windows: v ? r4(v.diff) : 0, ci95: v && v.low !== null && v.high !== null ? [r4(v.low), r4(v.high)] : null, p: v?.p ?? null,
      val_loss_shakespeare: shakespeare.map(r4),
      mix_plan: Object.keys(share('mix_plan_')).length ? share('mix_plan_') : null, mix_real: Object.keys(share('mix_real_')).length ? share('mix_real_') : null,
      first_seq_len: firstSeq, tokens_per_s: Math.round(row.tokens_per_s),
    };
    const ci = v && v.low !== null ? `${v.diff >= 0 ? '+' : ''}${v.diff.toFixed(4)} [${v.low.toFixed(4)}, ${v.high!.toFixed(4)}]` : '—';
    const mix = share('mix_plan_');
    const mixText = Object.keys(mix).length ? Object.keys(mix).map((k) => `${k} ${(100 * mix[k]!).toFixed(1)}% → ${(100 * share('mix_real_')[k]!).toFixed(1)}%`).join(', ') : '';
    console.log(`${row.variant.padEnd(16)} ${row.seeds_losses.map((x) => x.toFixed(4)).join(' / ').padEnd(38)} ${ci.padEnd(28)} ${shakespeare.map((x) => x.toFixed(3)).join(' / ').padEnd(25)} ${mixText}`);
  }
  const load1 = loadavg()[0]!;
  console.log(`load average (1 min): ${load0.toFixed(2)} at the start, ${load1.toFixed(2)} at the end (the machine is shared; tokens/s are under that load)`);
  console.log(`RESULT ${JSON.stringify({ bench: 'curriculum', cpu: cpuName(), load_average: [r4(load0), r4(load1)], study: STUDY, seeds: results.seeds, tokens_per_cell: 300 * 16 * 128, baseline: 'windows', variants })}`);
}
