// The model-parallel part of `npm run bench -- distributed`: tensor (TP = 2), pipeline (PP = 2, GPipe and 1F1B)
// and expert (EP = 2, an MoE model) parallelism against the single-process model, each rank of an mpirun job
// running both sides from the same seed on the CPU recipe's shape (configs/shakespeare-char-cpu.yaml: 4 layers,
// 4 heads, 128 wide, block 64, batch 12; vocabulary padded from 65 to 66 so it splits; the MoE model with 4
// experts, top-2, every choice dispatched, no capacity dropping) on Tiny Shakespeare batches: logits, loss and
// every gradient at step 0, then a 50-step AdamW run (the recipe's lr 1e-3, weight decay 0.1, β2 0.99, clip 1.0).
// It returns the figures for the RESULT line: the largest difference per layout, and the bytes each rank sent per
// step beside the layout's formula. Not a suite on its own (the leading underscore keeps main.ts from listing it).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareCharData } from '../src/data/prepare.js';
import { runMpi, taggedLines } from '../test/train/distributed/mpi-run.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const DATA = join(root, 'data/bench-shakespeare-char');
const CHILD = fileURLToPath(new URL('../test/train/distributed/mp-child.js', import.meta.url));

interface ChildLine {
  rank: number;
  mode: string;
  logits: number;
  loss: number;
  grad: number;
  curve: number;
  first: number;
  last: number;
  bytes_per_step: number;
  bytes_theory: number;
}

export interface ModelParallelFigures {
  tp2_max_diff: number;
  pp2_max_diff: { gpipe: number; '1f1b': number };
  ep2_max_diff: number;
  bytes_per_step: Record<'tp2' | 'pp2' | 'ep2', number>;
  bytes_theory: Record<'tp2' | 'pp2' | 'ep2', number>;
}

/** Runs the four layouts on 2 ranks for `steps` steps; logs a line per layout; returns the RESULT fields. */
export function modelParallelFigures(steps: number, log: (line: string) => void): ModelParallelFigures {
  if (!existsSync(join(DATA, 'train.bin'))) prepareCharData({ input: join(root, '../shared/data/tinyshakespeare/input.txt'), outDir: DATA, valFraction: 0.1 });
  const r = runMpi(2, CHILD, ['all', String(steps), DATA, 'recipe'], 3_600_000);
  if (r.code !== 0) throw new Error(`model-parallel runs failed (exit ${r.code}):\n${r.stderr}${r.stdout}`);
  const lines = taggedLines<ChildLine>(r.stdout, 'MP');
  const of = (mode: string): ChildLine[] => lines.filter((l) => l.mode === mode).sort((a, b) => a.rank - b.rank);
  const diff = (mode: string): number => Math.max(...of(mode).map((l) => Math.max(l.logits, l.loss, l.grad, l.curve)));
  for (const mode of ['tp', 'pp-gpipe', 'pp-1f1b', 'ep']) {
    const ls = of(mode);
    if (ls.length !== 2) throw new Error(`model-parallel runs: ${ls.length} lines for ${mode}, expected 2:\n${r.stdout}`);
    const [a] = ls as [ChildLine, ChildLine];
    log(`${mode} = 2: step-0 logits ${a.logits.toExponential(2)}, loss ${a.loss.toExponential(2)}, gradients ${Math.max(...ls.map((l) => l.grad)).toExponential(2)}; `
      + `${steps}-step loss curve ${a.first.toFixed(4)} → ${a.last.toFixed(4)}, largest difference from one process ${a.curve.toExponential(2)}; `
      + `bytes/step/rank ${ls.map((l) => `${Math.round(l.bytes_per_step)} (formula ${Math.round(l.bytes_theory)})`).join(', ')}`);
  }
  // Bytes per rank per step: rank 0's (the pipeline's two stages send the same amount; TP and EP ranks are symmetric).
  const bytes = (mode: string, k: 'bytes_per_step' | 'bytes_theory'): number => Math.round(of(mode)[0]![k]);
  return {
    tp2_max_diff: diff('tp'),
    pp2_max_diff: { gpipe: diff('pp-gpipe'), '1f1b': diff('pp-1f1b') },
    ep2_max_diff: diff('ep'),
    bytes_per_step: { tp2: bytes('tp', 'bytes_per_step'), pp2: bytes('pp-1f1b', 'bytes_per_step'), ep2: bytes('ep', 'bytes_per_step') },
    bytes_theory: { tp2: bytes('tp', 'bytes_theory'), pp2: bytes('pp-1f1b', 'bytes_theory'), ep2: bytes('ep', 'bytes_theory') },
  };
}
